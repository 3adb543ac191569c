"""Packed partial statistics of SSIM maps: the layout, the histogram bins, the merge.

Every kernel that reduces maps (the compiled CPU reductions of
:mod:`pipeline.kernels.cpu.partials`, the fused kernels that call them row by
row, the device reduction of :mod:`pipeline.kernels.gpu.statistics`) writes the
same small float64 row per image and region: the fields of :data:`FIELDS`, then
the counts of a histogram over :func:`bin_edges`. Rows combine exactly in any
order (:func:`merge_statistics`): counts, sums and histograms add, minima and
maxima take min/max, and the sums of squared deviations combine by Chan, Golub
& LeVeque's pairwise update ``M2 = M2_a + M2_b + n_a n_b / n (mean_a - mean_b)^2``
(generalised to many parts at once), which keeps the standard deviation
accurate where ``sum(x^2) - n mean^2`` would cancel. NumPy only: CPU and GPU
paths share it.

Three fields are not statistics of the SSIM map but of the pixels themselves,
for MSE and PSNR: ``squared_error`` (the sum of squared pixel differences over
the block's own pixels, every channel), ``error_count`` (how many values that
sum holds) and ``peak_squared`` (the square of the data range the pair is
scored with; merged by max, so that finalising needs nothing but the row).

References
----------
T. F. Chan, G. H. Golub, R. J. LeVeque, "Algorithms for computing the sample
variance: analysis and recommendations", The American Statistician 37(3), 1983.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "COUNT",
    "ERROR_COUNT",
    "FIELDS",
    "HIST",
    "M2",
    "MAX",
    "MAX_BINS",
    "MIN",
    "PEAK_SQUARED",
    "SQUARED_ERROR",
    "SUM",
    "SUM_CONTRAST",
    "SUM_LUMINANCE",
    "SUM_STRUCTURE",
    "bin_edges",
    "empty_statistics",
    "merge_statistics",
]

#: The fields of a packed row, before its histogram counts.
FIELDS = (
    "count",
    "sum",
    "m2",
    "sum_luminance",
    "sum_contrast",
    "sum_structure",
    "min",
    "max",
    "squared_error",
    "error_count",
    "peak_squared",
)
#: Index of each field in a packed row (``row[SUM]`` is the sum of the SSIM values).
(
    COUNT,
    SUM,
    M2,
    SUM_LUMINANCE,
    SUM_CONTRAST,
    SUM_STRUCTURE,
    MIN,
    MAX,
    SQUARED_ERROR,
    ERROR_COUNT,
    PEAK_SQUARED,
) = range(len(FIELDS))
#: Index of the first histogram count in a packed row.
HIST = len(FIELDS)

#: Most histogram bins: the compiled CPU reduction holds bin indices as int32.
MAX_BINS = 2**31 - 2


def bin_edges(bins: int) -> np.ndarray:
    """The ``bins + 1`` equal-width histogram edges over [-1, 1].

    ``edges[i] = i * (2 / bins) - 1`` (float64, two rounded operations) and
    ``edges[bins] = 1``: the values ``np.linspace(-1, 1, bins + 1)`` gives,
    written out because the compiled kernels recompute them from the index.
    """
    if bins > MAX_BINS:
        raise ValueError(f"bins must be at most {MAX_BINS} (got {bins})")
    edges = np.arange(bins + 1, dtype=np.float64) * (2.0 / bins) - 1.0
    edges[-1] = 1.0
    return edges


def empty_statistics(n_images: int, n_regions: int, bins: int) -> np.ndarray:
    """Partials of no pixels: zero counts and sums, min +inf, max -inf, no data range (0)."""
    out = np.zeros((n_images, n_regions, HIST + bins))
    out[..., MIN] = np.inf
    out[..., MAX] = -np.inf
    return out


def merge_statistics(parts: np.ndarray, axis: int | tuple[int, ...], keepdims: bool = False) -> Any:
    """Combine packed partials along ``axis`` (one or several axes) into one.

    Counts, sums and histograms add; min/max reduce (``peak_squared`` too, by
    max: every part of one pair carries the same value or 0); ``M2`` combines
    with the generalised Chan update ``sum M2_i + sum n_i (mean_i - mean)^2``.
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % parts.ndim for a in axes)
    count = parts[..., COUNT]
    total = count.sum(axis=axes, keepdims=True)
    out = parts.sum(axis=axes, keepdims=True)
    out[..., MIN] = parts[..., MIN].min(axis=axes, keepdims=True)
    out[..., MAX] = parts[..., MAX].max(axis=axes, keepdims=True)
    out[..., PEAK_SQUARED] = parts[..., PEAK_SQUARED].max(axis=axes, keepdims=True)
    part_mean = np.divide(parts[..., SUM], count, out=np.zeros_like(count), where=count > 0)
    mean = np.divide(out[..., SUM], total, out=np.zeros_like(total), where=total > 0)
    spread = np.where(count > 0, count * (part_mean - mean) ** 2, 0.0)
    out[..., M2] = parts[..., M2].sum(axis=axes, keepdims=True) + spread.sum(
        axis=axes, keepdims=True
    )
    return out if keepdims else out.squeeze(axis=axes)
