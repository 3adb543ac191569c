"""Checks on user-supplied images and values, run before any arithmetic.

Every message names the parameter, what it got and what was expected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.backend import array_module, is_device_array

__all__ = [
    "as_image_array",
    "check_finite",
    "check_same_shape",
    "check_window_fits",
    "normalize_channel_axis",
    "resolve_data_range",
]


def as_image_array(value: Any, name: str) -> Any:
    """``value`` as a NumPy or CuPy array with a real numeric dtype."""
    array = value if is_device_array(value) or isinstance(value, np.ndarray) else np.asarray(value)
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real-valued; complex dtype {array.dtype} is not supported")
    if kind == "b":
        raise TypeError(f"{name} has dtype bool; convert it to uint8 or float first")
    if kind not in "uif":
        raise TypeError(
            f"{name} must have an integer or floating dtype (got {array.dtype}); "
            "decode images to arrays first"
        )
    if array.ndim == 0:
        raise ValueError(f"{name} must be an image array, not a scalar")
    return array


def check_same_shape(x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> None:
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape "
            f"(got {tuple(x.shape)} and {tuple(y.shape)})"
        )


def check_finite(array: Any, name: str) -> None:
    """Refuse NaN and Inf: a mean over them is meaningless."""
    if array.dtype.kind != "f":
        return
    xp = array_module(array)
    if not bool(xp.isfinite(array).all()):
        n_bad = int((~xp.isfinite(array)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN or Inf value(s); SSIM needs finite pixels")


def resolve_data_range(
    data_range: float | None, dtype_x: np.dtype, dtype_y: np.dtype
) -> tuple[float, str]:
    """The data range ``L`` and where it came from (``"given"`` or ``"dtype <name>"``).

    Never guessed from pixel values: integer dtypes give their full range, a
    float input needs it given.
    """
    if data_range is not None:
        if isinstance(data_range, bool) or not isinstance(data_range, int | float | np.number):
            raise TypeError(f"data_range must be a number (got {data_range!r})")
        if not math.isfinite(data_range) or data_range <= 0:
            raise ValueError(f"data_range must be a positive finite number (got {data_range})")
        return float(data_range), "given"
    dtype_x, dtype_y = np.dtype(dtype_x), np.dtype(dtype_y)
    if dtype_x.kind == "f" or dtype_y.kind == "f":
        raise ValueError(
            f"data_range is required for floating-point images (got dtypes {dtype_x} and "
            f"{dtype_y}); pass data_range=1.0 for images scaled to [0, 1] or 255.0 for [0, 255]"
        )
    if dtype_x != dtype_y:
        raise ValueError(
            f"data_range cannot be taken from mismatched dtypes {dtype_x} and {dtype_y}; "
            "pass data_range explicitly"
        )
    info = np.iinfo(dtype_x)
    return float(info.max - info.min), f"dtype {dtype_x}"


def normalize_channel_axis(channel_axis: int | None, ndim: int) -> int | None:
    """``channel_axis`` as a non-negative axis index (or ``None``)."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise TypeError(f"channel_axis must be an integer or None (got {channel_axis!r})")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for an array of {ndim} axes")
    if ndim < 2:
        raise ValueError(f"channel_axis needs at least 2 axes (got an array of {ndim} axis)")
    return int(channel_axis) % ndim


def check_window_fits(spatial_shape: tuple[int, ...], win_size: int) -> None:
    """The window must fit inside the image along every spatial axis."""
    if min(spatial_shape) < win_size:
        raise ValueError(
            f"win_size {win_size} is larger than the smallest image side "
            f"(image shape {tuple(spatial_shape)}); use a smaller odd win_size or larger images"
        )
