"""Compiled reductions of SSIM map values into packed partial statistics (numba).

The rows of :mod:`pipeline.kernels.statistics` (``FIELDS`` then the histogram)
made from maps on the CPU, without a temporary per statistic and without a
Python loop over pixels or labels:

* :func:`add_row_partial` adds one map row to a packed row; the fused kernels
  (:mod:`pipeline.kernels.cpu.fused`, :mod:`pipeline.kernels.cpu.colour`) call
  it on each output row while it is in cache, so whole maps are never stored
  (its ``SUM`` and ``M2`` from the row's deficits ``1 - ssim``, not from the
  float32 map);
* :func:`whole_image_statistics` (region ``all``) and :func:`region_statistics`
  (sub-regions keyed by a region id per pixel) reduce stored maps, in two
  passes over runs of one region id: counts, sums, extremes and the histogram
  (:mod:`pipeline.kernels.cpu.histogram`), then the squared deviations about
  each region's mean. Given the stored deficit map (``fused_maps(...,
  deficit=True)``) they take ``SUM`` and ``M2`` from it, as :func:`add_row_partial`
  does, so a region's mean is the packed path's (region ``all``: the same row sums).
"""

from __future__ import annotations

import numba
import numpy as np

from pipeline.kernels.cpu.histogram import add_extremes_and_counts
from pipeline.kernels.statistics import (
    COUNT,
    HIST,
    M2,
    MAX,
    MIN,
    SUM,
    SUM_CONTRAST,
    SUM_LUMINANCE,
    SUM_STRUCTURE,
)

__all__ = ["add_centre_pixels", "add_row_partial", "region_statistics", "whole_image_statistics"]

# Sums are reassociated (vectorised) float64 reductions: these are statistics of a
# map, and reordering a float64 sum moves it by ~1e-16 relative, far below every
# tolerance. Nothing else in the kernels is compiled with fastmath.
_SUMS = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def _segment_sums(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """Float64 sums of the four maps over one run (equal 1-D views)."""
    total = 0.0
    sum_l = 0.0
    sum_c = 0.0
    sum_s = 0.0
    for k in range(ssim.shape[0]):
        total += np.float64(ssim[k])
        sum_l += np.float64(luminance[k])
        sum_c += np.float64(contrast[k])
        sum_s += np.float64(structure[k])
    return total, sum_l, sum_c, sum_s


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def _segment_m2(ssim: np.ndarray, mean: float) -> float:  # pragma: no cover - compiled
    """Sum of squared deviations about ``mean`` over one run."""
    m2 = 0.0
    for k in range(ssim.shape[0]):
        d = np.float64(ssim[k]) - mean
        m2 += d * d
    return m2


@numba.njit(cache=True, nogil=True)
def _add_segment(
    ssim: np.ndarray,
    values: np.ndarray,
    deficit: bool,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    row: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add one run of the four maps (equal 1-D views) to a packed row, but its ``M2``.

    ``SUM`` is the sum of ``values`` (``ssim`` itself), or with ``deficit`` the run's
    length less it (``values`` the kernel's ``1 - ssim``: the row sum
    :func:`add_row_partial` makes). ``deficit`` is a runtime flag, not two functions:
    numba compiles both sides of an ``is None`` test on an array argument.

    The histogram bins are the row's histogram fields, over
    :func:`~pipeline.kernels.statistics.bin_edges` of their count, as
    ``np.histogram`` places values: bin ``i`` holds ``edges[i] <= v < edges[i +
    1]``, the last bin also ``v == 1``; values a rounding error outside [-1, 1]
    go to the end bins so that every pixel is counted
    (:mod:`pipeline.kernels.cpu.histogram`).

    Runs are views, never ``(start, stop)`` bounds: numba types a constant
    argument (the 0 of a whole row) as a literal, which would compile this
    chain once for the literal and once more for the bounds of region runs.
    """
    total, sum_l, sum_c, sum_s = _segment_sums(values, luminance, contrast, structure)
    n = ssim.shape[0]
    row[COUNT] += n
    row[SUM] += n - total if deficit else total
    row[SUM_LUMINANCE] += sum_l
    row[SUM_CONTRAST] += sum_c
    row[SUM_STRUCTURE] += sum_s
    row[MIN], row[MAX] = add_extremes_and_counts(ssim, row[MIN], row[MAX], row[HIST:])


@numba.njit(cache=True, nogil=True)
def add_row_partial(
    ssim: np.ndarray,
    deficit: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    n: int,
    row: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against the two-pass reduction in the tests
    """Add the first ``n`` values of one map row to a packed region row, in place.

    For kernels that make a map row by row and never store the maps: the row's
    own two passes (sums, then squared deviations about the row's mean) run while
    it is in cache, and its ``M2`` joins the running one by Chan's pairwise update,
    so ``m2`` stays as accurate as the two-pass :func:`whole_image_statistics`.

    ``SUM`` and ``M2`` come from ``deficit`` (``1 - ssim``, kept by the kernel to
    float32's relative precision): ``SUM = n - sum(deficit)`` and ``M2`` about the
    deficits' mean (the same variance), so the mean is free of the float32
    rounding of the ``ssim`` map near 1 (up to 3e-8 per pixel). The extremes and
    the histogram are those of the float32 ``ssim`` row, as for stored maps.
    """
    if n <= 0:
        return
    ssim = ssim[:n]
    deficit = deficit[:n]
    lack, sum_l, sum_c, sum_s = _segment_sums(deficit, luminance[:n], contrast[:n], structure[:n])
    total = n - lack
    m2 = _segment_m2(deficit, lack / n)
    count = row[COUNT]
    if count > 0:
        delta = total / n - row[SUM] / count
        m2 += delta * delta * (count * n / (count + n))
    row[COUNT] = count + n
    row[SUM] += total
    row[M2] += m2
    row[SUM_LUMINANCE] += sum_l
    row[SUM_CONTRAST] += sum_c
    row[SUM_STRUCTURE] += sum_s
    row[MIN], row[MAX] = add_extremes_and_counts(ssim, row[MIN], row[MAX], row[HIST:])


@numba.njit(cache=True, nogil=True)
def whole_image_statistics(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    out: np.ndarray,
    values: np.ndarray,
    deficit: bool,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Region ``all`` of each image, ``out[image, field]`` filled in place.

    One pass gives counts, sums, extremes and the histogram; a second the squared
    deviations about the image's mean (no ``sum(x^2) - n mean^2`` cancellation).
    ``nogil`` lets Dask threads run it side by side.

    ``SUM`` and ``M2`` are those of ``values`` (the shape of ``ssim``): ``ssim``
    itself, or with ``deficit`` the kernel's ``1 - ssim`` (``fused_maps(...,
    deficit=True)``, float32, or float64 for a channel mean). ``SUM`` is then
    ``count - sum(values)`` row by row and ``M2`` the deficits' squared deviations
    about their mean (the same variance), as in :func:`add_row_partial`: free of the
    float32 ``ssim`` map's rounding near 1 (up to 3e-8 a pixel, the same on every pixel
    of a flat pair). Extremes and histogram are those of ``ssim``.
    """
    n, h = ssim.shape[:2]
    for i in range(n):
        row = out[i]
        for r in range(h):
            _add_segment(
                ssim[i, r], values[i, r], deficit, luminance[i, r], contrast[i, r],
                structure[i, r], row,
            )  # fmt: skip
        count = row[COUNT]
        mean = (count - row[SUM] if deficit else row[SUM]) / count
        m2 = 0.0
        for r in range(h):
            m2 += _segment_m2(values[i, r], mean)
        row[M2] = m2


@numba.njit(cache=True, nogil=True)
def region_statistics(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    ids: np.ndarray,
    out: np.ndarray,
    values: np.ndarray,
    deficit: bool,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Every sub-region of each image, keyed by ``ids`` (``-1``: none), in place.

    Each row is cut into runs of one region id (whole tile widths for a grid), and
    every run is reduced like a row of region ``all``; a second pass adds squared
    deviations about each region's own mean. ``values`` and ``deficit``: as in
    :func:`whole_image_statistics` (``SUM`` and ``M2`` from ``values``).
    """
    n, h, w = ssim.shape
    n_sub = out.shape[1]
    for i in range(n):
        for r in range(h):
            label = ids[i, r]
            k = 0
            while k < w:
                g = label[k]
                start = k
                while k < w and label[k] == g:
                    k += 1
                if g >= 0:
                    run = slice(start, k)
                    _add_segment(
                        ssim[i, r, run],
                        values[i, r, run],
                        deficit,
                        luminance[i, r, run],
                        contrast[i, r, run],
                        structure[i, r, run],
                        out[i, g],
                    )
        # Each region's mean SSIM, or with deficits its mean deficit.
        means = np.zeros(n_sub)
        for g in range(n_sub):
            count = out[i, g, COUNT]
            if count > 0:
                means[g] = (count - out[i, g, SUM] if deficit else out[i, g, SUM]) / count
        for r in range(h):
            label = ids[i, r]
            k = 0
            while k < w:
                g = label[k]
                start = k
                while k < w and label[k] == g:
                    k += 1
                if g >= 0:
                    out[i, g, M2] += _segment_m2(values[i, r, start:k], means[g])


@numba.njit(cache=True, nogil=True)
def _add_centre_rows(
    rows: np.ndarray,
    channels: int,
    depth: int,
    out: np.ndarray,
    component: int,
    row_sum: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    h, w = out.shape[1], out.shape[2]
    n = rows.shape[0]
    start = depth * channels
    width = w * channels
    for r in range(h):
        # Every image's row summed first: one contiguous, vectorised loop per image
        # (the slice starts the loop at the first centre, so it vectorises).
        row_sum[:] = 0
        for i in range(n):
            row = rows[i, depth + r, start : start + width]
            for j in range(width):
                row_sum[j] += row[j]
        dst = out[component, r]
        for c in range(w):
            total = 0.0
            for k in range(channels):
                total += np.float64(row_sum[c * channels + k])
            dst[c] += total / channels


def add_centre_pixels(x: np.ndarray, depth: int, out: np.ndarray, component: int) -> None:
    """``out[component, r, c] +=`` the channel mean of ``x[i, depth + r, depth + c]``, every ``i``.

    ``x`` is an overlapped ``(images, h + 2 depth, w + 2 depth, channels)`` block and
    ``out`` a ``(components, h, w)`` float64 array: the sum over the block's images of
    the pixels at the valid map's window centres (the backdrop of a mean SSIM map),
    one compiled pass over the pixels. Integer pixels are summed over the images in
    int32 where that cannot overflow (exact, and twice the lanes of float64), others
    in float64; the channel mean is taken in float64.
    """
    n, height, width, channels = x.shape
    rows = np.ascontiguousarray(x).reshape(n, height, width * channels)
    if rows.dtype.kind not in "iu" and rows.dtype not in (np.float32, np.float64):
        # float16 (and bool) pixels, which numba does not compile: summed in float64.
        rows = rows.astype(np.float64)
    w = out.shape[2]
    accumulator: type[np.generic] = np.float64
    if x.dtype.kind in "iu" and x.dtype.itemsize <= 2:
        info = np.iinfo(x.dtype)
        if n * max(abs(int(info.min)), int(info.max)) < 2**31:
            accumulator = np.int32
    _add_centre_rows(rows, channels, depth, out, component, np.empty(w * channels, accumulator))
