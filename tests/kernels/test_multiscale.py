"""The scale rules of pipeline.kernels.multiscale: the downsampling step, the pyramid's
dtype and the size bound.

``combine_scales`` (negative cs clamped to zero) and the whole MS-SSIM are checked
through ``pipeline.ms_ssim`` in tests/metrics/test_multiscale.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline as sp
from pipeline.kernels.multiscale import (
    downsample_scale,
    max_scales,
    min_side_for_scales,
    pyramid_dtype,
)


def test_downsample_scale_rule() -> None:
    x = np.arange(15, dtype=np.float64).reshape(3, 5)
    # Pairs of rows/cols averaged; the odd last row and column repeat their edge sample.
    # Row means (r0 + r1) / 2 = [2.5 .. 6.5] and r2 = [10 .. 14]; then column pairs.
    expected = np.array([[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]])
    np.testing.assert_array_equal(downsample_scale(x), expected)


def test_pyramid_dtype_is_float32_only_where_every_mean_is_a_float32_number() -> None:
    # k / 4^s with |k| < 2^(bits + 2 s): float32 while bits + 2 s <= 24.
    assert [pyramid_dtype(np.uint8, s) for s in (1, 4, 8, 9)] == [np.float32] * 3 + [np.float64]
    assert [pyramid_dtype(np.int16, s) for s in (1, 4, 5)] == [np.float32] * 2 + [np.float64]
    assert pyramid_dtype(np.bool_, 4) == np.float32
    for dtype in (np.int32, np.uint64, np.float32, np.float64):
        assert pyramid_dtype(dtype, 1) == np.float64


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_float32_pyramid_holds_the_float64_pyramids_values(dtype) -> None:
    # Pixels over the dtype's whole range, odd sides (the mirrored last sample) and every
    # scale float32 is chosen for: each level equals the float64 pyramid's, exactly.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(info.bits)
    x = rng.integers(info.min, info.max, (301, 333), dtype=dtype, endpoint=True)
    x[:50, :50] = info.max  # a flat corner at the top of the range
    wide, narrow = x, x
    for scale in range(1, 6):
        chosen = pyramid_dtype(dtype, scale)
        wide = downsample_scale(wide)
        narrow = downsample_scale(narrow, chosen)
        assert narrow.dtype == chosen
        np.testing.assert_array_equal(narrow.astype(np.float64), wide)
    assert chosen == (np.float32 if info.bits == 8 else np.float64)


def test_minimum_side_formula() -> None:
    assert min_side_for_scales(5, 11) == 161
    assert min_side_for_scales(1, 11) == 11
    assert max_scales(160, 11) == 4
    assert max_scales(161, 11) == 5
    assert max_scales(10, 11) == 0
    # The bound is exact: 161 works, 160 does not.
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (161, 161))
    assert 0 < sp.ms_ssim(x, x * 0.9, data_range=1.0) <= 1
    with pytest.raises(ValueError, match=r"needs every spatial side >= 161 .*\(160, 161\)"):
        sp.ms_ssim(x[:160], x[:160], data_range=1.0)
