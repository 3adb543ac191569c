"""Partial statistics of SSIM maps per image and region, and their tree combination.

A block's maps are reduced at once to a small packed array shaped
``(image, region, field)`` (:data:`FIELDS` then the histogram), so whole maps
never leave the task that computed them. Partials combine exactly in any order:
counts, sums and histograms add, minima and maxima take min/max, and the sum of
squared deviations combines by Chan, Golub & LeVeque's pairwise update
``M2 = M2_a + M2_b + n_a n_b / n (mean_a - mean_b)^2`` (generalised to many parts
at once), which keeps ``ssim_std`` accurate where ``sum(x^2) - n mean^2`` would
cancel. Blocks are reduced by compiled two-pass loops over runs of one region id
(one pass for counts, sums, extremes and the histogram, one for squared
deviations about each region's mean): no Python loop over pixels or labels, and
no temporary per statistic.

References
----------
T. F. Chan, G. H. Golub, R. J. LeVeque, "Algorithms for computing the sample
variance: analysis and recommendations", The American Statistician 37(3), 1983.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from pipeline.kernels.cpu.histogram import add_extremes_and_counts, bin_edges

__all__ = [
    "FIELDS",
    "bin_edges",
    "block_statistics",
    "empty_statistics",
    "finalize_statistics",
    "merge_statistics",
    "unscored_reasons",
]

FIELDS = ("count", "sum", "m2", "sum_luminance", "sum_contrast", "sum_structure", "min", "max")
_COUNT, _SUM, _M2, _SUM_L, _SUM_C, _SUM_S, _MIN, _MAX = range(len(FIELDS))
_HIST = len(FIELDS)
_COMPONENTS = ("luminance", "contrast", "structure")


def empty_statistics(n_images: int, n_regions: int, bins: int) -> np.ndarray:
    """Partials of no pixels: zero counts and sums, min +inf, max -inf."""
    out = np.zeros((n_images, n_regions, _HIST + bins))
    out[..., _MIN] = np.inf
    out[..., _MAX] = -np.inf
    return out


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
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    row: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add one run of the four maps (equal 1-D views) to a packed row, but its ``M2``.

    The histogram bins are the row's histogram fields, over :func:`bin_edges` of
    their count, as ``np.histogram`` places values: bin ``i`` holds ``edges[i] <=
    v < edges[i + 1]``, the last bin also ``v == 1``; values a rounding error
    outside [-1, 1] go to the end bins so that every pixel is counted
    (:mod:`pipeline.kernels.cpu.histogram`).

    Runs are views, never ``(start, stop)`` bounds: numba types a constant
    argument (the 0 of a whole row) as a literal, which would compile this
    chain once for the literal and once more for the bounds of region runs.
    """
    total, sum_l, sum_c, sum_s = _segment_sums(ssim, luminance, contrast, structure)
    row[_COUNT] += ssim.shape[0]
    row[_SUM] += total
    row[_SUM_L] += sum_l
    row[_SUM_C] += sum_c
    row[_SUM_S] += sum_s
    row[_MIN], row[_MAX] = add_extremes_and_counts(ssim, row[_MIN], row[_MAX], row[_HIST:])


@numba.njit(cache=True, nogil=True)
def add_row_partial(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    n: int,
    row: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against block_statistics in the tests
    """Add the first ``n`` values of one map row to a packed region row, in place.

    For kernels that make a map row by row and never store the maps: the row's
    own two passes (sums, then squared deviations about the row's mean) run while
    it is in cache, and its ``M2`` joins the running one by Chan's pairwise update,
    so ``m2`` stays as accurate as the two-pass :func:`block_statistics`.
    """
    if n <= 0:
        return
    ssim = ssim[:n]
    total, sum_l, sum_c, sum_s = _segment_sums(ssim, luminance[:n], contrast[:n], structure[:n])
    mean = total / n
    m2 = _segment_m2(ssim, mean)
    count = row[_COUNT]
    if count > 0:
        delta = mean - row[_SUM] / count
        m2 += delta * delta * (count * n / (count + n))
    row[_COUNT] = count + n
    row[_SUM] += total
    row[_M2] += m2
    row[_SUM_L] += sum_l
    row[_SUM_C] += sum_c
    row[_SUM_S] += sum_s
    row[_MIN], row[_MAX] = add_extremes_and_counts(ssim, row[_MIN], row[_MAX], row[_HIST:])


@numba.njit(cache=True, nogil=True)
def _whole_image_statistics(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Region ``all`` of each image, ``out[image, field]`` filled in place.

    One pass gives counts, sums, extremes and the histogram; a second the squared
    deviations about the image's mean (no ``sum(x^2) - n mean^2`` cancellation).
    ``nogil`` lets Dask threads run it side by side.
    """
    n, h = ssim.shape[:2]
    for i in range(n):
        row = out[i]
        for r in range(h):
            _add_segment(ssim[i, r], luminance[i, r], contrast[i, r], structure[i, r], row)
        mean = row[_SUM] / row[_COUNT]
        m2 = 0.0
        for r in range(h):
            m2 += _segment_m2(ssim[i, r], mean)
        row[_M2] = m2


@numba.njit(cache=True, nogil=True)
def _region_statistics(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    ids: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Every sub-region of each image, keyed by ``ids`` (``-1``: none), in place.

    Each row is cut into runs of one region id (whole tile widths for a grid), and
    every run is reduced like a row of region ``all``; a second pass adds squared
    deviations about each region's own mean.
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
                        luminance[i, r, run],
                        contrast[i, r, run],
                        structure[i, r, run],
                        out[i, g],
                    )
        means = np.zeros(n_sub)
        for g in range(n_sub):
            if out[i, g, _COUNT] > 0:
                means[g] = out[i, g, _SUM] / out[i, g, _COUNT]
        for r in range(h):
            label = ids[i, r]
            k = 0
            while k < w:
                g = label[k]
                start = k
                while k < w and label[k] == g:
                    k += 1
                if g >= 0:
                    out[i, g, _M2] += _segment_m2(ssim[i, r, start:k], means[g])


def block_statistics(
    maps: dict[str, np.ndarray],
    region_ids: np.ndarray | None,
    n_regions: int,
    bins: int,
) -> np.ndarray:
    """Packed partial statistics of one block.

    Parameters
    ----------
    maps : dict of ndarray
        ``ssim``, ``luminance``, ``contrast``, ``structure`` maps shaped
        ``(images, h, w)``, float64 or float32 (accumulated in float64).
    region_ids : ndarray or None
        ``(images, h, w)`` index of each pixel's region besides ``all``
        (``-1`` for none), or None when there is only ``all``.
    n_regions : int
        Number of regions including ``all``.
    bins : int
        Histogram bins over [-1, 1].

    Returns
    -------
    ndarray, shape ``(images, n_regions, 8 + bins)``
    """
    ssim = maps["ssim"]
    n_images = ssim.shape[0]
    out = empty_statistics(n_images, n_regions, bins)
    if ssim.size == 0:
        return out
    # Region "all": a compiled two-pass loop (NumPy's ufuncs take a pass per statistic).
    whole = np.ascontiguousarray(out[:, 0, :])
    _whole_image_statistics(ssim, maps["luminance"], maps["contrast"], maps["structure"], whole)
    out[:, 0, :] = whole
    if region_ids is None or n_regions == 1:
        return out

    sub = np.ascontiguousarray(out[:, 1:, :])
    _region_statistics(
        ssim,
        maps["luminance"],
        maps["contrast"],
        maps["structure"],
        region_ids,
        sub,
    )
    out[:, 1:, :] = sub
    return out


def merge_statistics(parts: np.ndarray, axis: int | tuple[int, ...], keepdims: bool = False) -> Any:
    """Combine packed partials along ``axis`` (one or several axes) into one.

    Counts, sums and histograms add; min/max reduce; ``M2`` combines with the
    generalised Chan update ``sum M2_i + sum n_i (mean_i - mean)^2``.
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % parts.ndim for a in axes)
    count = parts[..., _COUNT]
    total = count.sum(axis=axes, keepdims=True)
    out = parts.sum(axis=axes, keepdims=True)
    out[..., _MIN] = parts[..., _MIN].min(axis=axes, keepdims=True)
    out[..., _MAX] = parts[..., _MAX].max(axis=axes, keepdims=True)
    part_mean = np.divide(parts[..., _SUM], count, out=np.zeros_like(count), where=count > 0)
    mean = np.divide(out[..., _SUM], total, out=np.zeros_like(total), where=total > 0)
    spread = np.where(count > 0, count * (part_mean - mean) ** 2, 0.0)
    out[..., _M2] = parts[..., _M2].sum(axis=axes, keepdims=True) + spread.sum(
        axis=axes, keepdims=True
    )
    return out if keepdims else out.squeeze(axis=axes)


def finalize_statistics(packed: np.ndarray) -> dict[str, np.ndarray]:
    """Means, std, min, max, count and histogram from packed statistics ``(..., fields)``.

    Regions without valid pixels get NaN statistics and a zero count.
    """
    count = packed[..., _COUNT]
    has = count > 0
    nan = np.full(count.shape, np.nan)

    def mean_of(field: int) -> np.ndarray:
        return np.divide(packed[..., field], count, out=nan.copy(), where=has)

    variance = np.divide(packed[..., _M2], count, out=nan.copy(), where=has)
    return {
        "ssim": mean_of(_SUM),
        "luminance": mean_of(_SUM_L),
        "contrast": mean_of(_SUM_C),
        "structure": mean_of(_SUM_S),
        "ssim_std": np.sqrt(np.maximum(variance, 0.0), out=nan.copy(), where=has),
        "ssim_min": np.where(has, packed[..., _MIN], np.nan),
        "ssim_max": np.where(has, packed[..., _MAX], np.nan),
        "count": count.astype(np.int64),
        "ssim_hist": packed[..., _HIST:].astype(np.int64),
    }


def unscored_reasons(packed: np.ndarray, ms_ssim: np.ndarray | None = None) -> list[str | None]:
    """Why each image's statistics are not a score, or None where they are.

    ``packed`` is ``(image, region, field)`` merged statistics (region 0 is
    ``all``), ``ms_ssim`` the MS-SSIM of each image when computed. A pair whose
    region ``all`` has no window, or whose sums or MS-SSIM are not finite, has no
    score: :func:`pipeline.engine.plan.plan_run` fails it with this reason rather
    than let NaN pass as ``ok``.
    """
    whole = np.asarray(packed)[:, 0, :]
    sums = whole[:, [_SUM, _M2, _SUM_L, _SUM_C, _SUM_S]]
    reasons: list[str | None] = []
    for i in range(whole.shape[0]):
        count = whole[i, _COUNT]
        if count == 0:
            reasons.append(
                "no SSIM window was scored (count 0): with nan_policy='mask' every window "
                "touched a NaN or Inf pixel"
            )
        elif not np.isfinite(sums[i]).all():
            reasons.append(
                f"SSIM statistics came out NaN or Inf over {int(count)} windows: the "
                "arithmetic overflowed (pixels or data_range too extreme for float64); "
                "rescale both images and data_range by one factor (SSIM does not change)"
            )
        elif ms_ssim is not None and not np.isfinite(ms_ssim[i]):
            reasons.append(
                "MS-SSIM came out NaN or Inf: float32 arithmetic overflowed at some scale "
                "(pixels or data_range near the float32 limits); use engine='reference'"
            )
        else:
            reasons.append(None)
    return reasons
