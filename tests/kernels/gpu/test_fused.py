"""The fused CUDA kernel's source, checked without a GPU.

``pipeline.kernels.gpu.fused`` is plain CUDA C. Here it is (1) compiled by
``nvcc`` to PTX for a Hopper target where an ``nvcc`` is installed, and (2)
built as C++ with a small POSIX-threads harness that runs every thread block
of a launch on the CPU: one OS thread per CUDA thread, ``__syncthreads`` as a
barrier, ``__shared__`` arrays shared by the block's threads. The same
indexing, tiling, shift and barriers as on a device, checked against the
float64 reference. Nothing here measures speed or proves the device path;
tests/kernels/gpu/test_maps.py runs the kernel on a GPU (``gpu_maps`` with
``implementation="fused"``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.kernels import block_maps, window_weights
from pipeline.kernels.gpu.fused import (
    C_TYPES,
    KERNEL_NAME,
    THREADS,
    TILE_COLS,
    kernel_source,
    tile_rows,
)

MAP_NAMES = ("ssim", "cs", "luminance", "contrast", "structure")

# CUDA's built-ins mapped onto C++ and POSIX threads. One block runs at a time, so
# function-static arrays are exactly a block's shared memory.
_HARNESS = r"""
#include <pthread.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
struct dim3 { int x, y, z; };
static thread_local dim3 threadIdx;
static dim3 blockIdx, blockDim;
static pthread_barrier_t barrier;
#define __global__
#define __shared__ static
#define __syncthreads() pthread_barrier_wait(&barrier)
using std::sqrt;
using std::fmax;
#include "kernel.cu"

struct Args { const T *x, *y; int in_rows, in_cols; const double* w; double c1, c2, cov;
              float *maps[5]; int out_rows, out_cols; int tid; };

static void* run_thread(void* p) {
    Args* a = (Args*)p;
    threadIdx = dim3{a->tid % blockDim.x, a->tid / blockDim.x, 0};
    KERNEL(a->x, a->y, a->in_rows, a->in_cols, a->w, a->c1, a->c2, a->cov,
           a->maps[0], a->maps[1], a->maps[2], a->maps[3], a->maps[4],
           a->out_rows, a->out_cols);
    return nullptr;
}

static std::vector<char> slurp(const char* path) {
    FILE* f = fopen(path, "rb");
    std::vector<char> data;
    char buffer[65536];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, f)) > 0)
        data.insert(data.end(), buffer, buffer + n);
    fclose(f);
    return data;
}

int main(int argc, char** argv) {
    // argv: x.bin y.bin w.bin rows cols c1 c2 cov_norm grid_x grid_y block_x block_y out_prefix
    std::vector<char> xb = slurp(argv[1]), yb = slurp(argv[2]), wb = slurp(argv[3]);
    int rows = atoi(argv[4]), cols = atoi(argv[5]);
    double c1 = atof(argv[6]), c2 = atof(argv[7]), cov = atof(argv[8]);
    int gx = atoi(argv[9]), gy = atoi(argv[10]);
    blockDim = dim3{atoi(argv[11]), atoi(argv[12]), 1};
    int taps = (int)(wb.size() / sizeof(double));
    int out_rows = rows - taps + 1, out_cols = cols - taps + 1;
    std::vector<float> maps[5];
    for (auto& m : maps) m.assign((size_t)out_rows * out_cols, NAN);
    int nthreads = blockDim.x * blockDim.y;
    pthread_barrier_init(&barrier, nullptr, nthreads);
    std::vector<pthread_t> threads(nthreads);
    std::vector<Args> args(nthreads);
    for (int by = 0; by < gy; ++by) for (int bx = 0; bx < gx; ++bx) {
        blockIdx = dim3{bx, by, 0};
        for (int t = 0; t < nthreads; ++t) {
            args[t] = Args{(const T*)xb.data(), (const T*)yb.data(), rows, cols,
                           (const double*)wb.data(), c1, c2, cov,
                           {maps[0].data(), maps[1].data(), maps[2].data(), maps[3].data(),
                            maps[4].data()}, out_rows, out_cols, t};
            pthread_create(&threads[t], nullptr, run_thread, &args[t]);
        }
        for (auto& t : threads) pthread_join(t, nullptr);
    }
    for (int m = 0; m < 5; ++m) {
        char path[4096];
        snprintf(path, sizeof path, "%s%d.bin", argv[13], m);
        FILE* f = fopen(path, "wb");
        fwrite(maps[m].data(), sizeof(float), maps[m].size(), f);
        fclose(f);
    }
    return 0;
}
"""


def _pair(rng: np.random.Generator, kind: str, shape: tuple[int, int]):
    if kind == "uint16-far":
        x = (60000 + rng.integers(-50, 51, shape)).astype(np.uint16)
        x[: shape[0] // 3] = 100
        y = (x.astype(np.int64) + rng.integers(-20, 21, shape)).astype(np.uint16)
        return x, y, 65535.0
    if kind == "float64-offset":
        x = 1e4 + rng.random(shape)
        return x, x + rng.normal(0, 0.05, shape), 1.0
    if kind == "float32":
        x = rng.random(shape, dtype=np.float32)
        return x, np.clip(x + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1), 1.0
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    return x, np.clip(x + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8), 255.0


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize(
    ("shape", "window", "taps", "kind"),
    [
        ((45, 77), "gaussian", 11, "uint16-far"),  # ragged tiles in both directions
        ((70, 40), "uniform", 7, "float64-offset"),  # far from zero, several tile rows
        ((11, 11), "gaussian", 11, "uint8"),  # one output pixel
        ((40, 36), "gaussian", 31, "float32"),  # the widest window (4-row tiles)
    ],
)
def test_kernel_source_runs_on_cpu_threads(tmp_path: Path, rng, shape, window, taps, kind):
    x, y, data_range = _pair(rng, kind, shape)
    weights = window_weights(window, taps, 1.5)
    c1, c2, cov_norm = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2, 1.0
    radius = taps // 2
    (tmp_path / "kernel.cu").write_text(kernel_source(x.dtype.name, radius, True))
    (tmp_path / "harness.cpp").write_text(_HARNESS)
    binary = tmp_path / "harness"
    subprocess.run(
        ["g++", "-O1", "-std=c++17", "-pthread", f"-DKERNEL={KERNEL_NAME}", "harness.cpp",
         "-o", str(binary)],
        cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    x.tofile(tmp_path / "x.bin")
    y.tofile(tmp_path / "y.bin")
    weights.astype(np.float64).tofile(tmp_path / "w.bin")
    out_shape = (shape[0] - 2 * radius, shape[1] - 2 * radius)
    grid = (-(-out_shape[1] // TILE_COLS), -(-out_shape[0] // tile_rows(radius)))
    subprocess.run(
        [str(binary), "x.bin", "y.bin", "w.bin", *map(str, shape), repr(c1), repr(c2),
         repr(cov_norm), *map(str, grid), str(TILE_COLS), str(THREADS // TILE_COLS), "map"],
        cwd=tmp_path, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    reference = block_maps(
        x, y, window=window, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm,
        components=True, engine="reference",
    )  # fmt: skip
    for index, name in enumerate(MAP_NAMES):
        got = np.fromfile(tmp_path / f"map{index}.bin", dtype=np.float32).reshape(out_shape)
        assert np.isfinite(got).all(), f"{name}: pixels never written"
        # float32 maps of float64 moments: the CPU kernels' tolerance.
        assert np.abs(got - reference[name]).max() < 1e-5, name


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs CUDA's compiler (nvcc)")
def test_kernel_source_compiles_for_every_dtype() -> None:
    # One translation unit per variant; ptxas also checks the shared-memory budget.
    for dtype in C_TYPES:
        for radius, components in ((5, True), (3, False), (15, True)):
            result = subprocess.run(
                ["nvcc", "-arch=sm_90", "-cubin", "-x", "cu", "-", "-o", "/dev/null"],
                input=kernel_source(dtype, radius, components),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, (dtype, radius, result.stderr[-2000:])


def test_kernel_source_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        kernel_source("float16", 5, True)
    with pytest.raises(ValueError, match=r"window radius must be in \[0, 15\]"):
        kernel_source("uint8", 16, True)
    assert tile_rows(5) == 16 and tile_rows(15) == 4
