"""Partial statistics of SSIM maps per block, image and region, and what they say.

A block's maps are reduced at once to a small packed array shaped
``(image, region, field)`` (the layout of :mod:`pipeline.kernels.statistics`:
``FIELDS`` then the histogram), so whole maps never leave the task that
computed them; partials of blocks combine exactly in any order by
:func:`pipeline.kernels.statistics.merge_statistics`. A block is reduced by the
compiled two-pass loops of :mod:`pipeline.kernels.cpu.partials` over runs of one
region id (one pass for counts, sums, extremes and the histogram, one for squared
deviations about each region's mean): no Python loop over pixels or labels, and
no temporary per statistic. :func:`finalize_statistics` turns merged partials
into means, spread, extremes and histograms, and the squared pixel differences
(added by :mod:`pipeline.reductions.squared_error`) into MSE and PSNR;
:func:`unscored_reasons` says why an image has no score.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.partials import region_statistics, whole_image_statistics
from pipeline.kernels.statistics import (
    COUNT,
    ERROR_COUNT,
    HIST,
    M2,
    MAX,
    MIN,
    PEAK_SQUARED,
    SQUARED_ERROR,
    SUM,
    SUM_CONTRAST,
    SUM_LUMINANCE,
    SUM_STRUCTURE,
    empty_statistics,
)

__all__ = ["block_statistics", "finalize_statistics", "mse_and_psnr", "unscored_reasons"]


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
        ``(images, h, w)``, float64 or float32 (accumulated in float64), and
        optionally ``deficit``, the kernel's ``1 - ssim`` of the same shape
        (:meth:`pipeline.reductions.kernel_spec.KernelSpec.maps` with
        ``deficit=True`` on the fused engine): the SSIM ``SUM`` and ``M2`` are then
        summed from it, free of the float32 ``ssim`` map's rounding near 1, so
        every region's mean is the one the kernel's packed path gives (region
        ``all``: the same row sums).
    region_ids : ndarray or None
        ``(images, h, w)`` index of each pixel's region besides ``all``
        (``-1`` for none), or None when there is only ``all``.
    n_regions : int
        Number of regions including ``all``.
    bins : int
        Histogram bins over [-1, 1].

    Returns
    -------
    ndarray, shape ``(images, n_regions, len(FIELDS) + bins)``
        The squared-error fields stay 0: they come from the pixels, not the maps
        (:func:`pipeline.reductions.squared_error.add_squared_error`).
    """
    ssim = maps["ssim"]
    n_images = ssim.shape[0]
    out = empty_statistics(n_images, n_regions, bins)
    if ssim.size == 0:
        return out
    # Region "all": a compiled two-pass loop (NumPy's ufuncs take a pass per statistic).
    whole = np.ascontiguousarray(out[:, 0, :])
    deficit = maps.get("deficit")
    values = ssim if deficit is None else deficit
    from_deficit = deficit is not None
    whole_image_statistics(
        ssim, maps["luminance"], maps["contrast"], maps["structure"], whole, values, from_deficit
    )
    out[:, 0, :] = whole
    if region_ids is None or n_regions == 1:
        return out

    sub = np.ascontiguousarray(out[:, 1:, :])
    region_statistics(
        ssim,
        maps["luminance"],
        maps["contrast"],
        maps["structure"],
        region_ids,
        sub,
        values,
        from_deficit,
    )
    out[:, 1:, :] = sub
    return out


def finalize_statistics(packed: np.ndarray) -> dict[str, np.ndarray]:
    """Means, std, min, max, count, histogram, MSE and PSNR from packed statistics.

    ``packed`` is ``(..., fields)``. Regions without valid pixels get NaN SSIM
    statistics and a zero count; MSE and PSNR are those of :func:`mse_and_psnr`.
    """
    count = packed[..., COUNT]
    has = count > 0
    nan = np.full(count.shape, np.nan)

    def mean_of(field: int) -> np.ndarray:
        return np.divide(packed[..., field], count, out=nan.copy(), where=has)

    variance = np.divide(packed[..., M2], count, out=nan.copy(), where=has)
    return {
        "ssim": mean_of(SUM),
        "luminance": mean_of(SUM_LUMINANCE),
        "contrast": mean_of(SUM_CONTRAST),
        "structure": mean_of(SUM_STRUCTURE),
        "ssim_std": np.sqrt(np.maximum(variance, 0.0), out=nan.copy(), where=has),
        "ssim_min": np.where(has, packed[..., MIN], np.nan),
        "ssim_max": np.where(has, packed[..., MAX], np.nan),
        "count": count.astype(np.int64),
        "ssim_hist": packed[..., HIST:].astype(np.int64),
        **dict(zip(("mse", "psnr"), mse_and_psnr(packed), strict=True)),
    }


def mse_and_psnr(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSE and PSNR (dB) from the squared-error fields of packed statistics ``(..., fields)``.

    ``mse = squared_error / error_count`` over every pixel and channel counted,
    ``psnr = 10 log10(data_range**2 / mse)`` with the pair's ``data_range``
    (``peak_squared``): scikit-image's ``mean_squared_error`` and
    ``peak_signal_noise_ratio``. Identical pixels give ``mse`` 0 and ``psnr``
    ``inf``; no pixel counted (or no data range recorded) gives NaN.
    """
    count = packed[..., ERROR_COUNT]
    peak = packed[..., PEAK_SQUARED]
    has = count > 0
    mse = np.divide(packed[..., SQUARED_ERROR], count, out=np.full(count.shape, np.nan), where=has)
    # x/0 (mse 0: PSNR inf) and 0/0 (no data range; discarded by the where) are expected.
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = np.where(has & (peak > 0), 10.0 * np.log10(peak / np.where(has, mse, 1.0)), np.nan)
    return mse, psnr


def unscored_reasons(packed: np.ndarray, ms_ssim: np.ndarray | None = None) -> list[str | None]:
    """Why each image's statistics are not a score, or None where they are.

    ``packed`` is ``(image, region, field)`` merged statistics (region 0 is
    ``all``), ``ms_ssim`` the MS-SSIM of each image when computed. A pair whose
    region ``all`` has no window, or whose sums or MS-SSIM are not finite, has no
    score: :func:`pipeline.engine.plan.plan_run` fails it with this reason rather
    than let NaN pass as ``ok``.
    """
    whole = np.asarray(packed)[:, 0, :]
    sums = whole[:, [SUM, M2, SUM_LUMINANCE, SUM_CONTRAST, SUM_STRUCTURE]]
    reasons: list[str | None] = []
    for i in range(whole.shape[0]):
        count = whole[i, COUNT]
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
