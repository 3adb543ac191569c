"""The compiled squared-error sums of pipeline.kernels.cpu.squared_error.

Reference values: scikit-image's ``skimage.metrics.mean_squared_error`` (an
independent implementation: ``np.mean((x - y) ** 2, dtype=float64)`` after casting
both images to its float type, float32 for two float32 images) on bundled
photographs, and NumPy masks for regions.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import mean_squared_error

from pipeline.kernels.cpu.squared_error import squared_error_sums
from pipeline.testing import degrade, photograph

RTOL = 1e-9


def _pair(name: str, dtype: type, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = photograph(name)
    y = degrade(x, "noise", strength=12.0, rng=rng)
    if dtype is np.uint16:
        return x.astype(np.uint16) * 257, y.astype(np.uint16) * 257
    if dtype in (np.float32, np.float64):
        return (x / 255.0).astype(dtype), (y / 255.0).astype(dtype)
    return x, y


def _block(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 3 else image[None, ..., None]


@pytest.mark.parametrize("name", ["camera", "astronaut"])  # grey and colour
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_mse_equals_skimage_on_photographs(name, dtype, rng) -> None:
    x, y = _pair(name, dtype, rng)
    sums = squared_error_sums(_block(x), _block(y))
    assert sums.shape == (1, 1, 2)
    assert sums[0, 0, 1] == x.size  # every pixel of every channel
    expected = mean_squared_error(x, y)
    np.testing.assert_allclose(sums[0, 0, 0] / sums[0, 0, 1], expected, rtol=RTOL)


def test_views_and_several_images(rng) -> None:
    x = rng.random((3, 50, 61, 2))
    y = rng.random((3, 50, 61, 2))
    view_x, view_y = x[:, 5:40, 3:57], y[:, 5:40, 3:57]  # not contiguous
    sums = squared_error_sums(view_x, view_y)
    for i in range(3):
        expected = mean_squared_error(view_x[i], view_y[i])
        np.testing.assert_allclose(sums[i, 0, 0] / sums[i, 0, 1], expected, rtol=RTOL)


def test_regions_sum_their_own_pixels(rng) -> None:
    x = rng.integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    ids = rng.integers(-1, 4, (2, 40, 30))
    sums = squared_error_sums(x, y, ids, 5)
    squares = ((x.astype(np.float64) - y) ** 2).sum(axis=-1)
    for i in range(2):
        for k in range(4):
            inside = ids[i] == k
            assert sums[i, k + 1, 0] == squares[i][inside].sum()  # integers: exact
            assert sums[i, k + 1, 1] == 3 * inside.sum()
        assert sums[i, 0, 0] == squares[i].sum()


def test_identical_images_sum_to_zero() -> None:
    x = photograph("coffee")[None]
    sums = squared_error_sums(x, x.copy())
    assert sums[0, 0, 0] == 0.0
    assert sums[0, 0, 1] == x.size


def test_skip_unusable_leaves_out_non_finite_values(rng) -> None:
    x = rng.random((1, 10, 12, 1))
    y = rng.random((1, 10, 12, 1))
    x[0, 2, 3, 0] = np.nan
    y[0, 5, 5, 0] = np.inf
    x[0, 7, 7, 0] = 1e200  # beyond the limit given
    sums = squared_error_sums(x, y, skip_unusable=True, limit=1e150)
    keep = np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 1e150)
    assert sums[0, 0, 1] == keep.sum() == x.size - 3
    np.testing.assert_allclose(sums[0, 0, 0], ((x[keep] - y[keep]) ** 2).sum(), rtol=RTOL)
    assert np.isnan(squared_error_sums(x, y)[0, 0, 0])  # not skipped: NaN propagates


def test_mismatched_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match=r"x and y must be \(image, y, x, channel\) blocks"):
        squared_error_sums(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 5, 1)))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_window_of_a_contiguous_block_equals_the_same_view(rng, dtype) -> None:
    """The row-run path (C-contiguous block and a window) against the element path (a view)."""
    x = (rng.random((2, 37, 45, 3)) * 250).astype(dtype)
    y = (rng.random((2, 37, 45, 3)) * 250).astype(dtype)
    window = (slice(5, 31), slice(4, 40))
    ids = rng.integers(-1, 3, (2, 26, 36))
    ids[:, :, 10:20] = 1  # long runs, as grid tiles give
    fast = squared_error_sums(x, y, ids, 4, window=window)
    slow = squared_error_sums(x[:, 5:31, 4:40], y[:, 5:31, 4:40], ids, 4)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    view_x, view_y = x[1, 5:31, 4:40], y[1, 5:31, 4:40]
    expected = mean_squared_error(view_x[ids[1] == 1], view_y[ids[1] == 1])
    np.testing.assert_allclose(fast[1, 2, 0] / fast[1, 2, 1], expected, rtol=RTOL)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_8bit_sums_are_exact_past_an_int32_piece(rng, dtype) -> None:
    # 8-bit pairs sum their squares in int32 pieces of 2^15 values: a row of 40,000
    # values (one piece and part of another) of the largest squares, 255^2 each,
    # passes 2^31 in all and must still come out exact, as must a run of one region
    # that long. Reference: NumPy's int64 sum.
    info = np.iinfo(dtype)
    x = np.full((1, 2, 20_000, 2), info.max, dtype=dtype)
    y = np.full(x.shape, info.min, dtype=dtype)
    x[0, 1] = rng.integers(info.min, int(info.max) + 1, x.shape[2:], dtype=dtype)
    ids = np.zeros((1, 2, 20_000), dtype=np.intp)
    ids[0, :, :100] = -1
    sums = squared_error_sums(x, y, ids, 2)
    squares = ((x.astype(np.int64) - y) ** 2).sum(axis=-1)
    assert squares[0, 0].sum() > 2**31
    assert sums[0, 0, 0] == squares.sum()
    assert sums[0, 1, 0] == squares[0][ids[0] == 0].sum()
    assert sums[0, 1, 1] == 2 * (ids[0] == 0).sum()
    # The element path (views, not contiguous) gives the same numbers.
    wide_x, wide_y = (np.zeros((1, 2, 20_001, 2), dtype=dtype) for _ in range(2))
    wide_x[:, :, :-1], wide_y[:, :, :-1] = x, y
    view_x, view_y = wide_x[:, :, :-1], wide_y[:, :, :-1]
    assert not view_x.flags.c_contiguous
    assert np.array_equal(squared_error_sums(view_x, view_y, ids, 2), sums)
