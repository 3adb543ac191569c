"""pipeline.tiling.downsample, and the ``wang2009`` profile whose downsampling it tiles.

The tiled downsampling (:func:`~pipeline.tiling.downsample.downsample_array`) is bitwise
the in-memory one, whatever the chunks (its compiled blocks bitwise the generic form of
the whole image), and its chunk alignment. The ``wang2009``
profile (Wang's ``ssim.m``: downsample, then wang2004) is pinned here too: its table
entry, and its scores against scikit-image on the reduced images for f = 1, 2, 3. The
in-memory rule itself, :mod:`pipeline.kernels.downsample`, is tested in
tests/kernels/test_downsample.py.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_cases import imfilter_then_sample
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.kernels import downsample as kernels_downsample
from pipeline.kernels.downsample import box_downsample, downsampled_shape
from pipeline.metrics.profiles import PROFILES, Profile, SSIMParams
from pipeline.tiling import downsample as tiling_downsample
from pipeline.tiling.downsample import align_chunks, downsample_array

SKIMAGE_WANG2004 = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


@pytest.mark.parametrize(("side", "factor"), [(300, 1), (400, 2), (640, 3)])
def test_wang2009_score_is_wang2004_on_the_reduced_images(side: int, factor: int) -> None:
    rng = np.random.default_rng(side)
    x = rng.integers(0, 256, (side, side + 7), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    got = sp.ssim(x, y, profile="wang2009")
    xs = imfilter_then_sample(x.astype(np.float64), factor)
    ys = imfilter_then_sample(y.astype(np.float64), factor)
    assert xs.shape == downsampled_shape(x.shape, factor)
    expected = structural_similarity(xs, ys, data_range=255, **SKIMAGE_WANG2004)
    assert got == pytest.approx(expected, abs=1e-6)
    # The profile scores its own reduced images, which are the emulation's to float64
    # rounding; the score of images 1e-16 apart moves by the float32 rounding of a
    # column mean here and there (4e-12 at f = 3).
    xr = box_downsample(x, factor)
    assert np.abs(xr - xs).max() <= 1e-12
    assert got == sp.ssim(xr, box_downsample(y, factor), data_range=255)
    assert got == pytest.approx(sp.ssim(xs, ys, data_range=255), abs=1e-10)
    if factor == 1:
        assert got == sp.ssim(x, y, profile="wang2004")
    else:
        assert abs(got - sp.ssim(x, y, profile="wang2004")) > 1e-4


def test_wang2009_full_maps_are_on_the_reduced_grid() -> None:
    rng = np.random.default_rng(10)
    x = rng.integers(0, 256, (400, 410), dtype=np.uint8)
    _, maps = sp.ssim(x, x, profile="wang2009", full=True)
    assert maps["ssim"].shape == (200 - 10, 205 - 10)


def test_wang2009_colour_per_channel() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (390, 400, 3), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    per_channel = [sp.ssim(x[..., c], y[..., c], profile="wang2009") for c in range(3)]
    got = sp.ssim(x, y, profile="wang2009", channel_axis=-1)
    assert got == pytest.approx(np.mean(per_channel), abs=1e-14)


def test_profile_table_entry() -> None:
    profile = PROFILES["wang2009"]
    assert profile.params == PROFILES["wang2004"].params
    assert profile.downsample == "ssim.m"
    assert profile.downsample_factor((640, 900)) == 3
    assert PROFILES["wang2004"].downsample_factor((640, 900)) == 1


def test_unknown_downsample_rule_refused() -> None:
    with pytest.raises(ValueError, match=r"downsample must be None or one of ssim.m \(got 'x'\)"):
        Profile(name="p", params=SSIMParams(), reference="", tolerance=1e-6, downsample="x")


@given(
    data=st.data(),
    factor=st.integers(2, 6),
    height=st.integers(3, 40),
    width=st.integers(3, 40),
    floats=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_tiled_downsampling_is_bitwise_the_in_memory_one(data, factor, height, width, floats):
    # Every NumPy block takes the compiled form (counted), which must place each block in
    # the whole image: the in-memory result, and the generic padded-views form of the whole
    # image, are the references.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = (2, height, width, 1)
    x = rng.uniform(-300.0, 300.0, shape) if floats else rng.integers(0, 256, shape, np.uint8)
    cy = data.draw(st.integers(1, height))
    cx = data.draw(st.integers(1, width))
    calls = []

    def counted(*args):
        calls.append(args[3])
        return kernels_downsample.compiled_box_downsample(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiling_downsample, "compiled_box_downsample", counted)
        tiled = downsample_array(da.from_array(x, chunks=(1, cy, cx, 1)), factor, (1, 2))
        tiled = tiled.compute()
        in_memory = box_downsample(x, factor, (1, 2))
        patch.setattr(kernels_downsample, "compiled_box_downsample", lambda *args, **kwargs: None)
        generic = box_downsample(x, factor, (1, 2))
    assert calls and all(place is not None for place in calls)
    np.testing.assert_array_equal(tiled, in_memory)
    np.testing.assert_array_equal(tiled, generic)


def test_align_chunks_moves_boundaries_down_to_multiples():
    assert align_chunks((7, 7, 7, 2), 3) == (6, 6, 9, 2)
    assert align_chunks((1, 1, 1, 1, 1), 2) == (2, 2, 1)
    assert align_chunks((10,), 4) == (10,)
