"""The SSIM loss over a batch of planes on a CUDA device: forward and backward kernels.

``ssim_forward`` gives each plane's mean SSIM (or mean ``cs``) over the 'valid'
window positions and the three coefficient maps of its analytic gradient
(:mod:`pipeline.kernels.gradient`); ``ssim_backward`` turns them into
``d loss / d y``. The CPU twins in :mod:`pipeline.kernels.cpu.loss` have the
same signatures; :mod:`pipeline.nn` calls these for CUDA tensors.

Forward, one launch over ``(column tiles, row tiles, planes)``: the tiled
moments of the evaluation kernel (:mod:`pipeline.kernels.gpu._tiles`: centred
on each window's centre sample, float32 for float32 planes), then per position
the value and

    G_mu = 2 cs (mu_x - l mu_y) / B1 + 2 n l (cs mu_y' - mu_x') / B2
    G_xy = 2 n l / B2,   G_yy = -n l cs / B2                   (all over M)

(``cs_only``: ``l = 1`` and no luminance term). Each block writes the sum of
its values (a float32 tree in shared memory for float32 planes) to one float64
partial; a second small launch adds each plane's partials in a fixed order, so
the result is deterministic (no atomics).

Shifted coordinates. Written with raw pixels, ``dS/dy_q = adj(G_mu) + x_q
adj(G_xy) + 2 y_q adj(G_yy)`` cancels badly in float32 for data far from zero
(terms ``|x| / B2`` against a gradient ``|x - y| / B2``). Both kernels
therefore use ``x' = x - s_x``, ``y' = y - s_y`` with ``s`` the plane's first
pixel, and the forward stores ``G_mu' = G_mu + s_x G_xy + 2 s_y G_yy``, formed
from the shifted means ``mu'`` as above; ``mu_x - l mu_y`` is
``(mu_x - mu_y)(mu_x (mu_x + mu_y) + C1) / B1``, free of cancellation. The
gradient is exactly the same function, and the rounding is now relative to the
plane's range of values rather than to its offset.

Backward, one launch over the full-size planes: the adjoint of the 'valid'
correlation is a 'full' correlation with the reversed window; a vertical pass
reads the three maps (zero outside the valid region) into shared memory, a
horizontal pass and ``grad_values[p] * (adj(G_mu') + x' adj(G_xy) + 2 y'
adj(G_yy))`` give each pixel.

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
    "MAX_TAPS",
    "kernel_source",
    "ssim_backward",
    "ssim_forward",
    "tile_rows",
]

LOSS_DTYPES = ("float32", "float64")
MAX_TAPS = 31  # the widest window whose tiles fit the shared memory
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

    // The tile's shift relative to the plane's (its first pixel), and x's relative to y's.
    const F tx = SHIFTED(tile_x, xp[0]);
    const F ty = SHIFTED(tile_y, yp[0]);
    const F txy = SHIFTED(tile_x, tile_y);
    const F sx = SHIFTED(xp[0], (T)0);
    const F sy = SHIFTED(yp[0], (T)0);
    const F n2 = (F)2 * cov_norm;
    const long long map = (long long)out_rows * out_cols;
    F* g_mu = saved + (long long)blockIdx.z * 3 * map;
    F* g_xy = g_mu + map;
    F* g_yy = g_xy + map;
    F total = 0;
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= out_rows || col0 + c >= out_cols) continue;
        const Moments m = horizontal_pass(ws, xs, ys, vs, r, c, cov_norm);
        const F mx_p = tx + m.mx;  // means relative to the plane's shift
        const F my_p = ty + m.my;
        const F b2 = (m.var_x + m.var_y) + c2;
        const F cs = ((F)2 * m.cov_xy + c2) / b2;
        const long long o = (long long)(row0 + r) * out_cols + (col0 + c);
#if CS_ONLY
        total += cs;
        g_mu[o] = inv_m * (n2 * (cs * my_p - mx_p) / b2);
        g_xy[o] = inv_m * (n2 / b2);
        g_yy[o] = inv_m * (-cov_norm * cs / b2);
#else
        const F mx = sx + mx_p;
        const F my = sy + my_p;
        const F b1 = __ADD__(__ADD__(__MUL__(mx, mx), __MUL__(my, my)), c1);
        const F l = __ADD__(__MUL__((F)2 * mx, my), c1) / b1;
        const F diff = (m.mx - m.my) + txy;  // mu_x - mu_y
        total += l * cs;
        g_mu[o] = inv_m * (((F)2 * cs * diff / b1) * ((mx * (mx + my) + c1) / b1)
                           + n2 * l * (cs * my_p - mx_p) / b2);
        g_xy[o] = inv_m * (n2 * l / b2);
        g_yy[o] = inv_m * (-cov_norm * l * cs / b2);
#endif
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

// grad = grad_values[p] * (adj(G_mu') + x' adj(G_xy) + 2 y' adj(G_yy)), adj(G)_q =
// sum_k w_k G_{q - k}: a 'full' correlation with the reversed window, zero outside
// the valid region.
extern "C" __global__ void __BACKWARD__(
    const T* __restrict__ x, const T* __restrict__ y, const F* __restrict__ saved,
    const F* __restrict__ grad_values, const F* __restrict__ weights, const int rows,
    const int cols, const int out_rows, const int out_cols, T* __restrict__ grad)
{
    __shared__ F ws[TAPS];
    __shared__ F vs[3][TILE_ROWS][WIDTH];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int row0 = blockIdx.y * TILE_ROWS;
    const int col0 = blockIdx.x * TILE_COLS;
    const long long map = (long long)out_rows * out_cols;
    const F* g = saved + (long long)blockIdx.z * 3 * map;
    if (tid < TAPS) ws[tid] = weights[tid];
    __syncthreads();
    // Vertical pass: rows of the maps above each output row, columns col0 - TAPS + 1 on.
    for (int idx = tid; idx < TILE_ROWS * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int j = idx - r * WIDTH;
        const int pc = col0 - (TAPS - 1) + j;
        F a0 = 0, a1 = 0, a2 = 0;
        if (pc >= 0 && pc < out_cols) {
            for (int k = 0; k < TAPS; ++k) {
                const int pr = row0 + r - k;
                if (pr < 0 || pr >= out_rows) continue;
                const long long o = (long long)pr * out_cols + pc;
                a0 += ws[k] * g[o];
                a1 += ws[k] * g[map + o];
                a2 += ws[k] * g[2 * map + o];
            }
        }
        vs[0][r][j] = a0;
        vs[1][r][j] = a1;
        vs[2][r][j] = a2;
    }
    __syncthreads();
    const long long plane = (long long)blockIdx.z * rows * cols;
    const T sx = x[plane];
    const T sy = y[plane];
    const F scale = grad_values[blockIdx.z];
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= rows || col0 + c >= cols) continue;
        F a0 = 0, a1 = 0, a2 = 0;
        for (int k = 0; k < TAPS; ++k) {
            const int j = c + TAPS - 1 - k;
            a0 += ws[k] * vs[0][r][j];
            a1 += ws[k] * vs[1][r][j];
            a2 += ws[k] * vs[2][r][j];
        }
        const long long q = plane + (long long)(row0 + r) * cols + (col0 + c);
        const F xq = SHIFTED(x[q], sx);
        const F yq = SHIFTED(y[q], sy);
        grad[q] = (T)(scale * (a0 + xq * a1 + (F)2 * yq * a2));
    }
}
"""


def _shared_bytes(rows: int, taps: int, itemsize: int) -> int:
    """The larger of the forward's and the backward's shared memory (the reduction's is fixed)."""
    width = TILE_COLS + taps - 1
    forward = taps + 2 * (rows + taps - 1) * width + 5 * rows * width + THREADS
    backward = taps + 3 * rows * width
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
        coefficient maps ``G_mu'`` (in shifted coordinates), ``G_xy``, ``G_yy``
        divided by the number of valid positions. Pass it to :func:`ssim_backward`.
    """
    import cupy

    planes, rows, cols, taps = _check_planes(x, y, weights)
    dtype = x.dtype.name
    out_rows, out_cols = rows - taps + 1, cols - taps + 1
    count = out_rows * out_cols
    scalar = np.float32 if dtype == "float32" else np.float64
    module = _module(dtype, taps, bool(cs_only))
    grid = _grid(out_rows, out_cols, planes, tile_rows(taps, dtype))
    saved = cupy.empty((planes, 3, out_rows, out_cols), dtype=x.dtype)
    partials = cupy.empty((planes, grid[0] * grid[1]), dtype=cupy.float64)
    values = cupy.empty(planes, dtype=cupy.float64)
    module.get_function(FORWARD)(
        grid,
        (TILE_COLS, THREADS // TILE_COLS),
        (
            x, y, np.int32(rows), np.int32(cols), cupy.asarray(weights, dtype=x.dtype),
            scalar(c1), scalar(c2), scalar(cov_norm), scalar(1.0 / count), saved, partials,
            np.int32(out_rows), np.int32(out_cols),
        ),
    )  # fmt: skip
    module.get_function(REDUCE)(
        (planes,), (THREADS,), (partials, np.int32(partials.shape[1]), 1.0 / count, values)
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
            cupy.asarray(weights, dtype=x.dtype), np.int32(rows), np.int32(cols),
            np.int32(out_rows), np.int32(out_cols), grad,
        ),
    )  # fmt: skip
    return grad
