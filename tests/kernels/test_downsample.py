"""pipeline.kernels.downsample: Wang's ``ssim.m`` downsampling, in memory.

The factor rule (``max(1, round(min(H, W) / 256))``, half away from zero as MATLAB
rounds), the box filter's anchor offsets and output shape, and the box filter
itself: by hand for small factors and against an independent SciPy emulation of
``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` followed by
``img(1:f:end, 1:f:end)``; its compiled form for NumPy planes against the generic
form, bit for bit. Its tiled form over Dask chunks, and the ``wang2009``
profile that applies it, are tested in tests/tiling/test_downsample.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import imfilter_then_sample

from pipeline.kernels import downsample
from pipeline.kernels.downsample import (
    box_downsample,
    box_offsets,
    downsampled_shape,
    wang2009_factor,
)
from pipeline.testing import photograph


@pytest.mark.parametrize(
    ("side", "factor"),
    [
        (100, 1),  # round(0.39) = 0 -> max(1, 0)
        (383, 1),  # 1.496
        (384, 2),  # 1.5: half away from zero (and to even) -> 2
        (639, 2),  # 2.496
        (640, 3),  # 2.5: MATLAB gives 3, Python's round() would give 2
        (896, 4),  # 3.5
    ],
)
def test_factor_rounds_half_away_from_zero(side: int, factor: int) -> None:
    assert wang2009_factor((side, side + 500)) == factor
    assert wang2009_factor((side + 500, side)) == factor


def test_anchor_offsets_follow_imfilter() -> None:
    # imfilter anchors at floor((f + 1) / 2) (1-based): before = (f - 1) // 2 samples.
    assert [box_offsets(f) for f in (1, 2, 3, 4, 5)] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert downsampled_shape((7, 8, 9), 3) == (3, 3, 3)


def test_factor_1_is_identity() -> None:
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = box_downsample(x, 1)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x)


def test_factor_2_by_hand() -> None:
    # Disjoint pairs; the odd last sample is its own mirror.
    np.testing.assert_array_equal(box_downsample(np.arange(5.0), 2), [0.5, 2.5, 4.0])
    np.testing.assert_array_equal(box_downsample(np.arange(6.0), 2), [0.5, 2.5, 4.5])


def test_factor_3_by_hand() -> None:
    # Kept anchors 0, 3, 6 average (i - 1, i, i + 1); x[-1] mirrors to x[0], x[n] to x[n - 1].
    np.testing.assert_allclose(box_downsample(np.arange(8.0), 3), [1 / 3, 3.0, 6.0], rtol=1e-15)
    np.testing.assert_allclose(box_downsample(np.arange(7.0), 3), [1 / 3, 3.0, 17 / 3], rtol=1e-15)


def test_factor_4_by_hand() -> None:
    # before = 1, after = 2: anchor 0 averages (x[0], x[0], x[1], x[2]).
    np.testing.assert_allclose(box_downsample(np.arange(8.0), 4), [0.75, 4.5], rtol=1e-15)


def test_2d_is_separable_by_hand() -> None:
    # x[i, j] = 10 i + j is linear, so each output is 10 * ds(i) + ds(j).
    i, j = np.meshgrid(np.arange(7.0), np.arange(8.0), indexing="ij")
    expected = 10 * np.array([1 / 3, 3.0, 17 / 3])[:, None] + np.array([1 / 3, 3.0, 6.0])
    np.testing.assert_allclose(box_downsample(10 * i + j, 3), expected, rtol=1e-14)


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
@pytest.mark.parametrize("shape", [(23, 30), (24, 25), (9, 11, 14)])
def test_matches_scipy_emulation_of_imfilter(factor: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(factor)
    x = rng.uniform(0, 255, shape)
    np.testing.assert_allclose(box_downsample(x, factor), imfilter_then_sample(x, factor),
                               rtol=0, atol=1e-12)  # fmt: skip


def test_channel_axis_untouched() -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 1, (10, 3, 11))
    out = box_downsample(x, 2, axes=(0, 2))
    assert out.shape == (5, 3, 6)
    np.testing.assert_allclose(out[:, 1], box_downsample(x[:, 1], 2), rtol=1e-15)


# The compiled form of NumPy planes (pipeline.kernels.cpu.downsample) against the
# generic padded-views form, which CuPy arrays and other NumPy arrays still take.


def _generic(monkeypatch: pytest.MonkeyPatch, image: np.ndarray, factor: int, axes=None):
    with monkeypatch.context() as patch:
        patch.setattr(downsample, "compiled_box_downsample", lambda *args: None)
        return box_downsample(image, factor, axes)


def test_numpy_planes_take_the_compiled_form_and_other_arrays_do_not() -> None:
    plane = np.zeros((6, 7), dtype=np.uint8)
    assert downsample.compiled_box_downsample(plane, 2, None) is not None
    assert downsample.compiled_box_downsample(np.zeros((4, 6, 3)), 3, (0, 1)) is not None
    assert downsample.compiled_box_downsample(np.zeros((4, 6, 5)), 2, None) is None  # three axes
    assert downsample.compiled_box_downsample(plane, 2, (1, 0)) is None  # the second axis first
    assert downsample.compiled_box_downsample(plane.astype(np.float16), 2, None) is None
    assert downsample.compiled_box_downsample(plane.astype(">f8"), 2, None) is None
    assert downsample.compiled_box_downsample(np.zeros((0, 5)), 2, None) is None


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int16, np.int64, np.float32, np.float64, np.bool_]
)
def test_compiled_planes_equal_the_generic_form_bit_for_bit(monkeypatch, dtype) -> None:
    rng = np.random.default_rng(np.dtype(dtype).num)
    # Sides of one sample, sides shorter than the factor (the mirror wraps more than
    # once) and odd and even sides; factors with and without samples before the anchor.
    for shape in [(1, 1), (1, 6), (2, 5), (3, 3), (7, 9), (24, 25), (33, 16)]:
        for factor in (2, 3, 4, 5, 8, 11):
            if np.dtype(dtype).kind == "f":
                x = rng.uniform(-1e4, 1e4, shape).astype(dtype)
            else:
                x = rng.integers(0, 2 if dtype is np.bool_ else 120, shape).astype(dtype)
            got, want = box_downsample(x, factor), _generic(monkeypatch, x, factor)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} f={factor}")


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2), (-2, -1)])
def test_stacked_and_strided_planes_equal_the_generic_form(monkeypatch, axes) -> None:
    rng = np.random.default_rng(5)
    stack = rng.uniform(0, 255, (19, 4, 23))
    for factor in (2, 3):
        np.testing.assert_array_equal(
            box_downsample(stack, factor, axes), _generic(monkeypatch, stack, factor, axes)
        )
    view = stack[::2, 1, ::-3]  # a plane with negative and non-unit strides
    np.testing.assert_array_equal(box_downsample(view, 2), _generic(monkeypatch, view, 2))


def test_compiled_planes_keep_nan_and_inf_where_the_generic_form_does(monkeypatch) -> None:
    x = np.arange(42.0).reshape(6, 7)
    x[1, 1], x[4, 6] = np.nan, np.inf
    for factor in (2, 3):
        np.testing.assert_array_equal(box_downsample(x, factor), _generic(monkeypatch, x, factor))


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_photographs_match_the_scipy_emulation(monkeypatch, name) -> None:
    # Real photographs (scikit-image's, grey and RGB with its channel axis last), each
    # factor of the wang2009 profile's range, against SciPy's imfilter emulation.
    image = photograph(name)
    for factor in (2, 3, 4):
        got = box_downsample(image, factor, (0, 1))
        planes = image[..., None] if image.ndim == 2 else image
        for c in range(planes.shape[-1]):
            want = imfilter_then_sample(planes[..., c].astype(np.float64), factor)
            plane = got if image.ndim == 2 else got[..., c]
            np.testing.assert_allclose(plane, want, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got, _generic(monkeypatch, image, factor, (0, 1)))
