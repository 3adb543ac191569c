"""pipeline.kernels.downsample: Wang's ``ssim.m`` downsampling, in memory.

The factor rule (``max(1, round(min(H, W) / 256))``, half away from zero as MATLAB
rounds), the box filter's anchor offsets and output shape, and the box filter
itself: by hand for small factors and against an independent SciPy emulation of
``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` followed by
``img(1:f:end, 1:f:end)``. Its compiled form for NumPy planes is tested against
the generic form in tests/kernels/cpu/test_downsample.py; its tiled form over Dask
chunks, and the ``wang2009`` profile that applies it, in tests/tiling/test_downsample.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import imfilter_then_sample

from pipeline.kernels.downsample import (
    box_downsample,
    box_offsets,
    downsampled_shape,
    wang2009_factor,
)


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
