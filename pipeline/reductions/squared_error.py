"""Squared pixel differences of a block's own pixels, added to its packed statistics.

MSE and PSNR are means over *all* pixels of an image or region (every channel),
not over the SSIM map's valid windows: a block therefore adds the squared
differences of the pixels it owns, its chunk without the halo it borrowed from
its neighbours, so that every pixel of the image counts exactly once however the
image is tiled. Sums go into the ``squared_error`` and ``error_count`` fields of
the packed row (:mod:`pipeline.kernels.statistics`), which merge by addition
like the SSIM sums; ``peak_squared`` carries the pair's ``data_range**2`` to
:func:`pipeline.reductions.statistics.finalize_statistics`.

NumPy blocks go through the compiled loop of
:mod:`pipeline.kernels.cpu.squared_error`; any other array (CuPy blocks of a GPU
run) through the array-module sums of :func:`_array_module_sums`, the same
arithmetic, whose few numbers alone come back to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module, to_host
from pipeline.kernels.cpu.squared_error import squared_error_sums
from pipeline.kernels.statistics import ERROR_COUNT, PEAK_SQUARED, SQUARED_ERROR

__all__ = ["add_squared_error", "block_squared_error"]


def block_squared_error(
    x: Any,
    y: Any,
    region_ids: np.ndarray | None,
    n_regions: int,
    *,
    window: tuple[slice, slice] | None = None,
    skip_unusable: bool = False,
    limit: float | None = None,
) -> np.ndarray:
    """``(image, region, 2)`` float64 sums of ``(x - y)^2`` and their value counts, on the host.

    ``x``, ``y`` are ``(image, y, x, channel)`` blocks (NumPy or CuPy), ``window`` the
    ``(y, x)`` slices of the pixels to sum (default all); ``region_ids`` as for
    :func:`pipeline.kernels.cpu.squared_error.squared_error_sums`.
    """
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        return squared_error_sums(
            x,
            y,
            region_ids,
            n_regions,
            window=window,
            skip_unusable=skip_unusable,
            limit=limit,
        )
    if window is not None:
        x, y = x[:, window[0], window[1]], y[:, window[0], window[1]]
    return _array_module_sums(x, y, region_ids, n_regions, skip_unusable, limit)


def _array_module_sums(
    x: Any,
    y: Any,
    region_ids: np.ndarray | None,
    n_regions: int,
    skip_unusable: bool,
    limit: float | None,
) -> np.ndarray:
    """The sums of :func:`block_squared_error` with the array's own module (NumPy or CuPy)."""
    xp = array_module(x)
    n = x.shape[0]
    single = {np.dtype(x.dtype), np.dtype(y.dtype)} <= {np.dtype(np.float16), np.dtype(np.float32)}
    dtype = xp.float32 if single else xp.float64
    difference = xp.asarray(x, dtype=dtype) - xp.asarray(y, dtype=dtype)
    squares = (difference * difference).astype(xp.float64)
    counts = xp.ones(squares.shape, dtype=xp.float64)
    if skip_unusable:
        bound = np.finfo(np.float64).max if limit is None else float(limit)
        usable = (xp.abs(xp.asarray(x, dtype=xp.float64)) <= bound) & (
            xp.abs(xp.asarray(y, dtype=xp.float64)) <= bound
        )
        squares = xp.where(usable, squares, 0.0)
        counts = usable.astype(xp.float64)
    per_pixel = squares.sum(axis=-1)
    per_pixel_count = counts.sum(axis=-1)
    out = xp.zeros((n, n_regions, 2), dtype=xp.float64)
    out[:, 0, 0] = per_pixel.reshape(n, -1).sum(axis=1)
    out[:, 0, 1] = per_pixel_count.reshape(n, -1).sum(axis=1)
    if region_ids is not None and n_regions > 1:
        # Region k + 1 of image i is bin i * n_regions + k + 1; pixels of no region go to
        # the image's bin 0, which is dropped.
        ids = xp.asarray(np.asarray(region_ids, dtype=np.int64)) + 1
        keys = (ids + xp.arange(n, dtype=xp.int64)[:, None, None] * n_regions).ravel()
        length = n * n_regions
        sums = xp.bincount(keys, weights=per_pixel.ravel(), minlength=length)
        numbers = xp.bincount(keys, weights=per_pixel_count.ravel(), minlength=length)
        out[:, 1:, 0] = sums.reshape(n, n_regions)[:, 1:]
        out[:, 1:, 1] = numbers.reshape(n, n_regions)[:, 1:]
    return np.asarray(to_host(out), dtype=np.float64)


def add_squared_error(
    packed: np.ndarray,
    x: Any,
    y: Any,
    region_ids: np.ndarray | None,
    *,
    peak_squared: float,
    window: tuple[slice, slice] | None = None,
    skip_unusable: bool = False,
    limit: float | None = None,
) -> np.ndarray:
    """``packed`` ``(image, region, field)`` with the block's squared errors added, in place.

    Parameters
    ----------
    packed : numpy.ndarray
        The block's packed statistics; its ``squared_error`` and ``error_count``
        fields grow by the sums over ``x``, ``y``, and ``peak_squared`` is set.
    x, y : array
        The block, ``(image, y, x, channel)``.
    region_ids : numpy.ndarray or None
        ``(image, y, x)`` region index of the pixels of ``window`` besides ``all``
        (``-1`` for none).
    peak_squared : float
        ``data_range**2`` of the pair (PSNR's numerator).
    window : tuple of slice, optional
        ``(y, x)`` slices of the pixels the block owns (its chunk without the halo);
        default the whole block.
    skip_unusable, limit
        Leave out non-finite values (and magnitudes beyond ``limit``):
        ``nan_policy="mask"``.
    """
    sums = block_squared_error(
        x,
        y,
        region_ids,
        packed.shape[1],
        window=window,
        skip_unusable=skip_unusable,
        limit=limit,
    )
    packed[..., SQUARED_ERROR] += sums[..., 0]
    packed[..., ERROR_COUNT] += sums[..., 1]
    packed[..., PEAK_SQUARED] = peak_squared
    return packed
