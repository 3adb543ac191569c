"""Fused forward and backward of mean 'valid' SSIM over many planes (numba, CPU).

The training loss of :mod:`pipeline.nn` runs here on the memory of the tensors
(NumPy views, no torch in this module). Planes are the ``P = N * C`` images of a
batch, ``(P, H, W)`` arrays (or ``(P, D, H, W)`` volumes); each plane is one
iteration of a parallel loop (``numba.prange``).

**Forward** (:func:`ssim_forward`): per plane, the five local moments of a
separable window on the 'valid' region, the mean SSIM (or the mean cs, for the
lower scales of MS-SSIM), and the three coefficient maps of the gradient, already
divided by the number ``M`` of valid positions (``n`` the covariance factor,
1 or ``N / (N - 1)``):

    SSIM:  G_mu = 2 cs (mu_x - l mu_y) / B1 + 2 n l (cs mu'_y - mu'_x) / B2
           G_xy = 2 n l / B2,   G_yy = -n l cs / B2
    cs:    G_mu = 2 n (cs mu'_y - mu'_x) / B2,   G_xy = 2 n / B2,   G_yy = -n cs / B2

so that ``d mean / d y_q = sum_p w(q - p) [G_mu(p) + x'_q G_xy(p) + 2 y'_q G_yy(p)]``
(see :mod:`pipeline.kernels.gradient`). Primes mark the plane-centred data
``x' = x - s_x``, ``y' = y - s_y`` with ``s`` the plane's mean: the variances do not
change under the shift, and the gradient's ``x_q G_xy + 2 y_q G_yy`` terms are
rewritten around it (``G_mu`` absorbs ``s_x G_xy + 2 s_y G_yy``), so no term of the
order of ``s^2`` is ever formed and then cancelled. The moments are accumulated in
float64 whatever the input dtype; float32 input keeps its three maps in float32
(relative rounding 6e-8, far below the 1e-5 the loss is tested to).

**Backward** (:func:`ssim_backward`): the adjoint of the valid correlation (a
'full' convolution) of the three maps, row by row (vertically into a zero-padded
row, then horizontally as a correlation with the reversed taps, so both halves
gather and vectorise), combined with ``x'`` and ``y'`` and scaled by the plane's
incoming gradient in the same pass; nothing of image size is kept between the
two passes except the maps themselves.

Threads: one plane per ``prange`` iteration, and no more threads than planes or
than one per ``_PIXELS_PER_THREAD`` pixels, so that a small batch does not pay
for waking a pool that competes with torch's own.

Memory kept between forward and backward: three valid-size maps per plane (the
input's dtype) and two float64 shifts per plane. Volumes ``(P, D, H, W)`` take a
NumPy float64 path with the same three maps per plane (:func:`filter_valid` and
its adjoint), not compiled: 3-D training losses are rare and small.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange

from pipeline.kernels.cpu.combine import CONTRACT, jit
from pipeline.kernels.gradient import filter_adjoint
from pipeline.kernels.reference import filter_valid

__all__ = ["ssim_backward", "ssim_forward"]


# Output columns per tile of the forward pass.
_TILE = 256
# Pixels per thread below which another thread costs more (waking it, and on a machine
# where torch's own OpenMP pool is busy, contending with it) than it saves.
_PIXELS_PER_THREAD = 1 << 17


def _run_with_threads(n_planes: int, n_pixels: int, kernel: Any, *args: Any) -> None:
    """Run ``kernel(*args)`` on at most one thread per plane and per ``_PIXELS_PER_THREAD``."""
    available = numba.get_num_threads()
    wanted = max(1, min(available, n_planes, -(-n_pixels // _PIXELS_PER_THREAD)))
    if wanted == available:
        kernel(*args)
        return
    numba.set_num_threads(wanted)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(available)


@jit()
def _plane_mean(a: np.ndarray, row_sums: np.ndarray) -> float:
    """Mean of a 2-D plane in float64, summed column-wise (vectorised) then across."""
    row_sums[:] = 0.0
    for i in range(a.shape[0]):
        row = a[i]
        for j in range(a.shape[1]):
            row_sums[j] += row[j]
    total = 0.0
    for j in range(a.shape[1]):
        total += row_sums[j]
    return total / (a.shape[0] * a.shape[1])


@jit(fastmath=CONTRACT)
def _correlate_rows(
    src: np.ndarray, first: int, w: np.ndarray, dst: np.ndarray, width: int
) -> None:
    """``dst[q, j] = sum_t w[t] src[(first + t) % k, q, j]``, ``j < width``: the vertical pass.

    Four taps per sweep: each sweep loads and stores the accumulator row once, so
    the memory traffic per tap is about half that of one tap per sweep.
    """
    k = w.shape[0]
    n_q = dst.shape[0]
    if first < 0 or k < 1 or width < 0:
        return
    for q in range(n_q):
        out = dst[q]
        s0 = src[first % k, q]
        w0 = w[0]
        for j in range(width):
            out[j] = w0 * s0[j]
        t = 1
        while t + 4 <= k:
            a0 = src[(first + t) % k, q]
            a1 = src[(first + t + 1) % k, q]
            a2 = src[(first + t + 2) % k, q]
            a3 = src[(first + t + 3) % k, q]
            v0, v1, v2, v3 = w[t], w[t + 1], w[t + 2], w[t + 3]
            for j in range(width):
                out[j] += v0 * a0[j] + v1 * a1[j] + v2 * a2[j] + v3 * a3[j]
            t += 4
        while t < k:
            a0 = src[(first + t) % k, q]
            v0 = w[t]
            for j in range(width):
                out[j] += v0 * a0[j]
            t += 1


@jit(fastmath=CONTRACT)
def _correlate_columns(src: np.ndarray, w: np.ndarray, dst: np.ndarray, width: int) -> None:
    """``dst[q, j] = sum_t w[t] src[q, j + t]``, ``j < width``: the horizontal 'valid' pass."""
    k = w.shape[0]
    n_q = dst.shape[0]
    if k < 1 or width < 0:
        return
    for q in range(n_q):
        out = dst[q]
        row = src[q]
        w0 = w[0]
        for j in range(width):
            out[j] = w0 * row[j]
        t = 1
        while t + 4 <= k:
            v0, v1, v2, v3 = w[t], w[t + 1], w[t + 2], w[t + 3]
            for j in range(width):
                out[j] += (
                    v0 * row[j + t]
                    + v1 * row[j + t + 1]
                    + v2 * row[j + t + 2]
                    + v3 * row[j + t + 3]
                )
            t += 4
        while t < k:
            v0 = w[t]
            for j in range(width):
                out[j] += v0 * row[j + t]
            t += 1


@jit(parallel=True)
def _forward_planes(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    cs_only: bool,
    values: np.ndarray,
    maps: np.ndarray,
    shifts: np.ndarray,
) -> None:
    """Mean SSIM (or cs) of each plane of ``(P, H, W)`` arrays, and its gradient maps."""
    n_planes, height, width = x.shape
    k = w.shape[0]
    h_out = height - k + 1
    w_out = width - k + 1
    inv_m = 1.0 / (h_out * w_out)
    n = cov_norm
    for p in prange(n_planes):
        row_sums = np.empty(width)
        s_x = _plane_mean(x[p], row_sums)
        s_y = _plane_mean(y[p], row_sums)
        shifts[p, 0] = s_x
        shifts[p, 1] = s_y
        # Column tiles keep the ring of the last k rows' products (k x 5 x tile
        # float64) in the L2 cache; per input row of a tile, once: the plane-centred
        # values and their products.
        span = min(width, _TILE + k - 1)
        rows = np.empty((k, 5, span))
        col = np.empty((5, span))
        mom = np.empty((5, span - k + 1))
        total = 0.0
        for c0 in range(0, w_out, _TILE):
            tile = min(_TILE, w_out - c0)
            tile_in = tile + k - 1
            for i in range(height):
                slot = rows[i % k]
                xr = x[p, i]
                yr = y[p, i]
                u = slot[0]
                v = slot[1]
                uu = slot[2]
                vv = slot[3]
                uv = slot[4]
                for j in range(tile_in):
                    a = xr[c0 + j] - s_x
                    b = yr[c0 + j] - s_y
                    u[j] = a
                    v[j] = b
                    uu[j] = a * a
                    vv[j] = b * b
                    uv[j] = a * b
                r = i - k + 1
                if r < 0:
                    continue
                _correlate_rows(rows, r, w, col, tile_in)
                _correlate_columns(col, w, mom, tile)
                total += _comparison_row(
                    mom,
                    tile,
                    s_x,
                    s_y,
                    c1,
                    c2,
                    n,
                    inv_m,
                    cs_only,
                    maps[p, 0, r],
                    maps[p, 1, r],
                    maps[p, 2, r],
                    c0,
                )
        values[p] = total * inv_m


@jit()
def _comparison_row(
    mom: np.ndarray,
    n_cols: int,
    s_x: float,
    s_y: float,
    c1: float,
    c2: float,
    n: float,
    inv_m: float,
    cs_only: bool,
    g_mu: np.ndarray,
    g_xy: np.ndarray,
    g_yy: np.ndarray,
    c0: int,
) -> float:
    """SSIM (or cs) of ``n_cols`` moments, summed; gradient maps written from column ``c0``."""
    total = 0.0
    if n_cols < 0 or c0 < 0:
        return total
    mu_x_c = mom[0]
    mu_y_c = mom[1]
    e_xx = mom[2]
    e_yy = mom[3]
    e_xy = mom[4]
    # Two loops rather than a branch inside one, so that each vectorises.
    if cs_only:
        for j in range(n_cols):
            mx = mu_x_c[j]
            my = mu_y_c[j]
            sigma_x_sq = n * (e_xx[j] - mx * mx)
            sigma_y_sq = n * (e_yy[j] - my * my)
            sigma_xy = n * (e_xy[j] - mx * my)
            inv_b2 = 1.0 / (sigma_x_sq + sigma_y_sq + c2)
            cs = (2.0 * sigma_xy + c2) * inv_b2
            total += cs
            g_mu[c0 + j] = inv_m * 2.0 * n * (cs * my - mx) * inv_b2
            g_xy[c0 + j] = inv_m * 2.0 * n * inv_b2
            g_yy[c0 + j] = -inv_m * n * cs * inv_b2
        return total
    for j in range(n_cols):
        mx = mu_x_c[j]
        my = mu_y_c[j]
        sigma_x_sq = n * (e_xx[j] - mx * mx)
        sigma_y_sq = n * (e_yy[j] - my * my)
        sigma_xy = n * (e_xy[j] - mx * my)
        inv_b2 = 1.0 / (sigma_x_sq + sigma_y_sq + c2)
        cs = (2.0 * sigma_xy + c2) * inv_b2
        mu_x = mx + s_x
        mu_y = my + s_y
        inv_b1 = 1.0 / (mu_x * mu_x + mu_y * mu_y + c1)
        luminance = (2.0 * mu_x * mu_y + c1) * inv_b1
        total += luminance * cs
        g_mu[c0 + j] = inv_m * (
            2.0 * cs * (mu_x - luminance * mu_y) * inv_b1
            + 2.0 * n * luminance * (cs * my - mx) * inv_b2
        )
        g_xy[c0 + j] = inv_m * 2.0 * n * luminance * inv_b2
        g_yy[c0 + j] = -inv_m * n * luminance * cs * inv_b2
    return total


@jit(fastmath=CONTRACT)
def _adjoint_rows(
    maps_p: np.ndarray,
    r: int,
    w: np.ndarray,
    t_lo: int,
    t_hi: int,
    dst: np.ndarray,
    offset: int,
    width: int,
) -> None:
    """``dst[q, offset + j] = sum_{t_lo <= t <= t_hi} w[t] maps_p[q, r - t, j]``, four taps a sweep.

    The vertical half of the adjoint: the valid rows ``r - t`` that input row ``r`` fed.
    """
    if offset < 0 or width < 0 or t_lo < 0 or t_hi < t_lo:
        return
    for q in range(3):
        out = dst[q]
        m0 = maps_p[q, r - t_lo]
        v0 = w[t_lo]
        for j in range(width):
            out[offset + j] = v0 * m0[j]
        t = t_lo + 1
        while t + 3 <= t_hi:
            m0 = maps_p[q, r - t]
            m1 = maps_p[q, r - t - 1]
            m2 = maps_p[q, r - t - 2]
            m3 = maps_p[q, r - t - 3]
            v0, v1, v2, v3 = w[t], w[t + 1], w[t + 2], w[t + 3]
            for j in range(width):
                out[offset + j] += v0 * m0[j] + v1 * m1[j] + v2 * m2[j] + v3 * m3[j]
            t += 4
        while t <= t_hi:
            m0 = maps_p[q, r - t]
            v0 = w[t]
            for j in range(width):
                out[offset + j] += v0 * m0[j]
            t += 1


@jit(parallel=True)
def _backward_planes(
    x: np.ndarray,
    y: np.ndarray,
    maps: np.ndarray,
    shifts: np.ndarray,
    grad_values: np.ndarray,
    w: np.ndarray,
    out: np.ndarray,
) -> None:
    """``grad_values[p] * d mean_p / d y`` for each plane: the adjoint filter of the maps.

    Per input row: the vertical adjoint into the middle of a row padded with ``k - 1``
    zeros on each side, then the horizontal adjoint as a 'valid' correlation of that
    padded row with the reversed taps (a gather, which vectorises, not a scatter).
    """
    n_planes, height, width = x.shape
    k = w.shape[0]
    h_out = height - k + 1
    w_out = width - k + 1
    w_rev = np.ascontiguousarray(w[::-1])
    for p in prange(n_planes):
        g = grad_values[p]
        s_x = shifts[p, 0]
        s_y = shifts[p, 1]
        padded = np.zeros((3, w_out + 2 * (k - 1)))
        full = np.empty((3, width))
        for r in range(height):
            # Valid rows that input row r fed: r - t for taps t with 0 <= r - t < h_out.
            t_lo = max(0, r - h_out + 1)
            t_hi = min(k - 1, r)
            _adjoint_rows(maps[p], r, w, t_lo, t_hi, padded, k - 1, w_out)
            _correlate_columns(padded, w_rev, full, width)
            xr = x[p, r]
            yr = y[p, r]
            orow = out[p, r]
            for j in range(width):
                orow[j] = g * (
                    full[0, j] + (xr[j] - s_x) * full[1, j] + 2.0 * (yr[j] - s_y) * full[2, j]
                )


def _check_planes(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
    if x.shape != y.shape or x.dtype != y.dtype:
        raise ValueError(
            f"x and y must have one shape and dtype (got {x.shape} {x.dtype} and "
            f"{y.shape} {y.dtype})"
        )
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be (planes, H, W) or (planes, D, H, W) (got shape {x.shape})")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64 (got {x.dtype})")
    if min(x.shape[1:]) < len(weights):
        raise ValueError(
            f"the window ({len(weights)} taps) is larger than the smallest side of the "
            f"planes {x.shape[1:]}"
        )


def ssim_forward(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    cs_only: bool = False,
) -> tuple[np.ndarray, Any]:
    """Per-plane mean 'valid' SSIM (or cs) of ``y`` against ``x``, and what backward needs.

    Parameters
    ----------
    x, y : ndarray
        Reference and generated planes, ``(P, H, W)`` or ``(P, D, H, W)``, one dtype
        (float32 or float64), C-contiguous (read in place, never copied).
    weights : ndarray
        The separable 1-D window.
    c1, c2, cov_norm : float
        SSIM's constants and the covariance factor (1 population, ``N / (N - 1)`` sample).
    cs_only : bool
        Mean of the cs map instead of the SSIM map (MS-SSIM's lower scales).

    Returns
    -------
    values : ndarray
        ``(P,)`` float64 means.
    saved : tuple
        Opaque state for :func:`ssim_backward`: the three gradient maps per plane
        (valid size, ``x``'s dtype) and the plane shifts (float64 ``(P, 2)``).
    """
    _check_planes(x, y, weights)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    n_planes = x.shape[0]
    valid = tuple(n - len(w) + 1 for n in x.shape[1:])
    if x.ndim == 4:
        return _forward_volumes(x, y, w, c1, c2, cov_norm, cs_only)
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    values = np.empty(n_planes, dtype=np.float64)
    maps = np.empty((n_planes, 3, *valid), dtype=x.dtype)
    shifts = np.empty((n_planes, 2), dtype=np.float64)
    _run_with_threads(
        n_planes,
        x.size,
        _forward_planes,
        x,
        y,
        w,
        float(c1),
        float(c2),
        float(cov_norm),
        bool(cs_only),
        values,
        maps,
        shifts,
    )
    return values, (maps, shifts)


def ssim_backward(
    x: np.ndarray,
    y: np.ndarray,
    saved: Any,
    grad_values: np.ndarray,
    *,
    weights: np.ndarray,
) -> np.ndarray:
    """``grad_values[p] * d values[p] / d y`` for every plane, in ``y``'s dtype and shape.

    ``x``, ``y`` and ``saved`` are those of the :func:`ssim_forward` call;
    ``grad_values`` is ``(P,)`` (the incoming gradient of each plane's value).
    """
    maps, shifts = saved
    w = np.ascontiguousarray(weights, dtype=np.float64)
    g = np.ascontiguousarray(grad_values, dtype=np.float64).reshape(-1)
    if g.shape != (x.shape[0],):
        raise ValueError(f"grad_values must hold one value per plane (got shape {g.shape})")
    if x.ndim == 4:
        return _backward_volumes(x, y, maps, shifts, g, w)
    out = np.empty(y.shape, dtype=y.dtype)
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    _run_with_threads(x.shape[0], x.size, _backward_planes, x, y, maps, shifts, g, w, out)
    return out


def _forward_volumes(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    c1: float,
    c2: float,
    n: float,
    cs_only: bool,
) -> tuple[np.ndarray, Any]:
    """:func:`ssim_forward` of ``(P, D, H, W)`` volumes in NumPy float64, plane by plane."""
    n_planes = x.shape[0]
    valid = tuple(side - len(w) + 1 for side in x.shape[1:])
    values = np.empty(n_planes, dtype=np.float64)
    maps = np.empty((n_planes, 3, *valid), dtype=x.dtype)
    shifts = np.empty((n_planes, 2), dtype=np.float64)
    for p in range(n_planes):
        s_x = float(x[p].mean(dtype=np.float64))
        s_y = float(y[p].mean(dtype=np.float64))
        a = x[p].astype(np.float64) - s_x
        b = y[p].astype(np.float64) - s_y
        mu_x_c = filter_valid(a, w)
        mu_y_c = filter_valid(b, w)
        sigma_x_sq = n * (filter_valid(a * a, w) - mu_x_c * mu_x_c)
        sigma_y_sq = n * (filter_valid(b * b, w) - mu_y_c * mu_y_c)
        sigma_xy = n * (filter_valid(a * b, w) - mu_x_c * mu_y_c)
        b2 = sigma_x_sq + sigma_y_sq + c2
        cs = (2 * sigma_xy + c2) / b2
        inv_m = 1.0 / cs.size
        if cs_only:
            values[p] = cs.mean()
            maps[p, 0] = inv_m * 2 * n * (cs * mu_y_c - mu_x_c) / b2
            maps[p, 1] = inv_m * 2 * n / b2
            maps[p, 2] = -inv_m * n * cs / b2
        else:
            mu_x = mu_x_c + s_x
            mu_y = mu_y_c + s_y
            b1 = mu_x * mu_x + mu_y * mu_y + c1
            luminance = (2 * mu_x * mu_y + c1) / b1
            values[p] = (luminance * cs).mean()
            maps[p, 0] = inv_m * (
                2 * cs * (mu_x - luminance * mu_y) / b1
                + 2 * n * luminance * (cs * mu_y_c - mu_x_c) / b2
            )
            maps[p, 1] = inv_m * 2 * n * luminance / b2
            maps[p, 2] = -inv_m * n * luminance * cs / b2
        shifts[p] = s_x, s_y
    return values, (maps, shifts)


def _backward_volumes(
    x: np.ndarray,
    y: np.ndarray,
    maps: np.ndarray,
    shifts: np.ndarray,
    g: np.ndarray,
    w: np.ndarray,
) -> np.ndarray:
    """:func:`ssim_backward` of volumes: the adjoint filter in NumPy float64."""
    out = np.empty(y.shape, dtype=y.dtype)
    for p in range(x.shape[0]):
        g_mu, g_xy, g_yy = (maps[p, q].astype(np.float64) for q in range(3))
        a = x[p].astype(np.float64) - shifts[p, 0]
        b = y[p].astype(np.float64) - shifts[p, 1]
        grad = filter_adjoint(g_mu, w)
        grad += a * filter_adjoint(g_xy, w)
        grad += 2 * b * filter_adjoint(g_yy, w)
        out[p] = g[p] * grad
    return out
