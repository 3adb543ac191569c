"""The SSIM loss kernels (forward, per-plane reduction, backward), checked without a GPU.

The CUDA C of ``pipeline.kernels.gpu.loss`` is compiled by ``nvcc`` where one is
installed and run on the CPU by the POSIX-threads harness of ``harness.py``
(every thread block of every launch, in the kernels' own float32 or float64),
against the float64 analytic gradient ``pipeline.kernels.gradient.ssim_value_and_grad``
per plane and, for ``cs_only``, against PyTorch autograd of an independent
float64 conv2d SSIM. The ``gpu`` tests at the end call the CuPy API on a device.
"""

from __future__ import annotations

import ctypes
import json

import background_runs
import numpy as np
import pytest
from kernels.gpu.harness import HAVE_GXX, HAVE_NVCC, build, nvcc_cases_command, pointer

from pipeline.kernels import window_weights
from pipeline.kernels.gpu.loss import (
    BACKWARD,
    FORWARD,
    LOSS_DTYPES,
    REDUCE,
    THREADS,
    TILE_COLS,
    kernel_source,
    tile_rows,
)
from pipeline.kernels.gradient import ssim_value_and_grad

_ENTRY = f"""
extern "C" void forward(unsigned gx, unsigned gy, unsigned planes, const void* x, const void* y,
                        int rows, int cols, const void* w, F c1, F c2, F cov, F inv_m,
                        void* saved, void* partials, int out_rows, int out_cols) {{
    launch(dim3{{gx, gy, planes}}, dim3{{{TILE_COLS}, {THREADS // TILE_COLS}, 1}}, [&] {{
        {FORWARD}((const T*)x, (const T*)y, rows, cols, (const F*)w, c1, c2, cov, inv_m,
                  (F*)saved, (double*)partials, out_rows, out_cols);
    }});
}}
extern "C" void reduce(unsigned planes, const void* partials, int blocks, double inv_m,
                       void* values) {{
    launch(dim3{{planes, 1, 1}}, dim3{{{THREADS}, 1, 1}}, [&] {{
        {REDUCE}((const double*)partials, blocks, inv_m, (double*)values);
    }});
}}
extern "C" void backward(unsigned gx, unsigned gy, unsigned planes, const void* x,
                         const void* y, const void* saved, const void* grad_values,
                         const void* w, int rows, int cols, int out_rows, int out_cols,
                         void* grad) {{
    launch(dim3{{gx, gy, planes}}, dim3{{{TILE_COLS}, {THREADS // TILE_COLS}, 1}}, [&] {{
        {BACKWARD}((const T*)x, (const T*)y, (const F*)saved, (const F*)grad_values,
                   (const F*)w, rows, cols, out_rows, out_cols, (T*)grad);
    }});
}}
"""


def run_on_cpu(x, y, grad_values, weights, c1, c2, cov_norm, cs_only):
    """``(values, saved, grad)`` of the three kernels, every block run on CPU threads."""
    dtype = x.dtype.name
    real = ctypes.c_float if dtype == "float32" else ctypes.c_double
    taps = len(weights)
    library = build(kernel_source(dtype, taps, cs_only), _ENTRY)
    planes, rows, cols = x.shape
    out_rows, out_cols = rows - taps + 1, cols - taps + 1
    per_tile = tile_rows(taps, dtype)
    gx, gy = -(-out_cols // TILE_COLS), -(-out_rows // per_tile)
    w = np.ascontiguousarray(weights, dtype=x.dtype)
    saved = np.full((planes, 3, out_rows, out_cols), np.nan, dtype=x.dtype)
    partials = np.full((planes, gx * gy), np.nan)
    values = np.full(planes, np.nan)
    count = out_rows * out_cols
    library.forward(
        ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(planes), pointer(x), pointer(y),
        ctypes.c_int(rows), ctypes.c_int(cols), pointer(w), real(c1), real(c2), real(cov_norm),
        real(1.0 / count), pointer(saved), pointer(partials), ctypes.c_int(out_rows),
        ctypes.c_int(out_cols),
    )  # fmt: skip
    library.reduce(
        ctypes.c_uint(planes), pointer(partials), ctypes.c_int(gx * gy),
        ctypes.c_double(1.0 / count), pointer(values),
    )  # fmt: skip
    grad = np.full_like(y, np.nan)
    scale = np.ascontiguousarray(grad_values, dtype=x.dtype)
    library.backward(
        ctypes.c_uint(-(-cols // TILE_COLS)), ctypes.c_uint(-(-rows // per_tile)),
        ctypes.c_uint(planes), pointer(x), pointer(y), pointer(saved), pointer(scale),
        pointer(w), ctypes.c_int(rows), ctypes.c_int(cols), ctypes.c_int(out_rows),
        ctypes.c_int(out_cols), pointer(grad),
    )  # fmt: skip
    return values, saved, grad


def torch_cs_value_and_grad(x, y, weights, c1, c2, cov_norm):
    """Mean valid cs and its gradient in y by PyTorch autograd (float64, conv2d)."""
    torch = pytest.importorskip("torch")
    kernel = torch.tensor(np.outer(weights, weights), dtype=torch.float64)[None, None]
    tx = torch.tensor(x, dtype=torch.float64)[None, None]
    ty = torch.tensor(y, dtype=torch.float64, requires_grad=True)

    def local(image):
        return torch.nn.functional.conv2d(image, kernel)

    t = ty[None, None]
    mu_x, mu_y = local(tx), local(t)
    var_x = cov_norm * (local(tx * tx) - mu_x**2)
    var_y = cov_norm * (local(t * t) - mu_y**2)
    cov = cov_norm * (local(tx * t) - mu_x * mu_y)
    value = ((2 * cov + c2) / (var_x + var_y + c2)).mean()
    value.backward()
    return float(value.detach()), ty.grad.numpy()


def loss_case(rng: np.random.Generator, kind: str, dtype: str, shape: tuple[int, int, int]):
    """``(x, y, data_range)``: a batch of planes for one named case."""
    _, rows, cols = shape
    if kind == "unit":  # [0, 1] with noise
        x = rng.random(shape)
        y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
        data_range = 1.0
    elif kind == "flat-edges":  # flat 0 / 255 / 254 areas, a few pixels changed in y
        x = np.zeros(shape)
        x[:, :, cols // 2 :] = 255
        x[:, rows // 2 :, : cols // 3] = 254
        y = x + rng.integers(-3, 4, shape) * (rng.random(shape) < 0.05)
        data_range = 255.0
    elif kind == "offset":  # 1e4 + [0, 1) with noise of 0.05, data range 1
        x = 1e4 + rng.random(shape)
        y = x + rng.normal(0, 0.05, shape)
        data_range = 1.0
    elif kind == "offset-flat":  # the flat-edges pair / 255, plus 1e4: data range 1
        x, y, _ = loss_case(rng, "flat-edges", "float64", shape)
        x, y, data_range = 1e4 + x / 255, 1e4 + y / 255, 1.0
    else:  # "uint16-top": integers near 65535 with noise of a few counts
        x = 65535.0 - rng.integers(0, 8, shape)
        y = 65535.0 - rng.integers(0, 8, shape)
        data_range = 65535.0
    return x.astype(dtype), y.astype(dtype), data_range


CASES = [
    ("unit", "gaussian", 11, 1.0),
    ("flat-edges", "gaussian", 11, 1.0),
    ("offset", "gaussian", 7, 1.0),
    ("uint16-top", "uniform", 7, 49 / 48),
    ("unit", "gaussian", 31, 1.0),
]


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize("dtype", LOSS_DTYPES)
@pytest.mark.parametrize(("kind", "window", "taps", "cov_norm"), CASES)
def test_loss_kernels_match_the_analytic_gradient(rng, dtype, kind, window, taps, cov_norm):
    shape = (2, 44, 70) if taps < 31 else (2, 40, 45)
    x, y, data_range = loss_case(rng, kind, dtype, shape)
    weights = window_weights(window, taps, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    grad_values = np.array([1.0, -0.5])
    values, saved, grad = run_on_cpu(x, y, grad_values, weights, c1, c2, cov_norm, False)
    assert np.isfinite(saved).all() and np.isfinite(grad).all()
    assert grad.dtype == y.dtype
    value_tolerance = 1e-5 if dtype == "float32" else 1e-6
    for p in range(shape[0]):
        value, expected = ssim_value_and_grad(
            x[p].astype(np.float64), y[p].astype(np.float64), weights=weights, c1=c1, c2=c2,
            cov_norm=cov_norm,
        )  # fmt: skip
        expected = grad_values[p] * expected
        assert abs(values[p] - value) <= value_tolerance * abs(value), (p, values[p], value)
        error = np.abs(grad[p] - expected).max() / np.abs(expected).max()
        assert error < 1e-5, (p, error)


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize("dtype", LOSS_DTYPES)
@pytest.mark.parametrize("kind", ["unit", "flat-edges", "offset"])
def test_cs_only_matches_torch_autograd(rng, dtype, kind) -> None:
    x, y, data_range = loss_case(rng, kind, dtype, (2, 36, 50))
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    grad_values = np.array([2.0, 1.0])
    values, _, grad = run_on_cpu(x, y, grad_values, weights, c1, c2, 1.0, True)
    value_tolerance = 1e-5 if dtype == "float32" else 1e-6
    for p in range(2):
        value, expected = torch_cs_value_and_grad(
            x[p].astype(np.float64), y[p].astype(np.float64), weights, c1, c2, 1.0
        )
        expected = grad_values[p] * expected
        assert abs(values[p] - value) <= value_tolerance * abs(value), (p, values[p], value)
        error = np.abs(grad[p] - expected).max() / np.abs(expected).max()
        assert error < 1e-5, (p, error)


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize("dtype", LOSS_DTYPES)
@pytest.mark.parametrize("cs_only", [False, True])
def test_loss_far_from_zero_matches_the_shifted_cs(rng, dtype, cs_only) -> None:
    # Flat areas at 1e4 and 1e4 + 1 beside edges, sparse changes of 1/255 to 3/255, data
    # range 1. The float64 references cancel here (ssim_value_and_grad is 1.2e-4 of max
    # |grad| off, a long double one 8e-6), so the truth is autograd of cs on the pair
    # shifted by 1e4 (exact in float64): cs does not change under a common shift, and
    # at means near 1e4 the luminance is 1 within 1e-12, so SSIM and its gradient are
    # cs's to far below the tolerance.
    x, y, data_range = loss_case(rng, "offset-flat", dtype, (2, 44, 70))
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    grad_values = np.array([1.0, -0.5])
    values, _, grad = run_on_cpu(x, y, grad_values, weights, c1, c2, 1.0, cs_only)
    for p in range(2):
        value, expected = torch_cs_value_and_grad(
            x[p].astype(np.float64) - 1e4, y[p].astype(np.float64) - 1e4, weights, c1, c2, 1.0
        )
        expected = grad_values[p] * expected
        # Measured: 3.5e-8 (value) and 1.9e-7 (gradient) in float32, 1e-12 in float64.
        assert abs(values[p] - value) <= 1e-6 * abs(value), (p, values[p], value)
        assert np.abs(grad[p] - expected).max() < 1e-5 * np.abs(expected).max()


@pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")
@pytest.mark.parametrize("dtype", LOSS_DTYPES)
def test_identical_planes_give_one_and_no_gradient(rng, dtype) -> None:
    x, _, data_range = loss_case(rng, "flat-edges", dtype, (2, 30, 40))
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    for cs_only in (False, True):
        values, _, grad = run_on_cpu(x, x, np.ones(2), weights, c1, c2, 1.0, cs_only)
        np.testing.assert_allclose(values, 1.0, rtol=1e-12)
        # G_c = -(mu_x - x_c) G_xy + (mu_y - y_c) G_xy and u G_xy + 2 v (-G_xy / 2) vanish.
        assert (grad == 0).all()


# One translation unit per variant, compiled in a process queued when this test is
# collected (tests/background_runs.py), as many at once as there are cores.
NVCC_CASES = [
    (dtype, taps, cs_only)
    for dtype in LOSS_DTYPES
    for taps, cs_only in ((11, False), (7, True), (31, False), (8, True))
]


@background_runs.starter("kernels/gpu/test_loss.py::test_loss_source_compiles_for_every_variant")
def _start_nvcc() -> None:
    if HAVE_NVCC:
        background_runs.start(
            "nvcc loss", **nvcc_cases_command("pipeline.kernels.gpu.loss", NVCC_CASES)
        )


@pytest.mark.skipif(not HAVE_NVCC, reason="needs CUDA's compiler (nvcc)")
def test_loss_source_compiles_for_every_variant() -> None:
    arguments = nvcc_cases_command("pipeline.kernels.gpu.loss", NVCC_CASES)
    finished = background_runs.result("nvcc loss", **arguments, timeout=600)
    assert finished.returncode == 0, finished.stderr[-4000:]
    results = json.loads(finished.stdout)
    for case, (code, stderr) in zip(NVCC_CASES, results, strict=True):
        assert code == 0, (case, stderr)


def test_loss_source_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        kernel_source("float16", 11, False)
    with pytest.raises(ValueError, match="weights must have 1 to 31 taps"):
        kernel_source("float32", 33, False)
    assert tile_rows(11, "float32") == 32 and tile_rows(11, "float64") == 16


# ---------------------------------------------------------------------------
# On a device


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", LOSS_DTYPES)
@pytest.mark.parametrize("cs_only", [False, True])
def test_device_loss_matches_the_analytic_gradient(rng, dtype, cs_only) -> None:
    import cupy

    from pipeline.kernels.gpu.loss import ssim_backward, ssim_forward

    x, y, data_range = loss_case(rng, "flat-edges", dtype, (3, 67, 90))
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    grad_values = np.array([1.0, 0.5, -2.0])
    values, saved = ssim_forward(
        cupy.asarray(x), cupy.asarray(y), weights=weights, c1=c1, c2=c2, cov_norm=1.0,
        cs_only=cs_only,
    )  # fmt: skip
    grad = ssim_backward(
        cupy.asarray(x), cupy.asarray(y), saved, cupy.asarray(grad_values), weights=weights
    )
    assert values.dtype == np.float64 and grad.dtype == y.dtype
    host_values, host_grad = cupy.asnumpy(values), cupy.asnumpy(grad)
    for p in range(3):
        if cs_only:
            value, expected = torch_cs_value_and_grad(
                x[p].astype(np.float64), y[p].astype(np.float64), weights, c1, c2, 1.0
            )
        else:
            value, expected = ssim_value_and_grad(
                x[p].astype(np.float64), y[p].astype(np.float64), weights=weights, c1=c1, c2=c2
            )
        expected = grad_values[p] * expected
        assert abs(host_values[p] - value) <= 1e-5 * abs(value)
        assert np.abs(host_grad[p] - expected).max() < 1e-5 * np.abs(expected).max()
    if HAVE_GXX:  # FMA contraction aside, the device runs the harness's instructions
        cpu_values, _, _ = run_on_cpu(x, y, grad_values, weights, c1, c2, 1.0, cs_only)
        assert np.abs(host_values - cpu_values).max() < 1e-6


@pytest.mark.gpu
def test_device_loss_refuses_bad_planes() -> None:
    import cupy

    from pipeline.kernels.gpu.loss import ssim_backward, ssim_forward

    weights = window_weights("gaussian", 11, 1.5)
    x = cupy.zeros((2, 20, 20), dtype=cupy.float32)
    with pytest.raises(TypeError, match="must both be float32 or both float64"):
        ssim_forward(x, x.astype(cupy.float64), weights=weights, c1=1, c2=1, cov_norm=1,
                     cs_only=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"\(planes, rows, cols\)"):
        ssim_forward(x[0], x[0], weights=weights, c1=1, c2=1, cov_norm=1, cs_only=False)
    with pytest.raises(ValueError, match="must hold 1 to 65535 planes"):
        ssim_forward(x[:0], x[:0], weights=weights, c1=1, c2=1, cov_norm=1, cs_only=False)
    with pytest.raises(ValueError, match="at most min"):
        narrow = cupy.zeros((2, 8, 20), dtype=cupy.float32)
        ssim_forward(narrow, narrow, weights=weights, c1=1, c2=1, cov_norm=1, cs_only=False)
    _, saved = ssim_forward(x, x, weights=weights, c1=1, c2=1, cov_norm=1, cs_only=False)
    with pytest.raises(ValueError, match="grad_values must have shape"):
        ssim_backward(x, x, saved, cupy.ones(3), weights=weights)
