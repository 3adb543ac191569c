"""The CuPy wrappers of the CUDA kernels, run end to end without a GPU.

``harness.FakeCupy`` stands in for the few CuPy calls that
``pipeline.kernels.gpu.fused.fused_gpu_maps`` and ``pipeline.kernels.gpu.loss``
make: its kernels run on the CPU harness and refuse any launch argument whose
type does not match the kernel's C parameter (on a device such a mismatch
reads garbage instead of failing). So the Python side (validation, shapes,
grids, argument order, scalar types) is checked here, against the same float64
references as the kernel sources; tests/kernels/gpu/test_maps.py and the
``gpu`` tests of test_loss.py repeat it with the real CuPy on a device.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from kernels.gpu.harness import HAVE_GXX, FakeCupy
from kernels.gpu.test_loss import loss_case

from pipeline.kernels import block_maps, window_weights
from pipeline.kernels.gpu import fused, loss
from pipeline.kernels.gradient import ssim_value_and_grad

pytestmark = pytest.mark.skipif(not HAVE_GXX, reason="needs a C++ compiler (g++)")


@pytest.fixture
def fake_cupy(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "cupy", FakeCupy)
    caches = (fused._kernel, fused._device_weights, loss._module, loss._device_weights)
    for cache in caches:
        cache.cache_clear()
    yield FakeCupy
    for cache in caches:  # never leave a stand-in where a real CuPy might look
        cache.cache_clear()


def test_fused_gpu_maps_through_its_wrapper(fake_cupy, rng) -> None:
    x = (60000 + rng.integers(-50, 51, (50, 75))).astype(np.uint16)
    x[:15] = 100
    y = (x.astype(np.int64) + rng.integers(-20, 21, x.shape)).astype(np.uint16)
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * 65535) ** 2, (0.03 * 65535) ** 2
    maps = fused.fused_gpu_maps(x, y, weights=weights, c1=c1, c2=c2, cov_norm=1.0)
    reference = block_maps(
        x, y, window="gaussian", weights=weights, c1=c1, c2=c2, cov_norm=1.0,
        components=True, engine="reference",
    )  # fmt: skip
    for name, got in maps.items():
        assert got.dtype == np.float32 and got.shape == (40, 65)
        assert np.abs(got - reference[name]).max() < 1e-5, name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_forward_and_backward_through_their_wrappers(fake_cupy, rng, dtype) -> None:
    x, y, data_range = loss_case(rng, "flat-edges", dtype, (3, 40, 50))
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values, saved = loss.ssim_forward(
        x, y, weights=weights, c1=c1, c2=c2, cov_norm=1.0, cs_only=False
    )
    assert values.dtype == np.float64 and values.shape == (3,)
    assert saved.shape == (3, 3, 30, 40) and saved.dtype == x.dtype
    grad_values = np.array([1.0, -1.0, 0.25])
    grad = loss.ssim_backward(x, y, saved, grad_values, weights=weights)
    assert grad.dtype == y.dtype and grad.shape == y.shape
    for p in range(3):
        value, expected = ssim_value_and_grad(
            x[p].astype(np.float64), y[p].astype(np.float64), weights=weights, c1=c1, c2=c2
        )
        expected = grad_values[p] * expected
        assert abs(values[p] - value) <= 1e-5 * abs(value)
        assert np.abs(grad[p] - expected).max() < 1e-5 * np.abs(expected).max()


def test_loss_wrappers_refuse_what_the_kernels_cannot_take(fake_cupy) -> None:
    weights = window_weights("gaussian", 11, 1.5)
    x = np.zeros((2, 20, 20), dtype=np.float32)
    forward = {"weights": weights, "c1": 1.0, "c2": 1.0, "cov_norm": 1.0, "cs_only": False}
    with pytest.raises(TypeError, match="must both be float32 or both float64"):
        loss.ssim_forward(x, x.astype(np.float64), **forward)
    with pytest.raises(TypeError, match="must both be float32 or both float64"):
        loss.ssim_forward(x.astype(np.float16), x.astype(np.float16), **forward)
    with pytest.raises(ValueError, match=r"\(planes, rows, cols\) arrays of one shape"):
        loss.ssim_forward(x[0], x[0], **forward)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        loss.ssim_forward(x[:, ::2], x[:, ::2], **forward)
    with pytest.raises(ValueError, match="must hold 1 to 65535 planes"):
        loss.ssim_forward(x[:0], x[:0], **forward)
    with pytest.raises(ValueError, match="at most min"):
        narrow = np.zeros((2, 8, 20), dtype=np.float32)
        loss.ssim_forward(narrow, narrow, **forward)
    with pytest.raises(ValueError, match="1-D window of 1 to 31 taps"):
        loss.ssim_forward(x, x, **{**forward, "weights": np.ones(33) / 33})
    _, saved = loss.ssim_forward(x, x, **forward)
    with pytest.raises(ValueError, match=r"grad_values must have shape \(2,\)"):
        loss.ssim_backward(x, x, saved, np.ones(3), weights=weights)
    with pytest.raises(ValueError, match="saved must be ssim_forward's"):
        loss.ssim_backward(x, x, saved[:, :2], np.ones(2), weights=weights)


def test_the_stand_in_refuses_a_mistyped_launch(fake_cupy) -> None:
    # What the stand-in guards: a Python float where the kernel reads a float32.
    kernel = FakeCupy.RawModule(code=loss.kernel_source("float32", 3, False)).get_function(
        loss.REDUCE
    )
    with pytest.raises(TypeError, match="inv_m is <class 'float'>, kernel reads double"):
        kernel((1,), (256,), (np.zeros(1), np.int32(1), 1.0, np.zeros(1)))
