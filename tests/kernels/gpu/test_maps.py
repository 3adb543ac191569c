"""The CuPy kernel against the CPU paths; runs only where a CUDA device answers.

Every test carries the ``gpu`` marker: ``conftest.py`` probes the device once
(``pipeline.kernels.backend.gpu_available``) and skips them otherwise. An importable
CuPy is not a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import kernel_params
from skimage import data

import pipeline as sp
from pipeline.kernels import MAP_NAMES, block_maps
from pipeline.kernels.gpu.maps import gpu_maps

pytestmark = pytest.mark.gpu

TOLERANCE = 1e-5


def _pair(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> tuple:
    if kind == "uint8":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        return x, np.clip(x + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8), 255.0
    if kind == "uint16-far":
        x = (60000 + rng.integers(-50, 51, shape)).astype(np.uint16)
        x[: shape[0] // 4] = 100
        y = (x.astype(np.int64) + rng.integers(-20, 21, shape)).astype(np.uint16)
        return x, y, 65535.0
    x = rng.random(shape, dtype=np.float32)
    return x, np.clip(x + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1), 1.0


@pytest.mark.parametrize("kind", ["uint8", "uint16-far", "float32"])
@pytest.mark.parametrize(
    ("window", "win_size", "covariance"),
    [("gaussian", 11, "population"), ("uniform", 7, "sample"), ("gaussian", 7, "sample")],
)
def test_gpu_matches_cpu_paths(rng, kind, window, win_size, covariance) -> None:
    import cupy

    x, y, data_range = _pair(rng, kind, (131, 97))
    params = kernel_params(window, win_size, covariance, data_range)
    on_device = block_maps(cupy.asarray(x), cupy.asarray(y), engine="gpu", **params)
    reference = block_maps(x, y, engine="reference", **params)
    fused = block_maps(x, y, engine="fused", **params)
    assert set(on_device) == set(MAP_NAMES)
    for name in MAP_NAMES:
        device_map = cupy.asnumpy(on_device[name]).astype(np.float64)
        assert device_map.shape == reference[name].shape
        assert np.abs(device_map - reference[name]).max() < TOLERANCE, name
        assert np.abs(device_map - fused[name]).max() < TOLERANCE, name


@pytest.mark.parametrize("implementation", ["fused", "cupyx"])
@pytest.mark.parametrize("kind", ["uint8", "uint16-far", "float32"])
@pytest.mark.parametrize(
    ("window", "win_size"), [("gaussian", 11), ("uniform", 7), ("gaussian", 31)]
)
def test_each_gpu_implementation_matches_reference(rng, implementation, kind, window, win_size):
    import cupy

    # 300 x 200: several thread-block tiles in each direction, ragged at both edges.
    x, y, data_range = _pair(rng, kind, (300, 200))
    params = kernel_params(window, win_size, "sample", data_range)
    del params["window"]
    on_device = gpu_maps(
        cupy.asarray(x),
        cupy.asarray(y),
        uniform=window == "uniform",
        implementation=implementation,
        **params,
    )
    reference = block_maps(x, y, window=window, engine="reference", **params)
    for name in MAP_NAMES:
        assert np.abs(cupy.asnumpy(on_device[name]) - reference[name]).max() < TOLERANCE, name


def test_fused_gpu_kernel_refuses_too_wide_a_window(rng) -> None:
    import cupy

    x = cupy.asarray(rng.random((64, 64)))
    params = kernel_params("gaussian", 33, "population", 1.0)
    del params["window"]
    with pytest.raises(ValueError, match="at most 31 taps"):
        gpu_maps(x, x, uniform=False, implementation="fused", **params)
    # auto takes the cupyx path for it
    assert gpu_maps(x, x, uniform=False, **params)["ssim"].shape == (32, 32)


def _datasets_close(a, b) -> None:
    for name in ("ssim", "luminance", "contrast", "structure", "ssim_std", "ssim_min", "ssim_max"):
        if name in a:
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(a["count"].values, b["count"].values)


@pytest.mark.parametrize("regions", ["all", "2x3"])
@pytest.mark.parametrize("channels", [None, 3])
def test_evaluate_on_device_equals_cpu(rng, regions, channels) -> None:
    shape = (4, 150, 130) if channels is None else (4, 150, 130, channels)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
    kwargs = {"regions": regions, "chunk_pixels": 64 * 64}
    if channels:
        kwargs["channel_axis"] = -1
    cpu = sp.evaluate(x, y, device="cpu", **kwargs)
    gpu = sp.evaluate(x, y, device="gpu", **kwargs)
    _datasets_close(gpu, cpu)


def test_evaluate_dask_cupy_blocks(rng) -> None:
    import cupy
    import dask.array as da

    x = rng.integers(0, 256, (3, 120, 140), dtype=np.uint8)
    y = np.clip(x + rng.integers(-30, 31, x.shape), 0, 255).astype(np.uint8)
    on_device = [da.from_array(cupy.asarray(a), chunks=(1, 60, 70), asarray=False) for a in (x, y)]
    assert isinstance(on_device[0]._meta, cupy.ndarray)
    gpu = sp.evaluate(*on_device, device="gpu")
    cpu = sp.evaluate(x, y, device="cpu")
    _datasets_close(gpu, cpu)


def test_ssim_on_cupy_arrays_equals_cpu() -> None:
    import cupy

    x = data.camera()
    y = np.clip(x.astype(np.int16) + 9, 0, 255).astype(np.uint8)
    score_gpu, maps = sp.ssim(cupy.asarray(x), cupy.asarray(y), full=True)
    score_cpu = sp.ssim(x, y, engine="reference")
    assert abs(score_gpu - score_cpu) < TOLERANCE
    assert isinstance(maps["ssim"], cupy.ndarray)
    for profile in ("wang2004", "skimage"):
        a = sp.ssim(cupy.asarray(x), cupy.asarray(y), profile=profile)
        b = sp.ssim(x, y, profile=profile)
        assert abs(a - b) < TOLERANCE


def test_colour_on_cupy_arrays() -> None:
    import cupy

    x = data.astronaut()
    y = x[::-1].copy()
    score_gpu, maps = sp.ssim(cupy.asarray(x), cupy.asarray(y), channel_axis=-1, full=True)
    score_cpu, reference = sp.ssim(x, y, channel_axis=-1, full=True, engine="reference")
    assert abs(score_gpu - score_cpu) < TOLERANCE
    for name in MAP_NAMES:
        assert np.abs(cupy.asnumpy(maps[name]) - reference[name]).max() < TOLERANCE


def test_identity_is_one_on_device(rng) -> None:
    import cupy

    x = cupy.asarray(rng.integers(0, 65536, (64, 64), dtype=np.uint16))
    assert sp.ssim(x, x) == pytest.approx(1.0, abs=1e-7)
