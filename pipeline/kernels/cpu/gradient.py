"""The float64 SSIM value and gradient of a plane, compiled (numba).

:func:`pipeline.kernels.gradient.ssim_value_and_grad` (what :func:`pipeline.ssim_loss`
returns) is written with NumPy array operations: five filterings for the moments,
three adjoint filterings for the gradient and some thirty whole-array expressions,
each a pass over memory with a fresh temporary (1.3 s for a 2048x2048 pair). Here the
same float64 operations run compiled, element by element, in the same order, so the
value's map and the gradient are the same to the last bit (no contraction into fused
multiply-adds): each filtering sums its taps in order, the first axis before the
second (:func:`~pipeline.kernels.cpu.precise.filter_valid_plane`), and each
expression keeps NumPy's evaluation order, the scalars made by the caller as
Python makes them.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.combine import jit
from pipeline.kernels.cpu.precise import filter_valid_plane

__all__ = ["value_map_and_grad"]


@jit()
def _adjoint(image: np.ndarray, w_reversed: np.ndarray, out: np.ndarray) -> None:
    """``out = filter_adjoint(image, w)``: zero padding by ``len(w) - 1``, reversed taps."""
    width = w_reversed.shape[0] - 1
    padded = np.zeros((image.shape[0] + 2 * width, image.shape[1] + 2 * width))
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            padded[i + width, j + width] = image[i, j]
    rows = np.empty((out.shape[0], padded.shape[1]))
    filter_valid_plane(padded, w_reversed, out, rows)


@jit()
def _value_map_and_grad(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    w_reversed: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    two_cov_norm: float,
    scale_xy: float,
    scale_yy: float,
    m: int,
    product: np.ndarray,
    grad: np.ndarray,
) -> None:
    n0, n1 = product.shape
    rows = np.empty((n0, x.shape[1]))
    mu_x = np.empty((n0, n1))
    mu_y = np.empty((n0, n1))
    e_xx = np.empty((n0, n1))
    e_yy = np.empty((n0, n1))
    e_xy = np.empty((n0, n1))
    filter_valid_plane(x, w, mu_x, rows)
    filter_valid_plane(y, w, mu_y, rows)
    filter_valid_plane(x * x, w, e_xx, rows)
    filter_valid_plane(y * y, w, e_yy, rows)
    filter_valid_plane(x * y, w, e_xy, rows)
    g_mu = np.empty((n0, n1))
    g_xy = np.empty((n0, n1))
    g_yy = np.empty((n0, n1))
    for i in range(n0):
        for j in range(n1):
            mx = mu_x[i, j]
            my = mu_y[i, j]
            sigma_x_sq = cov_norm * (e_xx[i, j] - mx * mx)
            sigma_y_sq = cov_norm * (e_yy[i, j] - my * my)
            sigma_xy = cov_norm * (e_xy[i, j] - mx * my)
            a1 = 2 * mx * my + c1
            b1 = mx * mx + my * my + c1
            a2 = 2 * sigma_xy + c2
            b2 = sigma_x_sq + sigma_y_sq + c2
            luminance = a1 / b1
            cs = a2 / b2
            product[i, j] = luminance * cs
            value = 2 * cs * (mx - luminance * my) / b1
            value = value + two_cov_norm * luminance * (cs * my - mx) / b2
            g_mu[i, j] = value / m
            g_xy[i, j] = scale_xy * luminance / b2
            g_yy[i, j] = scale_yy * luminance * cs / b2
    adjoint = np.empty(grad.shape)
    _adjoint(g_mu, w_reversed, grad)
    _adjoint(g_xy, w_reversed, adjoint)
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            grad[i, j] = grad[i, j] + x[i, j] * adjoint[i, j]
    _adjoint(g_yy, w_reversed, adjoint)
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            grad[i, j] = grad[i, j] + 2 * y[i, j] * adjoint[i, j]


def value_map_and_grad(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, c1: float, c2: float, cov_norm: float
) -> tuple[np.ndarray, np.ndarray]:
    """The valid SSIM map (whose mean is the value) and ``d mean / d y`` of two float64 planes.

    As :func:`pipeline.kernels.gradient.ssim_value_and_grad` computes them, bit for
    bit; ``x`` and ``y`` float64 2-D arrays of one shape, at least the window's size
    on each side.
    """
    w = np.asarray(weights, dtype=np.float64)
    k = len(w)
    shape = (x.shape[0] - k + 1, x.shape[1] - k + 1)
    m = shape[0] * shape[1]
    product = np.empty(shape)
    grad = np.empty(x.shape)
    _value_map_and_grad(
        np.ascontiguousarray(x),
        np.ascontiguousarray(y),
        np.ascontiguousarray(w),
        np.ascontiguousarray(w[::-1]),
        float(c1),
        float(c2),
        float(cov_norm),
        # The scalars as Python makes them in the array form.
        2 * float(cov_norm),
        2 * float(cov_norm) / m,
        -float(cov_norm) / m,
        m,
        product,
        grad,
    )
    return product, grad
