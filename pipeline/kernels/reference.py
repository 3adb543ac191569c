"""The readable float64 SSIM: the oracle every faster path is tested against.

Reads like Wang et al. (2004): local means ``mu``, variances ``sigma_x_sq``,
covariance ``sigma_xy`` from a separable window, then the luminance, contrast
and structure comparisons. Only the 'valid' region is produced (the window
lies fully inside the block), so a block cut with an overlap of the window
radius yields exactly its piece of the whole image's map. Works unchanged on
CuPy arrays: only slicing and elementwise arithmetic are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module

__all__ = ["MAP_NAMES", "filter_valid", "ssim_maps"]

MAP_NAMES = ("ssim", "luminance", "contrast", "structure", "cs")


def _along(ndim: int, axis: int, start: int, length: int) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = slice(start, start + length)
    return tuple(index)


def filter_valid(image: Any, weights: np.ndarray) -> Any:
    """Correlate ``image`` with ``weights`` along every axis, keeping the 'valid' part.

    One pass per tap and axis over views of the input: temporaries are the
    output's size, never a copy per tap.
    """
    taps = [float(w) for w in weights]
    out = image
    for axis in range(image.ndim):
        n = out.shape[axis] - len(taps) + 1
        acc = taps[0] * out[_along(out.ndim, axis, 0, n)]
        for k in range(1, len(taps)):
            acc += taps[k] * out[_along(out.ndim, axis, k, n)]
        out = acc
    return out


def ssim_maps(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    components: bool = True,
) -> dict[str, Any]:
    """SSIM maps of one block on its 'valid' region.

    ``x`` and ``y`` are floating arrays of equal shape (any number of axes, no
    channel axis). Returns ``{"ssim", "cs"}`` and, with ``components``, also
    ``"luminance"``, ``"contrast"`` and ``"structure"`` (with ``C3 = C2 / 2``,
    so that ``ssim == luminance * contrast * structure``).
    """
    xp = array_module(x, y)
    mu_x = filter_valid(x, weights)
    mu_y = filter_valid(y, weights)
    sigma_x_sq = cov_norm * (filter_valid(x * x, weights) - mu_x * mu_x)
    sigma_y_sq = cov_norm * (filter_valid(y * y, weights) - mu_y * mu_y)
    sigma_xy = cov_norm * (filter_valid(x * y, weights) - mu_x * mu_y)

    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    cs = (2 * sigma_xy + c2) / (sigma_x_sq + sigma_y_sq + c2)
    maps = {"ssim": luminance * cs, "cs": cs}
    if components:
        # Rounding can leave a variance a hair below zero; the square root needs >= 0.
        sigma_x = xp.sqrt(xp.maximum(sigma_x_sq, 0))
        sigma_y = xp.sqrt(xp.maximum(sigma_y_sq, 0))
        c3 = c2 / 2
        maps["luminance"] = luminance
        maps["contrast"] = (2 * sigma_x * sigma_y + c2) / (sigma_x_sq + sigma_y_sq + c2)
        maps["structure"] = (sigma_xy + c3) / (sigma_x * sigma_y + c3)
    return maps
