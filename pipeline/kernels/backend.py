"""Array-module dispatch: NumPy on the CPU, CuPy on the GPU.

CuPy is imported lazily, only when a CuPy array shows up or the GPU is asked
for, so that importing :mod:`pipeline` never needs CUDA.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "array_module",
    "from_dlpack",
    "gpu_available",
    "is_device_array",
    "ndimage_module",
    "on_stream",
    "to_device",
    "to_host",
]


def is_device_array(array: Any) -> bool:
    """True for a CuPy array, decided without importing CuPy."""
    if type(array) is np.ndarray:  # the common case, answered first
        return False
    module = type(array).__module__
    return module == "cupy" or module.startswith("cupy.")


def array_module(*arrays: Any) -> ModuleType:
    """The module (``numpy`` or ``cupy``) that owns ``arrays``.

    Mixing host and device arrays is refused rather than silently copied.
    """
    on_device = [is_device_array(a) for a in arrays]
    if any(on_device):
        if not all(on_device):
            raise TypeError("cannot mix NumPy and CuPy arrays; move both to the same device first")
        return sys.modules["cupy"]
    return np


def ndimage_module(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` for NumPy, ``cupyx.scipy.ndimage`` for CuPy."""
    if xp is np:
        import scipy.ndimage

        return scipy.ndimage
    import cupyx.scipy.ndimage

    return cupyx.scipy.ndimage


def to_host(array: Any) -> np.ndarray:
    """A NumPy copy of ``array`` (no copy when it already is one)."""
    if is_device_array(array):
        return array.get()
    return np.asarray(array)


def to_device(*arrays: Any) -> tuple[Any, ...]:
    """CuPy copies of ``arrays`` on the current device (no copy for those already there)."""
    import cupy

    return tuple(cupy.asarray(a) for a in arrays)


def from_dlpack(tensor: Any) -> Any:
    """A CuPy array sharing the memory of a DLPack-capable device tensor (no copy)."""
    import cupy

    return cupy.from_dlpack(tensor)


@contextlib.contextmanager
def on_stream(device: int, stream: int) -> Iterator[None]:
    """CuPy work inside runs on GPU ``device`` and on the CUDA stream whose handle is ``stream``.

    For arrays that another library (PyTorch) produces and consumes on its own
    stream: CuPy launches on its own current stream otherwise, which is not ordered
    after the other library's kernels.
    """
    import cupy

    with cupy.cuda.Device(device), cupy.cuda.ExternalStream(stream):
        yield


@functools.cache
def gpu_available() -> bool:
    """Whether a CUDA device answers: an importable CuPy is not a GPU."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False
        # A tiny kernel launch proves the driver, the device and the runtime all work.
        return bool((cupy.arange(4) * 2).sum().get() == 12)
    except Exception:  # any CUDA failure means: no usable GPU here
        return False
