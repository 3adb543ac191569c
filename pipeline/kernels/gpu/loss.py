"""The SSIM loss over a batch of planes on a CUDA device: forward and backward kernels.

``ssim_forward`` gives each plane's mean SSIM (or mean ``cs``) over the 'valid'
window positions and the three coefficient maps of its analytic gradient
(:mod:`pipeline.kernels.gradient`); ``ssim_backward`` turns them into
``d loss / d y``. The CPU twins in :mod:`pipeline.kernels.cpu.loss` have the
same signatures; :mod:`pipeline.nn` calls these for CUDA tensors.

Forward, one launch over ``(column tiles, row tiles, planes)``: the tiled
moments of the evaluation kernel (:mod:`pipeline.kernels.gpu._tiles`: centred
on each window's centre sample, float32 for float32 planes), then per window
position ``p`` the value and the coefficients of

    dS/dy_q = sum_p w(q - p) [G_mu(p) + x_q G_xy(p) + 2 y_q G_yy(p)]

(:mod:`pipeline.kernels.gradient`; ``cs_only``: ``l = 1`` and no luminance
term). Each block writes the sum of its values (a tree in shared memory) to
one float64 partial; a second small launch adds each plane's partials in a
fixed order, so the result is deterministic (no atomics).

Centred coefficients. Written with raw pixels the sum cancels badly in
float32: its terms are ``|x| / B2`` against a gradient of ``|x - y| / B2``, so
flat areas at 255 beside edges lose 2.5e-5 of the gradient, and data at 1e4
far more; a shift per plane or per tile does not help where an edge is near.
So the forward stores the coefficient about each window's centre sample
``(x_c, y_c)``,

    G_c = G_mu + x_c G_xy + 2 y_c G_yy = H - (mu_x - x_c) G_xy - 2 (mu_y - y_c) G_yy

with ``H = G_mu + mu_x G_xy + 2 mu_y G_yy = 2 cs (mu_x - l mu_y) / B1`` (the
luminance term, 0 for cs alone; ``mu_x - l mu_y = (mu_x - mu_y)(mu_x (mu_x +
mu_y) + C1) / B1``, free of cancellation) and ``mu - x_c`` straight from the
centred moments, and the backward sums ``G_c(p) + (x_q - x_c(p)) G_xy(p) + 2
(y_q - y_c(p)) G_yy(p)``: every difference is of two pixels less than a window
apart, split over the two separable passes through ``x`` at (row of ``q``,
centre column of ``p``). ``saved`` is ``G_c, G_xy, G_yy`` over ``M``.

Backward, one launch over the full-size planes: the adjoint of the 'valid'
correlation, a 'full' correlation with the reversed window (zero outside the
valid region); a vertical pass into shared memory, then a horizontal pass and
the factor ``grad_values[p]``.

Precision: the compute type is the planes' dtype. float32 planes never touch
float64 arithmetic except the per-block partial sums (one conversion per
block) and the per-plane total; float64 planes compute in float64 (the
gradient checks of autograd need it). Plain CUDA C, built by CuPy (NVRTC) at
first use per (dtype, window length, ``cs_only``); the tests run the same
source on CPU threads.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pipeline.kernels.gpu._tiles import MOMENTS, THREADS, TILE_COLS, fill, pick_tile_rows

__all__ = [
    "LOSS_DTYPES",
    "MAX_PLANES",
    "MAX_TAPS",
    "kernel_source",
    "ssim_backward",
    "ssim_forward",
    "tile_rows",
]

LOSS_DTYPES = ("float32", "float64")
MAX_TAPS = 31  # the widest window whose tiles fit the shared memory
MAX_PLANES = 65535  # one grid z index per plane
FORWARD = "pipeline_ssim_loss_forward"
REDUCE = "pipeline_ssim_loss_reduce"
BACKWARD = "pipeline_ssim_loss_backward"

_SOURCE = r"""
#define CS_ONLY __CS_ONLY__

extern "C" __global__ void __FORWARD__(
    const T* __restrict__ x, const T* __restrict__ y, const int rows, const int cols,
    const F* __restrict__ weights, const F c1, const F c2, const F cov_norm, const F inv_m,
    F* __restrict__ saved, double* __restrict__ partials, const int out_rows, const int out_cols)
{
    __shared__ F ws[TAPS];
    __shared__ F xs[HEIGHT][WIDTH];
    __shared__ F ys[HEIGHT][WIDTH];
    __shared__ F vs[5][TILE_ROWS][WIDTH];
    __shared__ F red[THREADS];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int row0 = blockIdx.y * TILE_ROWS;
    const int col0 = blockIdx.x * TILE_COLS;
    const long long plane = (long long)blockIdx.z * rows * cols;
    const T* xp = x + plane;
    const T* yp = y + plane;
    const T tile_x = xp[(long long)row0 * cols + col0];
    const T tile_y = yp[(long long)row0 * cols + col0];
    if (tid < TAPS) ws[tid] = weights[tid];
    load_tile(xp, yp, rows, cols, row0, col0, tile_x, tile_y, xs, ys, tid);
    __syncthreads();
    vertical_pass(ws, xs, ys, vs, tid);
    __syncthreads();

    // The coefficients about each window's centre sample (x_c, y_c):
    // G_c = G_mu + x_c G_xy + 2 y_c G_yy = H - (mu_x - x_c) G_xy - 2 (mu_y - y_c) G_yy,
    // H = G_mu + mu_x G_xy + 2 mu_y G_yy (the luminance term; 0 for cs alone).
    const F tx = SHIFTED(tile_x, (T)0);
    const F ty = SHIFTED(tile_y, (T)0);
    const F txy = SHIFTED(tile_x, tile_y);
    const F n2 = (F)2 * cov_norm;
    const long long map = (long long)out_rows * out_cols;
    F* g_c = saved + (long long)blockIdx.z * 3 * map;
    F* g_xy = g_c + map;
    F* g_yy = g_xy + map;
    F total = 0;
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= out_rows || col0 + c >= out_cols) continue;
        const Moments m = horizontal_pass(ws, xs, ys, vs, r, c, cov_norm);
        const F b2 = (m.var_x + m.var_y) + c2;
        const F cs = ((F)2 * m.cov_xy + c2) / b2;
        const long long o = (long long)(row0 + r) * out_cols + (col0 + c);
#if CS_ONLY
        const F value = cs;
        const F h = 0;
        const F gxy = inv_m * (n2 / b2);
#else
        const F mx = tx + m.mx;
        const F my = ty + m.my;
        const F b1 = __ADD__(__ADD__(__MUL__(mx, mx), __MUL__(my, my)), c1);
        const F l = __ADD__(__MUL__((F)2 * mx, my), c1) / b1;
        const F diff = (m.mx - m.my) + txy;  // mu_x - mu_y
        const F value = l * cs;
        // mu_x - l mu_y = (mu_x - mu_y)(mu_x (mu_x + mu_y) + C1) / B1: no cancellation.
        const F h = inv_m * (((F)2 * cs * diff / b1) * ((mx * (mx + my) + c1) / b1));
        const F gxy = inv_m * (n2 * l / b2);
#endif
        const F gyy = (F)(-0.5) * cs * gxy;  // G_yy = -n l cs / B2 = -cs G_xy / 2
        total += value;
        g_c[o] = h - m.dx * gxy - (F)2 * m.dy * gyy;
        g_xy[o] = gxy;
        g_yy[o] = gyy;
    }
    // The block's sum, a tree in shared memory; one float64 partial per block.
    red[tid] = total;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (tid < half) red[tid] += red[tid + half];
        __syncthreads();
    }
    if (tid == 0)
        partials[(long long)blockIdx.z * gridDim.x * gridDim.y + blockIdx.y * gridDim.x
                 + blockIdx.x] = (double)red[0];
}

// One block per plane: its partials in a fixed order, times 1 / M.
extern "C" __global__ void __REDUCE__(
    const double* __restrict__ partials, const int blocks, const double inv_m,
    double* __restrict__ values)
{
    __shared__ double sums[THREADS];
    const int tid = threadIdx.x;
    const double* p = partials + (long long)blockIdx.x * blocks;
    double s = 0.0;
    for (int i = tid; i < blocks; i += THREADS) s += p[i];
    sums[tid] = s;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (tid < half) sums[tid] += sums[tid + half];
        __syncthreads();
    }
    if (tid == 0) values[blockIdx.x] = sums[0] * inv_m;
}

// grad_q = grad_values[p] * sum_p w_{q-p} [G_c(p) + (x_q - x_c(p)) G_xy(p)
//                                         + 2 (y_q - y_c(p)) G_yy(p)],
// the adjoint of the valid correlation ('full', reversed window), zero outside the
// valid region. Every difference is of two pixels less than a window apart, split
// over the two passes: x_q - x_c(p) = (x_q - x(q_r, c_p)) + (x(q_r, c_p) - x(r_p, c_p))
// with (r_p, c_p) the centre of window p.
extern "C" __global__ void __BACKWARD__(
    const T* __restrict__ x, const T* __restrict__ y, const F* __restrict__ saved,
    const F* __restrict__ grad_values, const F* __restrict__ weights, const int rows,
    const int cols, const int out_rows, const int out_cols, T* __restrict__ grad)
{
    __shared__ F ws[TAPS];
    // Input rows row0 - TAPS + 1 + CENTRE on, columns col0 - TAPS + 1 + CENTRE on.
    __shared__ F xs[HEIGHT][WIDTH];
    __shared__ F ys[HEIGHT][WIDTH];
    __shared__ F vs[3][TILE_ROWS][WIDTH];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int row0 = blockIdx.y * TILE_ROWS;
    const int col0 = blockIdx.x * TILE_COLS;
    const int top = row0 - (TAPS - 1) + CENTRE;
    const int left = col0 - (TAPS - 1) + CENTRE;
    const long long plane = (long long)blockIdx.z * rows * cols;
    const long long map = (long long)out_rows * out_cols;
    const F* g = saved + (long long)blockIdx.z * 3 * map;
    if (tid < TAPS) ws[tid] = weights[tid];
    for (int idx = tid; idx < HEIGHT * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int c = idx - r * WIDTH;
        const bool inside = top + r >= 0 && top + r < rows && left + c >= 0 && left + c < cols;
        const long long k = plane + (long long)(top + r) * cols + (left + c);
        xs[r][c] = inside ? (F)x[k] : (F)0;
        ys[r][c] = inside ? (F)y[k] : (F)0;
    }
    __syncthreads();
    // Vertical pass: per output row r and window column j (c_p = left + j), over the
    // windows p = (row0 + r - k, col0 - TAPS + 1 + j) above it.
    for (int idx = tid; idx < TILE_ROWS * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int j = idx - r * WIDTH;
        const int pc = col0 - (TAPS - 1) + j;
        // x(q_r, c_p) sits at row r + TAPS - 1 - CENTRE of the tile.
        const F xq = xs[r + TAPS - 1 - CENTRE][j];
        const F yq = ys[r + TAPS - 1 - CENTRE][j];
        F s = 0, a1 = 0, a2 = 0;
        if (pc >= 0 && pc < out_cols) {
            for (int k = 0; k < TAPS; ++k) {
                const int pr = row0 + r - k;
                if (pr < 0 || pr >= out_rows) continue;
                const long long o = (long long)pr * out_cols + pc;
                const F gxy = g[map + o];
                const F gyy = g[2 * map + o];
                // The centre of window p is tile row r + TAPS - 1 - k.
                const F u = xq - xs[r + TAPS - 1 - k][j];
                const F v = yq - ys[r + TAPS - 1 - k][j];
                s += ws[k] * ((g[o] + u * gxy) + (F)2 * (v * gyy));
                a1 += ws[k] * gxy;
                a2 += ws[k] * gyy;
            }
        }
        vs[0][r][j] = s;
        vs[1][r][j] = a1;
        vs[2][r][j] = a2;
    }
    __syncthreads();
    const F scale = grad_values[blockIdx.z];
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= rows || col0 + c >= cols) continue;
        // x_q at tile row r + TAPS - 1 - CENTRE, column c + TAPS - 1 - CENTRE.
        const F xq = xs[r + TAPS - 1 - CENTRE][c + TAPS - 1 - CENTRE];
        const F yq = ys[r + TAPS - 1 - CENTRE][c + TAPS - 1 - CENTRE];
        F total = 0;
        for (int k = 0; k < TAPS; ++k) {
            const int j = c + TAPS - 1 - k;
            const F u = xq - xs[r + TAPS - 1 - CENTRE][j];
            const F v = yq - ys[r + TAPS - 1 - CENTRE][j];
            total += ws[k] * ((vs[0][r][j] + u * vs[1][r][j]) + (F)2 * (v * vs[2][r][j]));
        }
        grad[plane + (long long)(row0 + r) * cols + (col0 + c)] = (T)(scale * total);
    }
}
"""


def _shared_bytes(rows: int, taps: int, itemsize: int) -> int:
    """The larger of the forward's and the backward's shared memory (the reduction's is fixed)."""
    width = TILE_COLS + taps - 1
    forward = taps + 2 * (rows + taps - 1) * width + 5 * rows * width + THREADS
    backward = taps + 2 * (rows + taps - 1) * width + 3 * rows * width
    return itemsize * max(forward, backward)


def tile_rows(taps: int, dtype: str) -> int:
    """Output rows per thread block of the loss kernels for a window and dtype."""
    if not 1 <= taps <= MAX_TAPS:
        raise ValueError(f"weights must have 1 to {MAX_TAPS} taps (got {taps})")
    itemsize = 4 if dtype == "float32" else 8
    return pick_tile_rows(lambda rows: _shared_bytes(rows, taps, itemsize))


def kernel_source(dtype: str, taps: int, cs_only: bool) -> str:
    """The CUDA C source of the three loss kernels for one dtype, window length and value."""
    if dtype not in LOSS_DTYPES:
        raise ValueError(f"dtype must be float32 or float64 (got {dtype!r})")
    return fill(
        MOMENTS + _SOURCE,
        dtype=dtype,
        compute=dtype,
        taps=taps,
        tile_rows=tile_rows(taps, dtype),
        cs_only="1" if cs_only else "0",
        forward=FORWARD,
        reduce=REDUCE,
        backward=BACKWARD,
    )


@functools.cache
def _module(dtype: str, taps: int, cs_only: bool) -> Any:
    import cupy

    return cupy.RawModule(code=kernel_source(dtype, taps, cs_only))


@functools.lru_cache(maxsize=16)
def _device_weights(weights: tuple[float, ...], dtype: str) -> Any:
    import cupy

    return cupy.asarray(weights, dtype=dtype)


def _check_planes(x: Any, y: Any, weights: np.ndarray) -> tuple[int, int, int, int]:
    """``(planes, rows, cols, taps)`` after the checks shared by both directions."""
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError(
            "x and y must be (planes, rows, cols) arrays of one shape "
            f"(got {x.shape} and {y.shape})"
        )
    if x.dtype != y.dtype or x.dtype.name not in LOSS_DTYPES:
        raise TypeError(
            f"x and y must both be float32 or both float64 (got {x.dtype} and {y.dtype})"
        )
    if not (x.flags.c_contiguous and y.flags.c_contiguous):
        raise ValueError("x and y must be C-contiguous")
    weights = np.asarray(weights)
    if weights.ndim != 1 or not 1 <= weights.size <= MAX_TAPS:
        raise ValueError(
            f"weights must be a 1-D window of 1 to {MAX_TAPS} taps (got shape {weights.shape})"
        )
    planes, rows, cols = x.shape
    if not 1 <= planes <= MAX_PLANES:
        raise ValueError(f"x and y must hold 1 to {MAX_PLANES} planes (got {planes})")
    if weights.size > min(rows, cols):
        raise ValueError(
            f"weights must have at most min(rows, cols) taps "
            f"(got {weights.size} for planes of {rows} x {cols})"
        )
    return planes, rows, cols, weights.size


def _grid(rows: int, cols: int, planes: int, per_tile: int) -> tuple[int, int, int]:
    return (-(-cols // TILE_COLS), -(-rows // per_tile), planes)


def ssim_forward(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    cs_only: bool,
) -> tuple[Any, Any]:
    """Mean SSIM (or cs) of each plane over its valid positions, and what the gradient needs.

    Parameters
    ----------
    x, y : cupy.ndarray
        ``(planes, rows, cols)``, C-contiguous, both float32 or both float64.
    weights : numpy.ndarray
        The separable 1-D window, at most :data:`MAX_TAPS` taps.
    c1, c2 : float
        ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``.
    cov_norm : float
        Factor on the local (co)variances.
    cs_only : bool
        Average the contrast-structure term ``cs`` instead of SSIM.

    Returns
    -------
    values : cupy.ndarray
        ``(planes,)`` float64 means.
    saved : cupy.ndarray
        ``(planes, 3, rows - K + 1, cols - K + 1)`` in the planes' dtype: the
        coefficient maps ``G_c`` (about each window's centre sample), ``G_xy``,
        ``G_yy``, divided by the number of valid positions. Pass it to
        :func:`ssim_backward`.
    """
    import cupy

    planes, rows, cols, taps = _check_planes(x, y, weights)
    dtype = x.dtype.name
    out_rows, out_cols = rows - taps + 1, cols - taps + 1
    count = out_rows * out_cols
    scalar = np.float32 if dtype == "float32" else np.float64
    module = _module(dtype, taps, bool(cs_only))
    taps_on_device = _device_weights(tuple(map(float, weights)), dtype)
    grid = _grid(out_rows, out_cols, planes, tile_rows(taps, dtype))
    saved = cupy.empty((planes, 3, out_rows, out_cols), dtype=x.dtype)
    partials = cupy.empty((planes, grid[0] * grid[1]), dtype=cupy.float64)
    values = cupy.empty(planes, dtype=cupy.float64)
    module.get_function(FORWARD)(
        grid,
        (TILE_COLS, THREADS // TILE_COLS),
        (
            x, y, np.int32(rows), np.int32(cols), taps_on_device,
            scalar(c1), scalar(c2), scalar(cov_norm), scalar(1.0 / count), saved, partials,
            np.int32(out_rows), np.int32(out_cols),
        ),
    )  # fmt: skip
    module.get_function(REDUCE)(
        (planes,),
        (THREADS,),
        (partials, np.int32(partials.shape[1]), np.float64(1.0 / count), values),
    )
    return values, saved


def ssim_backward(x: Any, y: Any, saved: Any, grad_values: Any, *, weights: np.ndarray) -> Any:
    """``grad_values[p] * d values[p] / d y`` for every plane, shape and dtype of ``y``.

    Parameters
    ----------
    x, y : cupy.ndarray
        The planes given to :func:`ssim_forward`.
    saved : cupy.ndarray
        Its second result.
    grad_values : cupy.ndarray
        ``(planes,)``: d loss / d values.
    weights : numpy.ndarray
        The window given to :func:`ssim_forward`.
    """
    import cupy

    planes, rows, cols, taps = _check_planes(x, y, weights)
    out_rows, out_cols = rows - taps + 1, cols - taps + 1
    if saved.shape != (planes, 3, out_rows, out_cols) or saved.dtype != x.dtype:
        raise ValueError(
            f"saved must be ssim_forward's (planes, 3, rows, cols) maps of dtype {x.dtype} "
            f"(got shape {saved.shape}, dtype {saved.dtype})"
        )
    if grad_values.shape != (planes,):
        raise ValueError(
            f"grad_values must have shape ({planes},) (got {tuple(grad_values.shape)})"
        )
    dtype = x.dtype.name
    grad = cupy.empty_like(y)
    # The module of either cs_only: the backward kernel does not depend on it.
    module = _module(dtype, taps, False)
    module.get_function(BACKWARD)(
        _grid(rows, cols, planes, tile_rows(taps, dtype)),
        (TILE_COLS, THREADS // TILE_COLS),
        (
            x, y, cupy.ascontiguousarray(saved), cupy.ascontiguousarray(grad_values, dtype=x.dtype),
            _device_weights(tuple(map(float, weights)), dtype), np.int32(rows), np.int32(cols),
            np.int32(out_rows), np.int32(out_cols), grad,
        ),
    )  # fmt: skip
    return grad
