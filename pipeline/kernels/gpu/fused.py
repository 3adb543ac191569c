"""One fused CUDA kernel for the SSIM maps of a 2-D block (CuPy ``RawKernel``).

The same numbers as :func:`pipeline.kernels.reference.ssim_maps` (within 1e-5
on every pixel), in one launch: each thread block reads its input tile (the
output tile plus the window's radius on every side) once from global memory
into shared memory, filters the five moments vertically into shared memory,
then horizontally, and turns them into the maps in registers. Global memory
sees one read of each input pixel (in its own dtype: no float copy of the
images) and one write per map: none of the ten filtered float64 images that
scikit-image and cuCIM store, and no temporaries.

Precision: float32 throughout. Consumer and workstation GPUs run float64 at
1/32 to 1/64 of their float32 rate, so a float64 kernel would be bound by
arithmetic there; float32 also halves the shared memory of a tile (twice the
rows per block). The plain float32 ``E[x^2] - mu^2`` would lose up to 6e-4 of
``cs`` on data far from zero, so every (co)variance is formed around the
window's centre sample and the two separable passes are joined by the law of
total variance (:mod:`pipeline.kernels.gpu._tiles`, the same scheme as the
fused CPU kernel); the input tile is shifted by its first pixel on loading.
No case needs a float64 variant here: constants or pixels that float32 cannot
hold at all (:func:`pipeline.kernels.cpu.combine.float32_holds`) are sent to
the float64 reference engine by the callers, and windows wider than
``2 * MAX_RADIUS + 1`` taps take the float64 cupyx path of
:mod:`pipeline.kernels.gpu.maps`. The maps are stored as float32.

CUDA C compiled by CuPy (NVRTC) at first use, one build per (input dtype,
window radius, components). The source is plain CUDA with no CuPy headers, so
the tests also build it with ``nvcc`` where one is installed, and run it on
the CPU through a small POSIX-threads harness (``tests/kernels/gpu/harness.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pipeline.kernels.gpu._tiles import (
    C_TYPES,
    MOMENTS,
    THREADS,
    TILE_COLS,
    fill,
    pick_tile_rows,
)

__all__ = [
    "C_TYPES",
    "MAX_RADIUS",
    "THREADS",
    "TILE_COLS",
    "fused_gpu_maps",
    "kernel_source",
    "tile_rows",
]

MAX_RADIUS = 15  # larger windows take the cupyx path (pipeline.kernels.gpu.maps)
KERNEL_NAME = "pipeline_ssim_fused"

_SOURCE = r"""
#define COMPONENTS __COMPONENTS__

extern "C" __global__ void __KERNEL_NAME__(
    const T* __restrict__ x, const T* __restrict__ y, const int in_rows, const int in_cols,
    const F* __restrict__ weights, const F c1, const F c2, const F cov_norm,
    float* __restrict__ ssim, float* __restrict__ cs, float* __restrict__ lum,
    float* __restrict__ con, float* __restrict__ stru, const int out_rows, const int out_cols)
{
    __shared__ F ws[TAPS];
    __shared__ F xs[HEIGHT][WIDTH];
    __shared__ F ys[HEIGHT][WIDTH];
    __shared__ F vs[5][TILE_ROWS][WIDTH];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int row0 = blockIdx.y * TILE_ROWS;
    const int col0 = blockIdx.x * TILE_COLS;
    const long long first = (long long)row0 * in_cols + col0;
    const T shift_x = x[first];
    const T shift_y = y[first];
    if (tid < TAPS) ws[tid] = weights[tid];
    load_tile(x, y, in_rows, in_cols, row0, col0, shift_x, shift_y, xs, ys, tid);
    __syncthreads();
    vertical_pass(ws, xs, ys, vs, tid);
    __syncthreads();

    // The maps (Wang et al. 2004, eqs. 6-13, C3 = C2 / 2).
    const F tx = SHIFTED(shift_x, (T)0);
    const F ty = SHIFTED(shift_y, (T)0);
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= out_rows || col0 + c >= out_cols) continue;
        const Moments m = horizontal_pass(ws, xs, ys, vs, r, c, cov_norm);
        const F mx = tx + m.mx;
        const F my = ty + m.my;
        // Never contracted: x and y take the same roundings, so ssim(x, x) == 1.
        const F luminance = __ADD__(__MUL__((F)2 * mx, my), c1)
            / __ADD__(__ADD__(__MUL__(mx, mx), __MUL__(my, my)), c1);
        const F denominator = (m.var_x + m.var_y) + c2;
        const F cs_value = ((F)2 * m.cov_xy + c2) / denominator;
        const long long o = (long long)(row0 + r) * out_cols + (col0 + c);
        ssim[o] = (float)(luminance * cs_value);
        cs[o] = (float)cs_value;
#if COMPONENTS
        // Rounding can leave a variance a hair below zero; the root needs >= 0.
        const F sd_x = __SQRT__(__FMAX__(m.var_x, (F)0));
        const F sd_y = __SQRT__(__FMAX__(m.var_y, (F)0));
        const F c3 = (F)0.5 * c2;
        lum[o] = (float)luminance;
        con[o] = (float)(((F)2 * sd_x * sd_y + c2) / denominator);
        stru[o] = (float)((m.cov_xy + c3) / (sd_x * sd_y + c3));
#endif
    }
}
"""


def _shared_bytes(rows: int, radius: int) -> int:
    """float32 shared memory: the window, two input tiles, five column statistics."""
    width = TILE_COLS + 2 * radius
    return 4 * (2 * radius + 1 + 2 * (rows + 2 * radius) * width + 5 * rows * width)


def tile_rows(radius: int) -> int:
    """Output rows per thread block: the most (of 32, 16, 8, 4) whose tiles fit."""
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"window radius must be in [0, {MAX_RADIUS}] (got {radius})")
    return pick_tile_rows(lambda rows: _shared_bytes(rows, radius))


def kernel_source(dtype: str, radius: int, components: bool) -> str:
    """The CUDA C source for one input dtype, window radius and set of maps."""
    if dtype not in C_TYPES:
        raise ValueError(f"dtype must be one of {sorted(C_TYPES)} (got {dtype!r})")
    rows = tile_rows(radius)
    return fill(
        MOMENTS + _SOURCE,
        dtype=dtype,
        compute="float32",
        taps=2 * radius + 1,
        tile_rows=rows,
        components="1" if components else "0",
        kernel_name=KERNEL_NAME,
    )


@functools.cache
def _kernel(dtype: str, radius: int, components: bool) -> Any:
    import cupy

    return cupy.RawKernel(kernel_source(dtype, radius, components), KERNEL_NAME)


@functools.lru_cache(maxsize=16)
def _device_weights(weights: tuple[float, ...]) -> Any:
    import cupy

    return cupy.asarray(weights, dtype=cupy.float32)


def fused_gpu_maps(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    components: bool = True,
) -> dict[str, Any]:
    """SSIM maps of a 2-D CuPy block on its 'valid' region, in one fused launch.

    Parameters
    ----------
    x, y : cupy.ndarray
        2-D images of the same shape and dtype (read as they are; float16
        and other dtypes go through float32/float64 first).
    weights : numpy.ndarray
        The separable 1-D window, odd length, radius at most :data:`MAX_RADIUS`.
    c1, c2 : float
        ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``; ``C3 = C2 / 2``.
    cov_norm : float
        Factor on the local (co)variances.
    components : bool
        Also return ``luminance``, ``contrast`` and ``structure``.

    Returns
    -------
    dict of cupy.ndarray
        float32 maps ``ssim``, ``cs`` (and the components) on the device.
    """
    import cupy

    if x.dtype != y.dtype or x.dtype.name not in C_TYPES:
        common = np.promote_types(np.promote_types(x.dtype, y.dtype), np.float32)
        x, y = x.astype(common), y.astype(common)
    x = cupy.ascontiguousarray(x)
    y = cupy.ascontiguousarray(y)
    radius = (len(weights) - 1) // 2
    out_rows, out_cols = x.shape[0] - 2 * radius, x.shape[1] - 2 * radius
    names = ("ssim", "cs", "luminance", "contrast", "structure")[: 5 if components else 2]
    maps = {name: cupy.empty((out_rows, out_cols), dtype=cupy.float32) for name in names}
    spare = maps["ssim"]  # never written when components is False
    rows = tile_rows(radius)
    grid = (-(-out_cols // TILE_COLS), -(-out_rows // rows))
    _kernel(x.dtype.name, radius, components)(
        grid,
        (TILE_COLS, THREADS // TILE_COLS),
        (
            x,
            y,
            np.int32(x.shape[0]),
            np.int32(x.shape[1]),
            _device_weights(tuple(float(w) for w in weights)),
            np.float32(c1),
            np.float32(c2),
            np.float32(cov_norm),
            maps["ssim"],
            maps["cs"],
            maps.get("luminance", spare),
            maps.get("contrast", spare),
            maps.get("structure", spare),
            np.int32(out_rows),
            np.int32(out_cols),
        ),
    )
    return maps
