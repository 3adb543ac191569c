"""Partial statistics of SSIM maps per image and region, and their tree combination.

A block's maps are reduced at once to a small packed array shaped
``(image, region, field)`` (:data:`FIELDS` then the histogram), so whole maps
never leave the task that computed them. Partials combine exactly in any order:
counts, sums and histograms add, minima and maxima take min/max, and the sum of
squared deviations combines by Chan, Golub & LeVeque's pairwise update
``M2 = M2_a + M2_b + n_a n_b / n (mean_a - mean_b)^2`` (generalised to many parts
at once), which keeps ``ssim_std`` accurate where ``sum(x^2) - n mean^2`` would
cancel. Per-region sums use ``np.bincount`` on region ids: no Python loop over
pixels or labels.

References
----------
T. F. Chan, G. H. Golub, R. J. LeVeque, "Algorithms for computing the sample
variance: analysis and recommendations", The American Statistician 37(3), 1983.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = [
    "FIELDS",
    "bin_edges",
    "block_statistics",
    "empty_statistics",
    "finalize_statistics",
    "merge_statistics",
]

FIELDS = ("count", "sum", "m2", "sum_luminance", "sum_contrast", "sum_structure", "min", "max")
_COUNT, _SUM, _M2, _SUM_L, _SUM_C, _SUM_S, _MIN, _MAX = range(len(FIELDS))
_HIST = len(FIELDS)
_COMPONENTS = ("luminance", "contrast", "structure")


def bin_edges(bins: int) -> np.ndarray:
    """The ``bins + 1`` equal-width histogram edges over [-1, 1]."""
    return np.linspace(-1.0, 1.0, bins + 1)


def empty_statistics(n_images: int, n_regions: int, bins: int) -> np.ndarray:
    """Partials of no pixels: zero counts and sums, min +inf, max -inf."""
    out = np.zeros((n_images, n_regions, _HIST + bins))
    out[..., _MIN] = np.inf
    out[..., _MAX] = -np.inf
    return out


def _bin_index(values: np.ndarray, bins: int) -> np.ndarray:
    """Histogram bin of each value, as ``np.histogram(range=(-1, 1))`` assigns it.

    Bin ``i`` holds ``edges[i] <= v < edges[i + 1]``, the last bin also ``v == 1``;
    values a rounding error outside [-1, 1] go to the end bins so that every pixel
    is counted.
    """
    edges = bin_edges(bins)
    v = np.clip(values, -1.0, 1.0)
    index = ((v + 1.0) * (bins / 2.0)).astype(np.intp)
    index = np.minimum(index, bins - 1)
    # The multiply can round across an edge; correct against the edges themselves.
    index -= v < edges[index]
    index += (v >= edges[index + 1]) & (index != bins - 1)
    return index


@numba.njit(cache=True, nogil=True)
def _whole_image_statistics(
    ssim: np.ndarray,
    luminance: np.ndarray,
    contrast: np.ndarray,
    structure: np.ndarray,
    edges: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Region ``all`` of each image in two passes over the maps, float64 accumulators.

    Fills ``out[image, field]`` in place. One pass gives sums, min, max and the
    histogram (bins assigned exactly as :func:`_bin_index`); the second gives
    the squared deviations about the image's mean. ``nogil`` lets Dask threads
    run it side by side.
    """
    bins = edges.size - 1
    n, h, w = ssim.shape
    for i in range(n):
        total = 0.0
        sum_l = 0.0
        sum_c = 0.0
        sum_s = 0.0
        low = np.inf
        high = -np.inf
        for r in range(h):
            for k in range(w):
                v = np.float64(ssim[i, r, k])
                total += v
                sum_l += luminance[i, r, k]
                sum_c += contrast[i, r, k]
                sum_s += structure[i, r, k]
                low = min(low, v)
                high = max(high, v)
                clipped = min(max(v, -1.0), 1.0)
                index = min(int((clipped + 1.0) * (bins / 2.0)), bins - 1)
                if clipped < edges[index]:
                    index -= 1
                elif index != bins - 1 and clipped >= edges[index + 1]:
                    index += 1
                out[i, 8 + index] += 1.0
        count = h * w
        mean = total / count
        m2 = 0.0
        for r in range(h):
            for k in range(w):
                d = np.float64(ssim[i, r, k]) - mean
                m2 += d * d
        out[i, 0] = count
        out[i, 1] = total
        out[i, 2] = m2
        out[i, 3] = sum_l
        out[i, 4] = sum_c
        out[i, 5] = sum_s
        out[i, 6] = low
        out[i, 7] = high


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
    _whole_image_statistics(
        ssim, maps["luminance"], maps["contrast"], maps["structure"], bin_edges(bins), whole
    )
    out[:, 0, :] = whole
    if region_ids is None or n_regions == 1:
        return out

    flat = ssim.reshape(n_images, -1)
    image_of = np.arange(n_images)[:, None]
    ids = region_ids.reshape(n_images, -1)
    inside = ids >= 0
    n_sub = n_regions - 1
    # One key per (image, region) pair: every region of every image in one bincount.
    keys = (image_of * n_sub + ids)[inside]
    values = flat[inside]
    size = n_images * n_sub
    sub = out[:, 1:, :].reshape(size, -1)
    counts = np.bincount(keys, minlength=size).astype(np.float64)
    sums = np.bincount(keys, weights=values, minlength=size)
    sub[:, _COUNT] = counts
    sub[:, _SUM] = sums
    means = np.divide(sums, counts, out=np.zeros(size), where=counts > 0)
    sub[:, _M2] = np.bincount(keys, weights=(values - means[keys]) ** 2, minlength=size)
    for field, name in zip((_SUM_L, _SUM_C, _SUM_S), _COMPONENTS, strict=True):
        component = maps[name].reshape(n_images, -1)[inside]
        sub[:, field] = np.bincount(keys, weights=component, minlength=size)
    np.minimum.at(sub[:, _MIN], keys, values)
    np.maximum.at(sub[:, _MAX], keys, values)
    hist_keys = keys * bins + _bin_index(values, bins)
    sub[:, _HIST:] = np.bincount(hist_keys, minlength=size * bins).reshape(size, bins)
    out[:, 1:, :] = sub.reshape(n_images, n_sub, -1)
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
