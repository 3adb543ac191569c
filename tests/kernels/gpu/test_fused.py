"""The fused CUDA kernel's source, checked without a GPU.

``pipeline.kernels.gpu.fused`` is plain CUDA C. Here it is (1) compiled by
``nvcc`` for a Hopper target where an ``nvcc`` is installed, and (2) run on the
CPU by the POSIX-threads harness of ``harness.py`` (every thread block of a
launch, one OS thread per CUDA thread), in float32 as on a device, against the
float64 reference. The adversarial pairs are the ones where a plain float32
``E[x^2] - mu^2`` fails: flat regions beside strong edges, uint16 near 65535
with little noise, float data at an offset of 1e4 with small variation.
Nothing here measures speed or proves the device path;
tests/kernels/gpu/test_maps.py runs the kernel on a GPU.
"""

from __future__ import annotations

import ctypes
import json

import background_runs
import numpy as np
import pytest
from kernels.gpu.harness import HAVE_GXX, HAVE_NVCC, build, nvcc_cases_command, pointer

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
TOLERANCE = 1e-5  # every pixel of every map, against the float64 reference

_ENTRY = f"""
extern "C" void run(unsigned gx, unsigned gy, const void* x, const void* y, int rows, int cols,
                    const void* w, float c1, float c2, float cov, void* m0, void* m1, void* m2,
                    void* m3, void* m4, int out_rows, int out_cols) {{
    launch(dim3{{gx, gy, 1}}, dim3{{{TILE_COLS}, {THREADS // TILE_COLS}, 1}}, [&] {{
        {KERNEL_NAME}((const T*)x, (const T*)y, rows, cols, (const F*)w, c1, c2, cov,
                      (float*)m0, (float*)m1, (float*)m2, (float*)m3, (float*)m4,
                      out_rows, out_cols);
    }});
}}
"""


def run_on_cpu(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c1, c2, cov_norm, components):
    """The kernel's maps for one pair, every block run on CPU threads."""
    radius = len(weights) // 2
    library = build(kernel_source(x.dtype.name, radius, components), _ENTRY)
    out_shape = (x.shape[0] - 2 * radius, x.shape[1] - 2 * radius)
    maps = [np.full(out_shape, np.nan, dtype=np.float32) for _ in MAP_NAMES]
    taps = np.ascontiguousarray(weights, dtype=np.float32)
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    grid = (-(-out_shape[1] // TILE_COLS), -(-out_shape[0] // tile_rows(radius)))
    library.run(
        ctypes.c_uint(grid[0]), ctypes.c_uint(grid[1]), pointer(x), pointer(y),
        ctypes.c_int(x.shape[0]), ctypes.c_int(x.shape[1]), pointer(taps),
        ctypes.c_float(c1), ctypes.c_float(c2), ctypes.c_float(cov_norm),
        *(pointer(m) for m in maps), ctypes.c_int(out_shape[0]), ctypes.c_int(out_shape[1]),
    )  # fmt: skip
    names = MAP_NAMES if components else MAP_NAMES[:2]
    return {name: maps[i] for i, name in enumerate(names)}


def adversarial_pair(rng: np.random.Generator, kind: str, shape: tuple[int, int]):
    """``(x, y, data_range)`` for one named case."""
    rows, cols = shape
    if kind == "uint16-far":  # an edge from 100 to ~60000, noise of +-50
        x = (60000 + rng.integers(-50, 51, shape)).astype(np.uint16)
        x[: rows // 3] = 100
        y = (x.astype(np.int64) + rng.integers(-20, 21, shape)).astype(np.uint16)
        return x, y, 65535.0
    if kind == "uint16-top":  # near 65535 with noise of a few counts, a narrow data range
        x = (65535 - rng.integers(0, 4, shape)).astype(np.uint16)
        y = (65535 - rng.integers(0, 4, shape)).astype(np.uint16)
        x[:, : cols // 2] = 65535  # flat beside noise
        return x, y, 255.0
    if kind == "flat-edges":  # flat 255 beside flat 0, a few pixels changed in y
        x = np.zeros(shape, dtype=np.uint8)
        x[:, cols // 2 :] = 255
        x[rows // 2 :, : cols // 3] = 254
        y = x.copy()
        y[rng.random(shape) < 0.02] ^= 1
        return x, y, 255.0
    if kind == "float64-offset":  # 1e4 + [0, 1) with noise of 0.05, data range 1
        x = 1e4 + rng.random(shape)
        return x, x + rng.normal(0, 0.05, shape), 1.0
    if kind == "float64-offset-flat":  # flat 1e4 beside 1e4 + 1, tiny noise in y
        x = np.full(shape, 1e4)
        x[:, cols // 2 :] += 1.0
        return x, x + rng.normal(0, 1e-3, shape) * (rng.random(shape) < 0.1), 1.0
    if kind == "float32-offset":  # float32 1e4 + [0, 1): the data's own ulp is 1e-3
        x = (1e4 + rng.random(shape)).astype(np.float32)
        return x, (x + rng.normal(0, 0.05, shape)).astype(np.float32), 1.0
    if kind == "float32":
        x = rng.random(shape, dtype=np.float32)
        return x, np.clip(x + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1), 1.0
    if kind == "int32-large":  # 32-bit integers float32 cannot hold, small differences
        x = (2_000_000_000 + rng.integers(0, 1000, shape)).astype(np.int32)
        return x, (x + rng.integers(-30, 31, shape)).astype(np.int32), 4000.0
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    return x, np.clip(x + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8), 255.0


def shifted_reference(x, y, *, weights, c1, c2, cov_norm) -> dict[str, np.ndarray]:
    """The float64 reference with the (co)variances taken about the first pixel of x.

    cs, contrast and structure do not change when both images move by the same
    constant, and ``x - s`` is exact in float64 for every case here, so this is
    the reference without its own cancellation (the plain float64 reference is
    1e-4 off for flat 1e4 beside 1e4 + 1 and 2.5e-2 for int32 near 2e9). The
    luminance, which needs the true means, is the plain reference's.
    """
    s = float(x.flat[0])
    plain = block_maps(
        x, y, window="gaussian", weights=weights, c1=c1, c2=c2, cov_norm=cov_norm,
        components=True, engine="reference",
    )  # fmt: skip
    shifted = block_maps(
        x.astype(np.float64) - s, y.astype(np.float64) - s, window="gaussian", weights=weights,
        c1=c1, c2=c2, cov_norm=cov_norm, components=True, engine="reference",
    )  # fmt: skip
    truth = {name: shifted[name] for name in ("cs", "contrast", "structure")}
    truth["luminance"] = plain["luminance"]
    truth["ssim"] = plain["luminance"] * shifted["cs"]
    return truth


# Where the plain float64 reference itself is further than the tolerance from the truth.
REFERENCE_CANCELS = ("float64-offset-flat", "int32-large")

CASES = [
    ((45, 77), "gaussian", 11, "uint16-far"),  # ragged tiles in both directions
    ((70, 40), "uniform", 7, "float64-offset"),  # far from zero, several tile rows
    ((11, 11), "gaussian", 11, "uint8"),  # one output pixel
    ((40, 36), "gaussian", 31, "float32"),  # the widest window (16-row tiles)
    ((52, 70), "gaussian", 11, "uint16-top"),
    ((52, 70), "gaussian", 11, "flat-edges"),
    ((52, 70), "uniform", 7, "flat-edges"),
    ((52, 70), "gaussian", 11, "float64-offset-flat"),
    ((52, 70), "gaussian", 7, "float32-offset"),
    ((45, 50), "gaussian", 11, "int32-large"),
]


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize(("shape", "window", "taps", "kind"), CASES)
def test_kernel_source_runs_on_cpu_threads(rng, shape, window, taps, kind) -> None:
    x, y, data_range = adversarial_pair(rng, kind, shape)
    weights = window_weights(window, taps, 1.5)
    c1, c2, cov_norm = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2, 1.0
    got = run_on_cpu(x, y, weights, c1, c2, cov_norm, True)
    reference = block_maps(
        x, y, window=window, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm,
        components=True, engine="reference",
    )  # fmt: skip
    truth = shifted_reference(x, y, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm)
    for name in MAP_NAMES:
        assert np.isfinite(got[name]).all(), f"{name}: pixels never written"
        # Measured: at most 3.6e-7 from the shifted reference over these cases.
        error = np.abs(got[name] - truth[name]).max()
        assert error < TOLERANCE, (name, error)
        if kind not in REFERENCE_CANCELS:
            error = np.abs(got[name] - reference[name]).max()
            assert error < TOLERANCE, (name, error)


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
def test_identical_images_give_one_and_the_pair_is_symmetric(rng) -> None:
    x, y, data_range = adversarial_pair(rng, "uint16-far", (40, 45))
    weights = window_weights("gaussian", 11, 1.5)
    constants = ((0.01 * data_range) ** 2, (0.03 * data_range) ** 2, 1.0)
    same = run_on_cpu(x, x, weights, *constants, False)
    assert (same["ssim"] == 1).all() and (same["cs"] == 1).all()
    forward = run_on_cpu(x, y, weights, *constants, True)
    backward = run_on_cpu(y, x, weights, *constants, True)
    for name in MAP_NAMES:
        np.testing.assert_array_equal(forward[name], backward[name])


# One translation unit per variant, compiled in a process queued when this test is
# collected (tests/background_runs.py), as many at once as there are cores.
NVCC_CASES = [
    (dtype, radius, components)
    for dtype in C_TYPES
    for radius, components in ((5, True), (3, False), (15, True))
]


@background_runs.starter("kernels/gpu/test_fused.py::test_kernel_source_compiles_for_every_dtype")
def _start_nvcc() -> None:
    if HAVE_NVCC:
        background_runs.start(
            "nvcc fused", **nvcc_cases_command("pipeline.kernels.gpu.fused", NVCC_CASES)
        )


@pytest.mark.skipif(not HAVE_NVCC, reason="needs CUDA's compiler (nvcc)")
def test_kernel_source_compiles_for_every_dtype() -> None:
    # One translation unit per variant; ptxas also checks the shared-memory budget.
    arguments = nvcc_cases_command("pipeline.kernels.gpu.fused", NVCC_CASES)
    finished = background_runs.result("nvcc fused", **arguments, timeout=600)
    assert finished.returncode == 0, finished.stderr[-4000:]
    results = json.loads(finished.stdout)
    for case, (code, stderr) in zip(NVCC_CASES, results, strict=True):
        assert code == 0, (case, stderr)


def test_kernel_source_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="dtype must be one of"):
        kernel_source("float16", 5, True)
    with pytest.raises(ValueError, match=r"window radius must be in \[0, 15\]"):
        kernel_source("uint8", 16, True)
    # float32 tiles: twice the rows of the float64 kernel's.
    assert tile_rows(5) == 32 and tile_rows(15) == 16
