"""MS-SSIM block math: the scale pyramid rule, its size limit and the weighted product.

Wang, Simoncelli and Bovik (2003), eq. 7:
``MS-SSIM = l_M^a_M * prod_{j=1..M} cs_j^b_j``; with equal exponents per scale
this is ``ssim_M^w_M * prod_{j<M} cs_j^w_j``, where ``cs_j`` and ``ssim_M`` are
the means of the 'valid' cs and SSIM maps at scale ``j`` (scale 1 is the input).
No Dask or xarray here: the kernels sit below them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.kernels.downsample import box_downsample

__all__ = [
    "MSSSIM_WEIGHTS",
    "combine_scales",
    "downsample_scale",
    "max_scales",
    "min_side_for_scales",
]

# Wang, Simoncelli, Bovik (2003), sec. 3.2: the exponents fitted to the
# subjective data; they sum to 0.9999, and are used as published (as
# msssim.m, pytorch-msssim and TensorFlow do), not renormalised.
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def downsample_scale(image: Any) -> Any:
    """One step down the pyramid: ``msssim.m``'s 2x2 mean with symmetric extension.

    On an even side it is the plain mean of disjoint pairs (pytorch-msssim's
    ``avg_pool2d``); on an odd side the last sample is kept as is (its mirror is
    itself), so a side ``n`` becomes ``ceil(n / 2)``.
    """
    return box_downsample(image, 2)


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
