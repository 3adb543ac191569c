"""Checks on user-supplied images and values, run before any arithmetic.

Every message names the parameter, what it got and what was expected.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module, is_device_array

__all__ = [
    "FLOAT64_PIXEL_LIMIT",
    "as_image_array",
    "check_data_range",
    "check_data_ranges",
    "check_finite",
    "check_pixels",
    "check_same_shape",
    "check_window_fits",
    "lookup_data_range",
    "normalize_channel_axis",
    "pixel_magnitude",
    "resolve_data_range",
]


def as_image_array(value: Any, name: str) -> Any:
    """``value`` as a NumPy or CuPy array with a real numeric dtype."""
    array = value if isinstance(value, np.ndarray) or is_device_array(value) else np.asarray(value)
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


def check_data_range(value: Any, name: str = "data_range") -> float | None:
    """``value`` as a data range ``L``: a positive finite number (None passes through).

    The one check of a data range, for the in-memory API and the run settings alike.

    Raises
    ------
    TypeError
        Not a number.
    ValueError
        Zero, negative, NaN or infinite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number (got {value!r})")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number (got {value})")
    return float(value)


def check_data_ranges(ranges: Any) -> dict[str, float] | None:
    """``{dtype name: L}`` with canonical dtype names, sorted, each range checked.

    Raises
    ------
    TypeError
        Not a mapping, or a range that is not a number.
    ValueError
        A key that is not a dtype name, or a range that is not positive and finite.
    """
    if ranges is None:
        return None
    if not isinstance(ranges, Mapping):
        raise TypeError(
            "data_ranges must be a mapping of dtype name to data range, e.g. "
            f"{{float32: 1.0}} (got {type(ranges).__name__})"
        )
    checked: dict[str, float] = {}
    for key, value in ranges.items():
        try:
            dtype = np.dtype(str(key))
        except TypeError:
            raise ValueError(
                f"data_ranges keys must be dtype names such as 'float32' or 'uint16' (got {key!r})"
            ) from None
        found = check_data_range(value, f"data_ranges[{key!r}]")
        if found is None:
            raise TypeError(f"data_ranges[{key!r}] must be a number (got None)")
        checked[dtype.name] = found
    return dict(sorted(checked.items()))


def lookup_data_range(
    data_range: float | None,
    dtype_x: np.dtype,
    dtype_y: np.dtype,
    data_ranges: Mapping[str, float] | None = None,
) -> tuple[float | None, str]:
    """The data range ``L`` of images of these dtypes and where it came from, if there is one.

    Precedence: ``data_ranges[dtype]`` (``source "data_ranges[<dtype>]"``), then the
    scalar ``data_range`` (``"given"``), then an integer dtype's full range
    (``"dtype <name>"``). A float dtype with neither gives ``(None, "missing")``:
    the caller decides whether that fails the run or only these pairs. Never
    guessed from pixel values.

    Raises
    ------
    TypeError, ValueError
        ``data_range`` is not a positive finite number; ``data_ranges`` gives the
        two dtypes different ranges; integer dtypes differ and nothing was given.
    """
    dtype_x, dtype_y = np.dtype(dtype_x), np.dtype(dtype_y)
    data_range = check_data_range(data_range)
    if data_ranges is not None:
        per_dtype = {
            dtype.name: float(data_ranges[dtype.name])
            for dtype in (dtype_x, dtype_y)
            if dtype.name in data_ranges
        }
        if len(set(per_dtype.values())) > 1:
            raise ValueError(
                f"data_ranges gives the two sides different ranges ({per_dtype}); a pair is "
                "scored with one data range: give both dtypes the same one"
            )
        if per_dtype:
            name = dtype_x.name if dtype_x.name in per_dtype else dtype_y.name
            return per_dtype[name], f"data_ranges[{name}]"
    if data_range is not None:
        return data_range, "given"
    return _dtype_data_range(dtype_x, dtype_y)


@functools.lru_cache(maxsize=64)
def _dtype_data_range(dtype_x: np.dtype, dtype_y: np.dtype) -> tuple[float | None, str]:
    """The full range of an integer dtype pair, or ``(None, "missing")`` for floats.

    Cached per dtype pair: ``np.iinfo`` and the dtype names cost more than the rest
    of a small image's checks.
    """
    if dtype_x.kind == "f" or dtype_y.kind == "f":
        return None, "missing"
    if dtype_x != dtype_y:
        raise ValueError(
            f"data_range cannot be taken from mismatched dtypes {dtype_x} and {dtype_y}; "
            "pass data_range explicitly"
        )
    info = np.iinfo(dtype_x)
    return float(info.max) - float(info.min), f"dtype {dtype_x}"


def resolve_data_range(
    data_range: float | None,
    dtype_x: np.dtype,
    dtype_y: np.dtype,
    data_ranges: Mapping[str, float] | None = None,
) -> tuple[float, str]:
    """The data range ``L`` and where it came from (:func:`lookup_data_range`).

    Raises
    ------
    ValueError
        A float dtype with no range given: ``data_range`` is never guessed.
    """
    found, source = lookup_data_range(data_range, dtype_x, dtype_y, data_ranges)
    if found is None:
        floats = np.dtype(dtype_x) if np.dtype(dtype_x).kind == "f" else np.dtype(dtype_y)
        raise ValueError(
            f"data_range is required for floating-point images (got dtypes {np.dtype(dtype_x)} "
            f"and {np.dtype(dtype_y)}); pass data_range=1.0 for images scaled to [0, 1] or "
            f"255.0 for [0, 255] (in a run's settings: data_ranges={{'{floats.name}': 1.0}})"
        )
    return found, source


@functools.lru_cache(maxsize=64)
def _dtype_bound(dtype: np.dtype) -> float | None:
    """``max |value|`` a dtype can hold where that is small enough for every path, else None."""
    if dtype.kind in "ui" and dtype.itemsize <= 4:
        info = np.iinfo(dtype)
        return max(float(info.max), -float(info.min))
    if dtype == np.float16:
        return float(np.finfo(dtype).max)
    return None


def pixel_magnitude(x: Any, y: Any) -> float:
    """The largest ``|pixel|`` of ``x`` and ``y``, finite pixels assumed.

    For dtypes no larger than 32-bit integers or float16 the dtype's own bound is
    returned without reading the pixels (it is small enough for every path);
    float32, float64 and 64-bit integers are read (a max and a min each).
    """
    bound = 0.0
    for array in (x, y):
        own = _dtype_bound(np.dtype(array.dtype))
        if own is None and array.size:
            own = max(abs(float(array.max())), abs(float(array.min())))
        bound = max(bound, own or 0.0)
    return bound


# Beyond this magnitude float64 squares (x^2 ~ 1e300 and sums of a few) approach the
# float64 limit (1.8e308): the local moments would overflow to Inf and the score to NaN.
FLOAT64_PIXEL_LIMIT = 1e150


def check_pixels(array: Any, name: str) -> float:
    """Refuse NaN, Inf and float64 pixels beyond 1e150; return ``max |pixel|``.

    One max and one min answer all three (a NaN or Inf shows in them), so the
    checks cost no more than :func:`check_finite` alone; the magnitude then picks
    the engine (:func:`pipeline.kernels.cpu.combine.float32_holds`).
    """
    dtype = array.dtype
    if array.size == 0:
        return 0.0
    if dtype.kind in "ui" and dtype.itemsize <= 4:
        return _dtype_bound(dtype) or 0.0
    top, bottom = float(array.max()), float(array.min())
    if not (math.isfinite(top) and math.isfinite(bottom)):
        check_finite(array, name)
    magnitude = max(abs(top), abs(bottom))
    if dtype == np.float64 and magnitude > FLOAT64_PIXEL_LIMIT:
        raise ValueError(
            f"{name} holds values up to {magnitude:.3g} (float64); SSIM's local moments overflow "
            f"float64 beyond {FLOAT64_PIXEL_LIMIT:g}: rescale both images and data_range by "
            "one factor (SSIM does not change)"
        )
    return magnitude


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
