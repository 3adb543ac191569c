"""evaluate() for the rest of the SSIM family: MS-SSIM, 3-D volumes, wang2009.

Each is chunk-exact: the chunked result equals the in-memory float64 reference
(``engine="reference"``) within 1e-9 for any chunking, including odd chunk sizes
and chunks not aligned to the downsampling factors; volumes also match
scikit-image's N-D ``structural_similarity`` within 1e-6.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.kernels.downsample import box_downsample
from pipeline.tiling.downsample import align_chunks, downsample_array

TOLERANCE = 1e-9
SKIMAGE_KWARGS: dict[str, dict[str, Any]] = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


def _pair(rng: np.random.Generator, shape: tuple[int, ...], noise: float = 30):
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
    return x, y


def _volume(rng: np.random.Generator, shape: tuple[int, ...]):
    # Smooth structure plus noise, so that the maps are not all near zero.
    z, yy, xx = np.meshgrid(*(np.linspace(0, 3, n) for n in shape[:3]), indexing="ij")
    base = 0.5 + 0.4 * np.sin(z + 2 * yy) * np.cos(xx)
    if len(shape) == 4:
        base = base[..., None] * np.linspace(0.6, 1.0, shape[3])
    x = np.clip(base + rng.normal(0, 0.05, shape), 0, 1)
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
    return x, y


def _exploding(shape: tuple[int, ...]) -> da.Array:
    """A stack that fails if any pixel is read: proves a check runs before compute."""

    def explode(block: np.ndarray) -> np.ndarray:
        raise AssertionError("pixels were read")

    return da.zeros(shape, dtype=np.uint8, chunks=shape).map_blocks(explode, dtype=np.uint8)


# -- the chunk-exact downsampling ------------------------------------------------------


@given(
    data=st.data(),
    factor=st.integers(2, 5),
    height=st.integers(5, 40),
    width=st.integers(5, 40),
)
@settings(max_examples=40, deadline=None)
def test_tiled_downsampling_is_bitwise_the_in_memory_one(data, factor, height, width):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, 256, (2, height, width, 1), dtype=np.uint8)
    cy = data.draw(st.integers(1, height))
    cx = data.draw(st.integers(1, width))
    tiled = downsample_array(da.from_array(x, chunks=(1, cy, cx, 1)), factor, (1, 2))
    np.testing.assert_array_equal(tiled.compute(), box_downsample(x, factor, (1, 2)))


def test_align_chunks_moves_boundaries_down_to_multiples():
    assert align_chunks((7, 7, 7, 2), 3) == (6, 6, 9, 2)
    assert align_chunks((1, 1, 1, 1, 1), 2) == (2, 2, 1)
    assert align_chunks((10,), 4) == (10,)


# -- MS-SSIM ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [(2, 171, 183), (1, 23, 37), (2, 50, 19), (1, 64, 64), (1, 81, 5)],
)
def test_ms_ssim_equals_the_in_memory_reference(chunks):
    rng = np.random.default_rng(8)
    x, y = _pair(rng, (2, 171, 183))
    ds = sp.evaluate(x, y, ms_ssim=True, engine="reference", chunks=chunks)
    expected = [sp.ms_ssim(x[i], y[i], engine="reference") for i in range(2)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)
    assert ds["ms_ssim"].dims == ("image",)


@given(
    data=st.data(),
    height=st.integers(41, 60),
    width=st.integers(41, 60),
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ms_ssim_any_chunking_three_scales(data, height, width):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, y = _pair(rng, (2, height, width))
    chunks = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(3, height)),
        data.draw(st.integers(3, width)),
    )
    weights = (0.2, 0.3, 0.5)
    ds = sp.evaluate(
        x, y, ms_ssim=True, ms_weights=weights, engine="reference", chunks=chunks, win_size=11
    )
    expected = [sp.ms_ssim(x[i], y[i], weights=weights, engine="reference") for i in range(2)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("color_mode", ["channels", "luma"])
def test_ms_ssim_colour(color_mode):
    rng = np.random.default_rng(3)
    x, y = _pair(rng, (1, 165, 170, 3))
    ds = sp.evaluate(
        x,
        y,
        ms_ssim=True,
        channel_axis=-1,
        color_mode=color_mode,
        engine="reference",
        chunks=(1, 45, 77),
    )
    expected = sp.ms_ssim(x[0], y[0], channel_axis=-1, color_mode=color_mode, engine="reference")
    assert ds["ms_ssim"].values[0] == pytest.approx(expected, abs=TOLERANCE)


def test_ms_ssim_default_engine_within_float32_tolerance():
    rng = np.random.default_rng(4)
    x, y = _pair(rng, (1, 176, 176))
    ds = sp.evaluate(x, y, ms_ssim=True, chunks=(1, 64, 48))
    assert ds["ms_ssim"].values[0] == pytest.approx(
        sp.ms_ssim(x[0], y[0], engine="reference"), abs=1e-5
    )


def test_ms_ssim_streams_into_zarr_with_provenance(tmp_path):
    rng = np.random.default_rng(5)
    x, y = _pair(rng, (3, 45, 50))
    weights = (0.5, 0.5)
    ds = sp.evaluate(
        x,
        y,
        ms_ssim=True,
        ms_weights=weights,
        engine="reference",
        chunks=(1, 21, 17),
        batch_images=2,
        output=str(tmp_path / "out.zarr"),
    )
    expected = [sp.ms_ssim(x[i], y[i], weights=weights, engine="reference") for i in range(3)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)
    assert ds.attrs["ms_ssim_scales"] == 2
    assert list(ds.attrs["ms_ssim_weights"]) == [0.5, 0.5]
    assert "symmetric" in ds.attrs["ms_ssim_downsampling"]
    assert "ms_ssim" not in sp.evaluate(x, y, engine="reference")


def test_ms_ssim_too_small_fails_before_compute_with_the_in_memory_message():
    with pytest.raises(ValueError) as in_memory:
        sp.ms_ssim(np.zeros((150, 200), np.uint8), np.zeros((150, 200), np.uint8))
    stack = _exploding((2, 150, 200))
    with pytest.raises(ValueError, match=r"needs every spatial side >= 161") as streamed:
        sp.evaluate(stack, stack, ms_ssim=True)
    assert str(streamed.value) == str(in_memory.value)


def test_ms_ssim_refuses_wang2009():
    stack = _exploding((1, 200, 200))
    with pytest.raises(ValueError, match=r"ms_ssim does not take profile 'wang2009'"):
        sp.evaluate(stack, stack, ms_ssim=True, profile="wang2009")


def test_ms_weights_need_ms_ssim():
    with pytest.raises(ValueError, match=r"ms_weights were given .* but ms_ssim is false"):
        sp.RunConfig(ms_weights=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"weights must be finite and >= 0"):
        sp.RunConfig(ms_ssim=True, ms_weights=(0.5, -1.0))
    with pytest.raises(TypeError, match=r"ms_ssim must be true or false \(got 'yes'\)"):
        sp.RunConfig(ms_ssim="yes")


# -- 3-D volumes -----------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("chunks", [(17, 30, 26), (6, 11, 9), (4, 13, 30), (17, 7, 5)], ids=str)
def test_volume_matches_skimage_and_in_memory(profile, chunks):
    rng = np.random.default_rng(11)
    x, y = _volume(rng, (17, 30, 26))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, profile=profile, engine="reference", chunks=chunks
    )
    assert ds.sizes["image"] == 1
    got = float(ds["ssim"].sel(region="all").values[0])
    expected = structural_similarity(x, y, data_range=1.0, **SKIMAGE_KWARGS[profile])
    assert got == pytest.approx(expected, abs=1e-6)
    in_memory, maps = sp.ssim(x, y, data_range=1.0, profile=profile, engine="reference", full=True)
    assert got == pytest.approx(in_memory, abs=TOLERANCE)
    assert int(ds["count"].values[0, 0]) == maps["ssim"].size
    assert float(ds["ssim_std"].values[0, 0]) == pytest.approx(maps["ssim"].std(), abs=TOLERANCE)
    assert ds.attrs["volume"] == 1


def test_volume_grid_regions_are_columns_through_z():
    rng = np.random.default_rng(12)
    x, y = _volume(rng, (13, 28, 24))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, regions="2x3", engine="reference", chunks=(7, 9, 10)
    )
    _, maps = sp.ssim(x, y, data_range=1.0, engine="reference", full=True)
    radius = 5
    rows = (np.arange(28) * 2 // 28)[radius : 28 - radius]
    cols = (np.arange(24) * 3 // 24)[radius : 24 - radius]
    for i in range(2):
        for j in range(3):
            inside = maps["ssim"][:, rows == i][:, :, cols == j]
            region = ds.sel(region=f"r{i}c{j}")
            assert int(region["count"].values[0]) == inside.size
            assert float(region["ssim"].values[0]) == pytest.approx(inside.mean(), abs=TOLERANCE)


@pytest.mark.parametrize("volume_labels", [False, True])
def test_volume_label_regions(volume_labels):
    rng = np.random.default_rng(13)
    x, y = _volume(rng, (14, 22, 20))
    if volume_labels:
        labels = np.zeros((14, 22, 20), np.uint8)
        labels[:7] = 1
        labels[7:, :, 10:] = 2
    else:
        labels = np.zeros((22, 20), np.uint8)
        labels[:, 10:] = 1
        labels[15:] = 2
    ds = sp.evaluate(
        x,
        y,
        volume=True,
        data_range=1.0,
        regions="labels",
        labels=labels,
        engine="reference",
        chunks=(6, 8, 7),
    )
    _, maps = sp.ssim(x, y, data_range=1.0, engine="reference", full=True)
    inner = (labels if volume_labels else np.broadcast_to(labels, x.shape))[5:-5, 5:-5, 5:-5]
    for value in (1, 2):
        region = ds.sel(region=f"label{value}")
        selected = maps["ssim"][inner == value]
        assert int(region["count"].values[0]) == selected.size
        assert float(region["ssim"].values[0]) == pytest.approx(selected.mean(), abs=TOLERANCE)


def test_colour_volume_matches_skimage():
    rng = np.random.default_rng(14)
    x, y = _volume(rng, (12, 16, 14, 3))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, channel_axis=-1, engine="reference", chunks=(6, 8, 7)
    )
    expected = structural_similarity(
        x, y, data_range=1.0, channel_axis=-1, **SKIMAGE_KWARGS["wang2004"]
    )
    assert float(ds["ssim"].values[0, 0]) == pytest.approx(expected, abs=1e-6)


def test_volume_ms_ssim_equals_the_in_memory_reference():
    rng = np.random.default_rng(15)
    x, y = _volume(rng, (23, 26, 24))
    weights = (0.4, 0.6)
    ds = sp.evaluate(
        x,
        y,
        volume=True,
        data_range=1.0,
        ms_ssim=True,
        ms_weights=weights,
        engine="reference",
        chunks=(9, 7, 11),
    )
    expected = sp.ms_ssim(x, y, data_range=1.0, weights=weights, engine="reference")
    assert float(ds["ms_ssim"].values[0]) == pytest.approx(expected, abs=TOLERANCE)


def test_volume_refusals():
    stack = _exploding((8, 30, 30))
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        sp.evaluate(stack, stack, volume=True)
    stack = _exploding((12, 30, 30))
    with pytest.raises(ValueError, match=r"volume=True needs engine 'auto' or 'reference'"):
        sp.evaluate(stack, stack, volume=True, engine="fused")
    with pytest.raises(ValueError, match=r"save_maps is not available with volume=True"):
        sp.evaluate(stack, stack, volume=True, save_maps=True, maps_output="m.zarr")
    with pytest.raises(TypeError, match=r"volume must be true or false \(got 1\)"):
        sp.RunConfig(volume=1)


# -- wang2009 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "factor", "chunks"),
    [
        ((1, 200, 230), 1, (1, 61, 47)),
        ((2, 390, 401), 2, (1, 390, 401)),
        ((2, 390, 401), 2, (2, 97, 61)),
        ((1, 640, 653), 3, (1, 640, 653)),
        ((1, 640, 653), 3, (1, 100, 131)),
        ((1, 640, 653), 3, (1, 23, 299)),
    ],
    ids=str,
)
def test_wang2009_equals_the_in_memory_reference(shape, factor, chunks):
    rng = np.random.default_rng(factor)
    x, y = _pair(rng, shape)
    ds = sp.evaluate(x, y, profile="wang2009", engine="reference", chunks=chunks)
    assert ds.attrs["downsample_factor"] == factor
    for i in range(shape[0]):
        score, maps = sp.ssim(x[i], y[i], profile="wang2009", engine="reference", full=True)
        assert float(ds["ssim"].values[i, 0]) == pytest.approx(score, abs=TOLERANCE)
        assert int(ds["count"].values[i, 0]) == maps["ssim"].size


def test_wang2009_labels_are_read_at_the_kept_samples():
    rng = np.random.default_rng(21)
    x, y = _pair(rng, (1, 390, 400))
    labels = np.zeros((390, 400), np.uint8)
    labels[:, 201:] = 1  # column 201 is dropped by the factor-2 sampling; 202 is kept
    ds = sp.evaluate(
        x,
        y,
        profile="wang2009",
        regions="labels",
        labels=labels,
        engine="reference",
        chunks=(1, 101, 77),
    )
    _, maps = sp.ssim(x[0], y[0], profile="wang2009", engine="reference", full=True)
    reduced = labels[::2, ::2][5:-5, 5:-5]
    selected = maps["ssim"][reduced == 1]
    assert int(ds["count"].sel(region="label1").values[0]) == selected.size
    assert float(ds["ssim"].sel(region="label1").values[0]) == pytest.approx(
        selected.mean(), abs=TOLERANCE
    )


def test_volume_needs_one_slice_shape():
    import dataclasses

    from pipeline.engine.volumes import as_volume_pair
    from pipeline.inputs.opening import open_pair

    stack = np.zeros((12, 20, 20), np.uint8)
    pair = open_pair(stack, stack)
    with pytest.raises(ValueError, match=r"volume=True needs slices of one shape \(got 2 size"):
        as_volume_pair(dataclasses.replace(pair, groups=(pair, pair)))
    single = as_volume_pair(dataclasses.replace(pair, groups=(pair,)))
    assert single.reference.shape == (1, 12, 20, 20, 1)
