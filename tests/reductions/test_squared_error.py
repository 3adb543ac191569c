"""Squared errors added to packed statistics, and MSE/PSNR from them.

Reference values: scikit-image's ``mean_squared_error`` and
``peak_signal_noise_ratio(data_range=...)`` (independent implementations). The
array-module path (what a CuPy block takes) is checked here on NumPy arrays: the
same sums as the compiled loop; on a GPU it is not verified by this suite.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from pipeline.kernels.statistics import (
    ERROR_COUNT,
    PEAK_SQUARED,
    SQUARED_ERROR,
    empty_statistics,
    merge_statistics,
)
from pipeline.reductions import squared_error
from pipeline.reductions.squared_error import add_squared_error, block_squared_error
from pipeline.reductions.statistics import finalize_statistics, mse_and_psnr
from pipeline.testing import degrade, photograph

RTOL = 1e-9


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("skip", [False, True])
def test_array_module_path_equals_the_compiled_loop(rng, dtype, skip) -> None:
    x = (rng.random((2, 30, 41, 3)) * 200).astype(dtype)
    y = (rng.random((2, 30, 41, 3)) * 200).astype(dtype)
    ids = rng.integers(-1, 3, (2, 30, 41))
    compiled = block_squared_error(x, y, ids, 4, skip_unusable=skip)
    generic = squared_error._array_module_sums(x, y, ids, 4, skip, None)
    np.testing.assert_allclose(generic, compiled, rtol=1e-12)


def test_packed_partials_of_tiles_merge_to_skimage(rng) -> None:
    """Tiles of a photograph, each its own pixels, merged: the whole image's MSE and PSNR."""
    x = photograph("astronaut")
    y = degrade(x, "jpeg", strength=15.0, rng=rng).astype(np.uint8)
    bins = 4
    parts = []
    for rows in (slice(0, 170), slice(170, 512)):
        for cols in (slice(0, 99), slice(99, 300), slice(300, 512)):
            packed = empty_statistics(1, 1, bins)
            block_x, block_y = x[None, rows, cols], y[None, rows, cols]
            parts.append(add_squared_error(packed, block_x, block_y, None, peak_squared=255.0**2))
    merged = merge_statistics(np.stack(parts), axis=0)
    mse, psnr = mse_and_psnr(merged)
    np.testing.assert_allclose(mse[0, 0], mean_squared_error(x, y), rtol=RTOL)
    np.testing.assert_allclose(psnr[0, 0], peak_signal_noise_ratio(x, y, data_range=255), rtol=RTOL)
    assert merged[0, 0, PEAK_SQUARED] == 255.0**2
    assert merged[0, 0, ERROR_COUNT] == x.size


def test_finalize_gives_inf_for_identical_and_nan_without_pixels() -> None:
    packed = empty_statistics(3, 1, 2)
    packed[0, 0, [SQUARED_ERROR, ERROR_COUNT, PEAK_SQUARED]] = (0.0, 100.0, 1.0)  # identical
    packed[1, 0, [SQUARED_ERROR, ERROR_COUNT, PEAK_SQUARED]] = (5.0, 10.0, 0.0)  # no range
    # packed[2]: no pixel counted (e.g. a volume run)
    stats = finalize_statistics(packed)
    assert stats["mse"][0, 0] == 0.0
    assert stats["psnr"][0, 0] == np.inf
    assert stats["mse"][1, 0] == 0.5
    assert np.isnan(stats["psnr"][1, 0])
    assert np.isnan(stats["mse"][2, 0])
    assert np.isnan(stats["psnr"][2, 0])


def test_merge_keeps_the_data_range_by_max() -> None:
    parts = empty_statistics(3, 1, 2)
    parts[1, 0, PEAK_SQUARED] = 4.0
    merged = merge_statistics(parts, axis=0)
    assert merged[0, PEAK_SQUARED] == 4.0


def test_no_data_range_and_zero_error_give_nan_without_a_warning() -> None:
    packed = empty_statistics(1, 1, 2)
    packed[0, 0, ERROR_COUNT] = 9.0  # squared error 0, peak 0: a pair without a data range
    _, psnr = mse_and_psnr(packed)  # filterwarnings=error: a 0/0 warning would fail
    assert np.isnan(psnr[0, 0])
