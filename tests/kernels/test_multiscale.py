"""The scale rules of pipeline.kernels.multiscale: the downsampling step and the size bound.

``combine_scales`` (negative cs clamped to zero) and the whole MS-SSIM are checked
through ``pipeline.ms_ssim`` in tests/metrics/test_multiscale.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline as sp
from pipeline.kernels.multiscale import downsample_scale, max_scales, min_side_for_scales


def test_downsample_scale_rule() -> None:
    x = np.arange(15, dtype=np.float64).reshape(3, 5)
    # Pairs of rows/cols averaged; the odd last row and column repeat their edge sample.
    # Row means (r0 + r1) / 2 = [2.5 .. 6.5] and r2 = [10 .. 14]; then column pairs.
    expected = np.array([[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]])
    np.testing.assert_array_equal(downsample_scale(x), expected)


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
