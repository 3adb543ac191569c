"""Numeric extremes give the float64 reference's number or a clear error, never NaN as ``ok``.

Reference values: scikit-image's ``structural_similarity`` (an independent float64
implementation) with the wang2004 settings (``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False``), the same ``data_range`` and ``K1``/``K2``, on the
inputs cast to float64 (what it does itself for float input).
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.kernels.statistics import FIELDS, empty_statistics
from pipeline.testing import skimage_wang2004

SHAPE = (28, 30)


@pytest.fixture
def unit(rng) -> tuple[np.ndarray, np.ndarray]:
    """float64 images in [0, 1] with a flat black 14x14 corner (a window of zeros on both)."""
    x = rng.random(SHAPE)
    y = np.clip(x + 0.1 * rng.standard_normal(SHAPE), 0, 1)
    x[:14, :14] = 0.0
    y[:14, :14] = 0.0
    return x, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data_range", [1e30, 1e-30])
def test_huge_and_tiny_data_range_match_the_float64_reference(unit, dtype, data_range):
    # float32 kernels would hold C1 = 1e56 as Inf (NaN score) and C1 = 1e-64 as 0
    # (0 / 0 in the black corner): the float64 path takes over.
    x, y = (a.astype(dtype) for a in unit)
    expected = skimage_wang2004(x, y, data_range=data_range)
    for engine in ("auto", "fused", "reference"):
        assert sp.ssim(x, y, data_range=data_range, engine=engine) == pytest.approx(
            expected, abs=1e-9
        )
        ds = sp.evaluate(x[None], y[None], data_range=data_range, engine=engine)
        assert ds.status.values.tolist() == ["ok"]
        assert float(ds.ssim[0, 0]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("k1", "k2"), [(1e10, 0.03), (0.01, 1e10), (1e-10, 1e-10), (1e5, 1e5)])
def test_huge_and_tiny_k_match_the_float64_reference(unit, k1, k2):
    x, y = unit
    expected = skimage_wang2004(x, y, data_range=1.0, k1=k1, k2=k2)
    assert sp.ssim(x, y, data_range=1.0, k1=k1, k2=k2) == pytest.approx(expected, abs=1e-6)
    ds = sp.evaluate(x[None], y[None], data_range=1.0, k1=k1, k2=k2)
    assert ds.status.values.tolist() == ["ok"]
    assert float(ds.ssim[0, 0]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"data_range": 1e200}, "k1"),
        ({"data_range": 1e-200}, "k1"),
        ({"data_range": 1.0, "k1": 1e200}, "k1"),
        ({"data_range": 1.0, "k2": 1e-300}, "k2"),
    ],
)
def test_constants_beyond_float64_are_refused_naming_data_range_and_k(unit, settings, name):
    x, y = unit
    pattern = rf"data_range \S+ with {name} \S+ gives C\d = \({name} data_range\)\^2"
    with pytest.raises(ValueError, match=pattern + r".*must lie within \[1e-150, 1e\+150\]"):
        sp.ssim(x, y, **settings)
    with pytest.raises(ValueError, match=pattern):
        sp.evaluate(x[None], y[None], **settings)


def test_float32_near_its_limits(unit):
    x, y = ((a * 6e38 - 3e38).astype(np.float32) for a in unit)
    expected = skimage_wang2004(x, y, data_range=6e38)
    assert sp.ssim(x, y, data_range=6e38) == pytest.approx(expected, abs=1e-9)
    ds = sp.evaluate(np.stack([x, y]), np.stack([y, x]), data_range=6e38)
    assert ds.status.values.tolist() == ["ok", "ok"]
    np.testing.assert_allclose(ds.ssim.values[:, 0], [expected, expected], atol=1e-9)


def test_float16_input(unit):
    x, y = (a.astype(np.float16) for a in unit)
    expected = skimage_wang2004(x, y, data_range=1.0)
    assert sp.ssim(x, y, data_range=1.0) == pytest.approx(expected, abs=1e-6)
    ds = sp.evaluate(x[None], y[None], data_range=1.0)
    assert ds.status.values.tolist() == ["ok"]
    assert float(ds.ssim[0, 0]) == pytest.approx(expected, abs=1e-6)


def _integers(rng, dtype, low: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = rng.integers(0, span, SHAPE)
    noise = np.clip(offsets + rng.integers(-span // 10, span // 10 + 1, SHAPE), 0, span - 1)
    return (
        np.asarray(low, dtype) + offsets.astype(dtype),
        np.asarray(low, dtype) + noise.astype(dtype),
    )


@pytest.mark.parametrize(
    ("dtype", "low", "span"),
    [
        (np.uint64, 2**64 - 2**12, 2**12),  # high bits set: squares beyond float32
        (np.uint64, 0, 2**62),
        (np.int64, -(2**63), 2**12),  # negative, near the bottom
        (np.int64, -(2**40), 2**41),
        (np.uint32, 0, 2**32),
    ],
)
def test_wide_integers_match_the_float64_reference(rng, dtype, low, span):
    x, y = _integers(rng, dtype, low, span)
    info = np.iinfo(dtype)
    data_range = float(info.max) - float(info.min)
    expected = skimage_wang2004(x, y, data_range=data_range)
    assert sp.ssim(x, y) == pytest.approx(expected, abs=1e-6)
    ds = sp.evaluate(x[None], y[None])
    assert ds.status.values.tolist() == ["ok"]
    assert float(ds.ssim[0, 0]) == pytest.approx(expected, abs=1e-6)
    assert ds.attrs["data_range"] == data_range


def test_float64_pixels_beyond_1e150_are_refused_or_fail_their_pair(unit):
    x, y = unit
    huge = x.copy()
    huge[20, 20] = 1e200
    with pytest.raises(
        ValueError,
        match=r"x holds values up to 1e\+200 \(float64\); SSIM's local moments overflow "
        r"float64 beyond 1e\+150: rescale both images and data_range by one factor",
    ):
        sp.ssim(huge, y, data_range=1.0)
    ds = sp.evaluate(np.stack([x, huge]), np.stack([y, y]), data_range=1.0)
    assert ds.status.values[0] == "ok"
    assert ds.status.values[1] == (
        "pixels beyond +-1e+150: reference has 1, generated 0; SSIM's float64 moments "
        "overflow there: rescale both images and data_range by one factor (SSIM does not change)"
    )
    assert np.isnan(ds.ssim.values[1]).all()


def test_a_pair_with_no_scored_window_is_not_ok(unit):
    x, y = unit
    blank = x.copy()
    blank[::8, ::8] = np.nan  # every 11x11 window touches one
    ds = sp.evaluate(np.stack([x, blank]), np.stack([y, y]), data_range=1.0, nan_policy="mask")
    assert ds.status.values[0] == "ok"
    assert ds.status.values[1].startswith("no SSIM window was scored (count 0)")


def test_unscored_reasons_flags_nan_sums_and_ms_ssim():
    from pipeline.reductions.statistics import unscored_reasons

    packed = empty_statistics(4, 2, 5)
    packed[:, 0, FIELDS.index("count")] = [10, 10, 0, 10]
    packed[:, 0, FIELDS.index("sum")] = [5.0, np.nan, 0.0, 5.0]
    reasons = unscored_reasons(packed, np.array([0.9, 0.9, 0.9, np.nan]))
    assert reasons[0] is None
    assert reasons[1].startswith("SSIM statistics came out NaN or Inf over 10 windows")
    assert reasons[2].startswith("no SSIM window was scored")
    assert reasons[3].startswith("MS-SSIM came out NaN or Inf")


def test_float32_bounds():
    from pipeline.kernels.cpu.combine import float32_holds

    assert float32_holds(1e-4, 9e-4, 255.0)
    assert not float32_holds(1e56, 9e56, 1.0)  # C beyond float32
    assert not float32_holds(1e-64, 9e-64, 1.0)  # C vanishes in float32
    assert not float32_holds(1e-4, 9e-4, 2.0**64)  # pixel squares beyond float32


def test_ms_ssim_near_the_float32_limit_is_never_ok_with_nan(rng):
    x = rng.random((176, 176))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    x, y = ((a * 6e38 - 3e38).astype(np.float32) for a in (x, y))
    ds = sp.evaluate(x[None], y[None], data_range=6e38, ms_ssim=True)
    value, status = float(ds.ms_ssim[0]), str(ds.status.values[0])
    # Either scored (the same number as the float64 path) or failed with the reason.
    if status == "ok":
        assert value == pytest.approx(sp.ms_ssim(x, y, data_range=6e38, engine="reference"))
    else:
        assert np.isnan(value)
        assert status.startswith("MS-SSIM came out NaN or Inf: float32 arithmetic overflowed")
    ds = sp.evaluate(x[None], y[None], data_range=6e38, ms_ssim=True, engine="reference")
    assert ds.status.values.tolist() == ["ok"]
    assert float(ds.ms_ssim[0]) == pytest.approx(
        sp.ms_ssim(x, y, data_range=6e38, engine="reference"), abs=1e-9
    )


def test_colour_float32_near_its_limits(rng):
    # The colour kernel (channels averaged per pixel) has the same float32 limits.
    x = rng.random((24, 26, 3))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    x, y = ((a * 6e38 - 3e38).astype(np.float32) for a in (x, y))
    expected = float(
        structural_similarity(
            x.astype(np.float64),
            y.astype(np.float64),
            data_range=6e38,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
    assert sp.ssim(x, y, data_range=6e38, channel_axis=-1) == pytest.approx(expected, abs=1e-9)
    ds = sp.evaluate(x[None], y[None], data_range=6e38, channel_axis=-1)
    assert ds.status.values.tolist() == ["ok"]
    assert float(ds.ssim[0, 0]) == pytest.approx(expected, abs=1e-9)
