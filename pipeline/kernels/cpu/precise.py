"""The float64 maps of MS-SSIM's coarse scales, compiled (numba).

:func:`pipeline.kernels.multiscale.precise_means` makes, for a small plane, the
SSIM and cs maps in float64 from the readable reference
(:func:`pipeline.kernels.reference.filter_valid`): the cs map from the images
less one shift, the luminance from the unshifted means and the window mean of
``x - y``. On the planes it is used for (at most a few thousand window
positions) the reference's cost is its Python: eight filterings of 22 NumPy
operations each, about 1.7 ms of a 2.3 ms ``ms_ssim`` of a 512x512 pair. Here
the same float64 operations run in the same order, element by element, so the
maps are the same to the last bit (no contraction into fused multiply-adds):
each filtering sums its taps in order, the first axis before the second, and
every product and quotient is the reference's.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.combine import jit

__all__ = ["filter_valid_plane", "precise_maps"]


@jit()
def filter_valid_plane(image: np.ndarray, w: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """``out = filter_valid(image, w)`` of a plane: the taps in order, rows before columns.

    ``rows`` is scratch of ``(out.shape[0], image.shape[1])`` float64.
    """
    k = w.shape[0]
    n0 = image.shape[0] - k + 1
    n1 = image.shape[1] - k + 1
    width = image.shape[1]
    for i in range(n0):
        for j in range(width):
            rows[i, j] = w[0] * image[i, j]
        for t in range(1, k):
            for j in range(width):
                rows[i, j] += w[t] * image[i + t, j]
    for i in range(n0):
        for j in range(n1):
            out[i, j] = w[0] * rows[i, j]
        for t in range(1, k):
            for j in range(n1):
                out[i, j] += w[t] * rows[i, j + t]


@jit()
def _maps(
    x: np.ndarray,
    y: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    w: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    ssim: np.ndarray,
    cs: np.ndarray,
) -> None:
    k = w.shape[0]
    n0 = x.shape[0] - k + 1
    n1 = x.shape[1] - k + 1
    rows = np.empty((n0, x.shape[1]))
    planes = np.empty((8, n0, n1))
    # The images less the shift, their products, the unshifted images and x - y, each
    # formed as the reference forms it before filtering.
    filter_valid_plane(xs, w, planes[0], rows)
    filter_valid_plane(ys, w, planes[1], rows)
    filter_valid_plane(xs * xs, w, planes[2], rows)
    filter_valid_plane(ys * ys, w, planes[3], rows)
    filter_valid_plane(xs * ys, w, planes[4], rows)
    filter_valid_plane(x, w, planes[5], rows)
    filter_valid_plane(y, w, planes[6], rows)
    filter_valid_plane(x - y, w, planes[7], rows)
    for i in range(n0):
        for j in range(n1):
            mu_x = planes[0, i, j]
            mu_y = planes[1, i, j]
            sigma_x_sq = cov_norm * (planes[2, i, j] - mu_x * mu_x)
            sigma_y_sq = cov_norm * (planes[3, i, j] - mu_y * mu_y)
            sigma_xy = cov_norm * (planes[4, i, j] - mu_x * mu_y)
            value = (2 * sigma_xy + c2) / (sigma_x_sq + sigma_y_sq + c2)
            cs[i, j] = value
            mx = planes[5, i, j]
            my = planes[6, i, j]
            md = planes[7, i, j]
            luminance = 1.0 - md * md / (mx * mx + my * my + c1)
            ssim[i, j] = luminance * value


def precise_maps(
    x: np.ndarray,
    y: np.ndarray,
    shift: float,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``(ssim, cs)`` valid maps of two float64 planes, cs about ``shift``.

    What :func:`~pipeline.kernels.multiscale.precise_means` takes the means of:
    ``x`` and ``y`` float64 2-D arrays of one shape, at least the window's size
    on each side; ``weights`` the separable window's taps.
    """
    k = len(weights)
    shape = (x.shape[0] - k + 1, x.shape[1] - k + 1)
    ssim = np.empty(shape)
    cs = np.empty(shape)
    _maps(
        np.ascontiguousarray(x),
        np.ascontiguousarray(y),
        np.ascontiguousarray(x - shift),
        np.ascontiguousarray(y - shift),
        np.asarray(weights, dtype=np.float64),
        float(c1),
        float(c2),
        float(cov_norm),
        ssim,
        cs,
    )
    return ssim, cs
