"""One fused CUDA kernel for the SSIM maps of a 2-D block (CuPy ``RawKernel``).

The same numbers as :func:`pipeline.kernels.reference.ssim_maps`, in one
launch: each thread block reads its input tile (the output tile plus the
window's radius on every side) once from global memory into shared memory,
filters the five moments vertically into shared memory, then horizontally,
and turns them into the maps in registers. Global memory sees one read of
each input pixel (in its own dtype: no float copy of the images) and one
write per map: none of the ten filtered float64 images that scikit-image and
cuCIM store, and no temporaries.

Precision: the moments are float64 throughout (a data-centre GPU runs float64
at half its float32 rate, and this kernel is bound by shared-memory traffic).
Each tile subtracts its first pixel from both images before squaring, so
``E[x^2] - mu^2`` cancels on shifted values; the means get the shift back.
The maps are stored as float32, like the CPU kernel's.

CUDA C compiled by CuPy (NVRTC) at first use, one build per (input dtype,
window radius, components). The source is plain CUDA with no CuPy headers, so
the tests also build it with ``nvcc`` where one is installed, and run it on
the CPU through a small POSIX-threads harness (``tests/kernels/gpu/test_source.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["MAX_RADIUS", "fused_gpu_maps", "kernel_source", "tile_rows"]

TILE_COLS = 32  # one warp across a tile row: coalesced loads and stores
THREADS = 256
_SHARED_BYTES = 46 * 1024  # under the 48 KiB of static shared memory per block
MAX_RADIUS = 15  # larger windows take the cupyx path (pipeline.kernels.gpu.maps)
KERNEL_NAME = "pipeline_ssim_fused"

C_TYPES = {
    "uint8": "unsigned char",
    "int8": "signed char",
    "uint16": "unsigned short",
    "int16": "short",
    "uint32": "unsigned int",
    "int32": "int",
    "uint64": "unsigned long long",
    "int64": "long long",
    "float32": "float",
    "float64": "double",
}

_SOURCE = r"""
#define R __RADIUS__
#define TAPS (2 * R + 1)
#define TILE_COLS __TILE_COLS__
#define TILE_ROWS __TILE_ROWS__
#define WIDTH (TILE_COLS + 2 * R)
#define HEIGHT (TILE_ROWS + 2 * R)
#define THREADS __THREADS__
#define COMPONENTS __COMPONENTS__
typedef __CTYPE__ T;

extern "C" __global__ void __KERNEL_NAME__(
    const T* __restrict__ x, const T* __restrict__ y, const int in_rows, const int in_cols,
    const double* __restrict__ weights, const double c1, const double c2, const double cov_norm,
    float* __restrict__ ssim, float* __restrict__ cs, float* __restrict__ lum,
    float* __restrict__ con, float* __restrict__ stru, const int out_rows, const int out_cols)
{
    __shared__ double xs[HEIGHT][WIDTH];
    __shared__ double ys[HEIGHT][WIDTH];
    __shared__ double vs[5][TILE_ROWS][WIDTH];
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int row0 = blockIdx.y * TILE_ROWS;
    const int col0 = blockIdx.x * TILE_COLS;
    const long long first = (long long)row0 * in_cols + col0;
    const double shift_x = (double)x[first];
    const double shift_y = (double)y[first];

    // 1. The input tile, shifted, into shared memory (zeros past the image's edge).
    for (int idx = tid; idx < HEIGHT * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int c = idx - r * WIDTH;
        if (row0 + r < in_rows && col0 + c < in_cols) {
            const long long k = (long long)(row0 + r) * in_cols + (col0 + c);
            xs[r][c] = (double)x[k] - shift_x;
            ys[r][c] = (double)y[k] - shift_y;
        } else {
            xs[r][c] = 0.0;
            ys[r][c] = 0.0;
        }
    }
    __syncthreads();

    // 2. Vertical pass: five windowed moments per tile row and input column.
    for (int idx = tid; idx < TILE_ROWS * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int c = idx - r * WIDTH;
        double sx = 0.0, sy = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0;
        for (int k = 0; k < TAPS; ++k) {
            const double w = weights[k];
            const double a = xs[r + k][c];
            const double b = ys[r + k][c];
            sx += w * a;
            sy += w * b;
            sxx += w * a * a;
            syy += w * b * b;
            sxy += w * a * b;
        }
        vs[0][r][c] = sx;
        vs[1][r][c] = sy;
        vs[2][r][c] = sxx;
        vs[3][r][c] = syy;
        vs[4][r][c] = sxy;
    }
    __syncthreads();

    // 3. Horizontal pass and the maps (Wang et al. 2004, eqs. 6-13, C3 = C2 / 2).
    for (int idx = tid; idx < TILE_ROWS * TILE_COLS; idx += THREADS) {
        const int r = idx / TILE_COLS;
        const int c = idx - r * TILE_COLS;
        if (row0 + r >= out_rows || col0 + c >= out_cols) continue;
        double mx = 0.0, my = 0.0, mxx = 0.0, myy = 0.0, mxy = 0.0;
        for (int k = 0; k < TAPS; ++k) {
            const double w = weights[k];
            mx += w * vs[0][r][c + k];
            my += w * vs[1][r][c + k];
            mxx += w * vs[2][r][c + k];
            myy += w * vs[3][r][c + k];
            mxy += w * vs[4][r][c + k];
        }
        const double var_x = cov_norm * (mxx - mx * mx);
        const double var_y = cov_norm * (myy - my * my);
        const double cov_xy = cov_norm * (mxy - mx * my);
        mx += shift_x;
        my += shift_y;
        const double luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1);
        const double denominator = var_x + var_y + c2;
        const double cs_value = (2.0 * cov_xy + c2) / denominator;
        const long long o = (long long)(row0 + r) * out_cols + (col0 + c);
        ssim[o] = (float)(luminance * cs_value);
        cs[o] = (float)cs_value;
#if COMPONENTS
        // Rounding can leave a variance a hair below zero; the root needs >= 0.
        const double sd_x = sqrt(fmax(var_x, 0.0));
        const double sd_y = sqrt(fmax(var_y, 0.0));
        const double c3 = 0.5 * c2;
        lum[o] = (float)luminance;
        con[o] = (float)((2.0 * sd_x * sd_y + c2) / denominator);
        stru[o] = (float)((cov_xy + c3) / (sd_x * sd_y + c3));
#endif
    }
}
"""


def tile_rows(radius: int) -> int:
    """Output rows per thread block: the most (of 32, 16, 8, 4) whose tiles fit."""
    width = TILE_COLS + 2 * radius
    for rows in (32, 16, 8, 4):
        # float64: two input tiles and five vertically filtered moment tiles.
        if 8 * (2 * (rows + 2 * radius) * width + 5 * rows * width) <= _SHARED_BYTES:
            return rows
    raise ValueError(f"window radius {radius} is larger than the fused GPU kernel's {MAX_RADIUS}")


def kernel_source(dtype: str, radius: int, components: bool) -> str:
    """The CUDA C source for one input dtype, window radius and set of maps."""
    if dtype not in C_TYPES:
        raise ValueError(f"dtype must be one of {sorted(C_TYPES)} (got {dtype!r})")
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"window radius must be in [0, {MAX_RADIUS}] (got {radius})")
    replacements = {
        "__RADIUS__": str(radius),
        "__TILE_COLS__": str(TILE_COLS),
        "__TILE_ROWS__": str(tile_rows(radius)),
        "__THREADS__": str(THREADS),
        "__COMPONENTS__": "1" if components else "0",
        "__CTYPE__": C_TYPES[dtype],
        "__KERNEL_NAME__": KERNEL_NAME,
    }
    source = _SOURCE
    for key, value in replacements.items():
        source = source.replace(key, value)
    return source


@functools.cache
def _kernel(dtype: str, radius: int, components: bool) -> Any:
    import cupy

    return cupy.RawKernel(kernel_source(dtype, radius, components), KERNEL_NAME)


@functools.lru_cache(maxsize=16)
def _device_weights(weights: tuple[float, ...]) -> Any:
    import cupy

    return cupy.asarray(weights, dtype=cupy.float64)


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
            np.float64(c1),
            np.float64(c2),
            np.float64(cov_norm),
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
