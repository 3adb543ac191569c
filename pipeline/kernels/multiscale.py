"""MS-SSIM block math: the scale pyramid rule, its size limit and the weighted product.

Wang, Simoncelli and Bovik (2003), eq. 7:
``MS-SSIM = l_M^a_M * prod_{j=1..M} cs_j^b_j``; with equal exponents per scale
this is ``ssim_M^w_M * prod_{j<M} cs_j^w_j``, where ``cs_j`` and ``ssim_M`` are
the means of the 'valid' cs and SSIM maps at scale ``j`` (scale 1 is the input).
No Dask or xarray here: the kernels sit below them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.kernels.downsample import box_downsample
from pipeline.kernels.reference import filter_valid, ssim_maps

__all__ = [
    "MSSSIM_WEIGHTS",
    "PRECISE_PIXELS",
    "combine_scales",
    "downsample_scale",
    "max_scales",
    "min_side_for_scales",
    "precise_means",
    "pyramid_dtype",
    "pyramid_ms_ssim",
]

# Wang, Simoncelli, Bovik (2003), sec. 3.2: the exponents fitted to the
# subjective data; they sum to 0.9999, and are used as published (as
# msssim.m, pytorch-msssim and TensorFlow do), not renormalised.
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

# Scales of the fused engine whose valid map has at most this many pixels (a 74x74
# image under an 11 window) are computed in float64.
PRECISE_PIXELS = 4096


def pyramid_dtype(dtype: Any, scale: int) -> np.dtype:
    """The dtype of scale ``scale`` of the pyramid of ``dtype`` pixels (scale 0: the input).

    float32 where every mean is a float32 number, else float64. A sample of scale
    ``s`` is a mean of ``4^s`` pixels, ``k / 4^s`` with ``|k| < 2^(b + 2 s)`` for
    pixels of ``b`` bits; float32 holds such a number exactly while ``b + 2 s <= 24``:
    all five scales of 8-bit and 16-bit images. Those scales then take the kernels'
    float32 path instead of the float64 one, and the pyramid half the memory; the
    values are the float64 pyramid's.
    """
    kind = np.dtype(dtype)
    if kind.kind in "biu" and 8 * kind.itemsize + 2 * scale <= 24:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def downsample_scale(image: Any, dtype: Any = np.float64) -> Any:
    """One step down the pyramid: ``msssim.m``'s 2x2 mean with symmetric extension.

    On an even side it is the plain mean of disjoint pairs (pytorch-msssim's
    ``avg_pool2d``); on an odd side the last sample is kept as is (its mirror is
    itself), so a side ``n`` becomes ``ceil(n / 2)``. ``dtype``: of the result
    (:func:`pyramid_dtype`).
    """
    return box_downsample(image, 2, dtype=dtype)


def min_side_for_scales(scales: int, win_size: int) -> int:
    """The smallest side that keeps the window inside the image at every scale.

    A side ``n`` becomes ``ceil(n / 2)`` per step, so after ``scales - 1`` steps it
    is ``ceil(n / 2**(scales - 1))``; that must be ``>= win_size``, i.e.
    ``n > (win_size - 1) * 2**(scales - 1)``: 161 for 5 scales and an 11 window
    (pytorch-msssim's assertion is the same bound).
    """
    return (win_size - 1) * 2 ** (scales - 1) + 1


def max_scales(smallest_side: int, win_size: int) -> int:
    """The most scales an image whose smallest side is ``smallest_side`` allows (0 if none)."""
    scales = 0
    while min_side_for_scales(scales + 1, win_size) <= smallest_side:
        scales += 1
    return scales


def pyramid_ms_ssim(
    x: Any,
    y: Any,
    weights: Sequence[float],
    win_size: int,
    scale_mean: Callable[[Any, Any, str, bool], float],
) -> float:
    """MS-SSIM of one plane held in memory: its pyramid, one mean per scale, the product.

    Between scales both images are halved (:func:`downsample_scale`, in
    :func:`pyramid_dtype`); ``scale_mean(x, y, name, precise)`` gives the mean of the
    scale's valid ``name`` map (``"cs"``, then ``"ssim"`` at the last scale), with
    ``precise`` where that map has at most ``PRECISE_PIXELS`` pixels; the means
    combine as :func:`combine_scales`. The in-memory ``pipeline.ms_ssim`` and the
    engine's images of one chunk both take it.
    """
    pixels = np.result_type(x.dtype, y.dtype)
    last = len(weights) - 1
    means = []
    for scale in range(len(weights)):
        if scale > 0:
            dtype = pyramid_dtype(pixels, scale)
            x, y = downsample_scale(x, dtype), downsample_scale(y, dtype)
        precise = math.prod(n - win_size + 1 for n in x.shape) <= PRECISE_PIXELS
        means.append(scale_mean(x, y, "cs" if scale < last else "ssim", precise))
    return combine_scales(means[:-1], means[-1], weights)


def combine_scales(cs_means: Sequence[float], ssim_last: float, weights: Sequence[float]) -> float:
    """``relu(ssim_M)^w_M * prod_j relu(cs_j)^w_j`` over the scales.

    A negative mean cs (or SSIM) has no real fractional power: MATLAB's
    ``msssim.m`` then returns a complex number, NumPy a NaN. Like pytorch-msssim
    and TensorFlow's ``ssim_multiscale``, each factor is clamped at 0 first, so
    anti-correlated content at any scale gives an MS-SSIM of 0 (with a positive
    weight) instead of NaN. A zero weight contributes ``0**0 = 1``.
    """
    factors = [*cs_means, ssim_last]
    result = 1.0
    for value, weight in zip(factors, weights, strict=True):
        result *= max(float(value), 0.0) ** float(weight)
    return result


def precise_means(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
) -> tuple[float, float]:
    """Means of the valid SSIM and cs maps of a small NumPy block, in float64 throughout.

    For MS-SSIM's coarse scales, whose maps hold a few pixels to a few thousand: there
    the float32 kernels' per-pixel error (their moments' rounding, up to ~1e-7 of a
    deficit near an edge of extreme contrast) is not averaged away. The (co)variances
    are taken about one shift ``s`` (the mean of both images), which cs does not
    depend on, so that ``E[x^2] - mu^2`` does not cancel on data far from 0; the
    luminance deficit ``dl = mu_{x-y}^2 / (mu_x^2 + mu_y^2 + C1)`` is formed from the
    window mean of ``x - y`` and the unshifted means; SSIM is ``(1 - dl) cs``.

    Parameters
    ----------
    x, y : numpy.ndarray
        Blocks of the same shape, any real dtype (read as float64).
    weights : numpy.ndarray
        The separable 1-D window.
    c1, c2 : float
        SSIM stabilising constants.
    cov_norm : float
        Factor on local (co)variances (population 1, sample ``N / (N - 1)``).

    Returns
    -------
    (float, float)
        The mean SSIM and the mean cs.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    shift = 0.5 * (float(x.mean()) + float(y.mean())) if x.size else 0.0
    if x.ndim == 2 and x.size:
        # Planes: the same operations compiled (the same bits, without the Python of
        # eight filterings); other shapes take the reference below.
        from pipeline.kernels.cpu.precise import precise_maps

        ssim, cs = precise_maps(x, y, shift, weights, c1, c2, cov_norm)
        return float(ssim.mean()), float(cs.mean())
    cs = ssim_maps(
        x - shift, y - shift, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm, components=False
    )["cs"]
    mu_x = filter_valid(x, weights)
    mu_y = filter_valid(y, weights)
    mu_d = filter_valid(x - y, weights)
    luminance = 1.0 - mu_d * mu_d / (mu_x * mu_x + mu_y * mu_y + c1)
    return float((luminance * cs).mean()), float(cs.mean())
