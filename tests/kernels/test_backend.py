"""NumPy/CuPy dispatch without importing CuPy."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.kernels import backend


def test_numpy_arrays_use_numpy():
    assert backend.array_module(np.zeros(3), np.ones(2)) is np
    assert not backend.is_device_array(np.zeros(3))


def test_device_arrays_are_told_by_their_module_alone():
    # Stand-ins named like CuPy's classes: the test needs no CuPy (nor a GPU).
    def made_in(module: str) -> object:
        return type("ndarray", (), {"__module__": module})()

    assert backend.is_device_array(made_in("cupy"))
    assert backend.is_device_array(made_in("cupy._core.core"))
    assert not backend.is_device_array(made_in("cupyx.scipy"))
    assert not backend.is_device_array(made_in("numpy"))
    assert not backend.is_device_array(np.zeros(3).view(np.ma.MaskedArray))
    assert not backend.is_device_array([1, 2])
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy arrays"):
        backend.array_module(np.zeros(3), made_in("cupy"))


def test_to_host_returns_numpy():
    assert isinstance(backend.to_host([1, 2]), np.ndarray)


def test_ndimage_module_for_numpy():
    import scipy.ndimage

    assert backend.ndimage_module(np) is scipy.ndimage


def test_importing_pipeline_does_not_import_cupy():
    import subprocess

    code = "import sys, pipeline; pipeline.ssim; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gpu_probe_is_a_bool():
    assert isinstance(backend.gpu_available(), bool)


@pytest.mark.gpu
def test_cupy_arrays_use_cupy():
    import cupy

    a = cupy.zeros(3)
    assert backend.array_module(a) is cupy
    assert backend.is_device_array(a)
    with pytest.raises(TypeError, match="cannot mix NumPy and CuPy arrays"):
        backend.array_module(a, np.zeros(3))
