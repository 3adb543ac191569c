"""Analytic gradient of the mean 'valid' SSIM with respect to the distorted image.

For window positions ``p`` of the valid region (``M`` of them) and a separable
window ``w``, ``S = (1/M) sum_p ssim_p`` with ``ssim_p = l_p cs_p`` and

    l  = A1 / B1,  A1 = 2 mu_x mu_y + C1,          B1 = mu_x^2 + mu_y^2 + C1
    cs = A2 / B2,  A2 = 2 sigma_xy + C2,           B2 = sigma_x^2 + sigma_y^2 + C2
    sigma_xy = n (E[xy] - mu_x mu_y),  sigma_y^2 = n (E[y^2] - mu_y^2)

(``n = 1`` population, ``N / (N - 1)`` sample covariance). Each local moment is
``sum_q w(q - p) f(q)``, so by the chain rule

    dS/dy_q = sum_p w(q - p) [G_mu(p) + x_q G_xy(p) + 2 y_q G_yy(p)]

with, per position (and divided by ``M``),

    G_mu = 2 cs (mu_x - l mu_y) / B1 + 2 n l (cs mu_y - mu_x) / B2
    G_xy = 2 n l / B2
    G_yy = -n l cs / B2

and ``sum_p w(q - p) G(p)`` is the adjoint of the valid correlation: a 'full'
convolution, i.e. zero padding by ``len(w) - 1`` and a valid correlation with the
reversed taps. With ``n = 1`` this is the formula of Avanaki (2009) that
scikit-image uses, but restricted to the valid positions, so it is the exact
gradient of the score we report (see :func:`pipeline.ssim_loss`).

NumPy or CuPy, float64; no Dask or xarray.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module
from pipeline.kernels.reference import filter_valid

__all__ = ["filter_adjoint", "ssim_value_and_grad"]


def filter_adjoint(image: Any, weights: np.ndarray) -> Any:
    """The transpose of :func:`filter_valid`: each axis grows by ``len(weights) - 1``."""
    xp = array_module(image)
    width = len(weights) - 1
    padded = xp.pad(image, [(width, width)] * image.ndim, mode="constant")
    return filter_valid(padded, np.ascontiguousarray(weights[::-1]))


def ssim_value_and_grad(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
) -> tuple[float, Any]:
    """``(mean valid SSIM, d mean / d y)`` for one block without a channel axis.

    ``x`` and ``y`` are float64 arrays of equal shape; the gradient has their shape.
    """
    xp = array_module(x, y)
    mu_x = filter_valid(x, weights)
    mu_y = filter_valid(y, weights)
    sigma_x_sq = cov_norm * (filter_valid(x * x, weights) - mu_x * mu_x)
    sigma_y_sq = cov_norm * (filter_valid(y * y, weights) - mu_y * mu_y)
    sigma_xy = cov_norm * (filter_valid(x * y, weights) - mu_x * mu_y)

    a1 = 2 * mu_x * mu_y + c1
    b1 = mu_x * mu_x + mu_y * mu_y + c1
    a2 = 2 * sigma_xy + c2
    b2 = sigma_x_sq + sigma_y_sq + c2
    luminance = a1 / b1
    cs = a2 / b2
    m = luminance.size
    value = float((luminance * cs).mean(dtype=xp.float64))

    g_mu = 2 * cs * (mu_x - luminance * mu_y) / b1
    g_mu += 2 * cov_norm * luminance * (cs * mu_y - mu_x) / b2
    g_mu /= m
    g_xy = (2 * cov_norm / m) * luminance / b2
    g_yy = (-cov_norm / m) * luminance * cs / b2
    grad = filter_adjoint(g_mu, weights)
    grad += x * filter_adjoint(g_xy, weights)
    grad += 2 * y * filter_adjoint(g_yy, weights)
    return value, grad
