"""Sums of squared pixel differences of a block, per image and region (numba).

The numerator of MSE and PSNR: for each image of a ``(image, y, x, channel)``
block, the float64 sum of ``(x - y)^2`` over every pixel and channel, for
region ``all`` and for each sub-region (keyed, like the SSIM partials of
:mod:`pipeline.kernels.cpu.partials`, by a region id per pixel, ``-1`` for
none), together with how many values each sum holds. One pass, no temporary
array, the GIL released (Dask's threads run it side by side).

The arithmetic is scikit-image's ``mean_squared_error``: two float32 images
are subtracted and squared in float32 (skimage keeps float32 images in float32),
every other pair in float64 (integers are exact there); the squares are summed
in float64. Each image row is summed on its own before it joins the image's
total (and each run of one region id before it joins the region's), so a
rounding error grows with the length of a row, not with the pixels of a block:
the totals stay within ~1e-13 relative of a pairwise sum (integer pixels give
integer squares, summed exactly).

Speed: this pass runs beside the SSIM kernel on every block, so it must cost
little next to it. C-contiguous blocks (what the overlapped-block graph hands
over) take :func:`_sums_rows`: each row of the window is one contiguous run of
``columns x channels`` values, summed in a loop that LLVM vectorises (the sum is
reassociated, as the SSIM partials' sums are); region ids only split a row into
runs of one id, each summed the same way; pairs of 8-bit integers sum their
integer squares in int32 pieces (:func:`_small_int_sum`: exact, the same numbers,
2.4x faster). Views and ``skip_unusable`` take the element-by-element :func:`_sums`.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["squared_error_sums"]

# Reassociated float64 sums (vectorised): a reordering moves a sum by ~1e-16 relative.
_SUMS = {"reassoc", "contract"}

# Pixels at or beyond this magnitude are left out when asked to (NaN and Inf fail
# every comparison or exceed it): float64's largest finite value.
_FINITE_LIMIT = float(np.finfo(np.float64).max)
# Pairs of these dtypes only are subtracted in float32, as skimage does.
_SINGLE = (np.dtype(np.float16), np.dtype(np.float32))
# Pairs of one of these dtypes are summed in int32 (exact; see _small_int_sum).
_SMALL_INT = (np.dtype(np.uint8), np.dtype(np.int8))
# Values per int32 partial sum: 2^15 squares of at most 255^2 stay below 2^31.
_INT_PIECE = 2**15


@numba.njit(cache=True, nogil=True)
def _square(a: float, b: float, single: bool) -> float:  # pragma: no cover - compiled
    """``(a - b)^2`` in float32 (``single``) or float64, returned as float64."""
    if single:
        d32 = np.float32(a) - np.float32(b)
        return np.float64(d32 * d32)
    d = np.float64(a) - np.float64(b)
    return d * d


@numba.njit(cache=True, nogil=True)
def _usable(a: float, b: float, limit: float) -> bool:  # pragma: no cover - compiled
    """Both values finite and within ``limit`` (NaN fails the comparison)."""
    return abs(float(a)) <= limit and abs(float(b)) <= limit


@numba.njit(cache=True, nogil=True)
def _small_int_piece(x: np.ndarray, y: np.ndarray) -> np.int32:  # pragma: no cover - compiled
    """Sum of ``(x - y)^2`` of at most :data:`_INT_PIECE` 8-bit values, in int32 (exact)."""
    total = np.int32(0)
    for j in range(x.shape[0]):
        d = np.int32(np.int32(x[j]) - np.int32(y[j]))
        total = np.int32(total + d * d)
    return total


@numba.njit(cache=True, nogil=True)
def _small_int_sum(x: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover - compiled
    """Sum of ``(x - y)^2`` of two 8-bit rows, exact, as float64.

    Integer squares summed in int32 pieces of :data:`_INT_PIECE` values (8 lanes, no
    conversion per value; each piece a call of its own, as the same loop written inline
    here was not vectorised): 0.08 against 0.20 ns per value for the float64 loop, and
    the same number, since float64 sums integers below 2^53 exactly in any order.
    """
    total = 0.0
    n = x.shape[0]
    for a in range(0, n, _INT_PIECE):
        b = min(n, a + _INT_PIECE)
        total += np.float64(_small_int_piece(x[a:b], y[a:b]))
    return total


@numba.njit(cache=True, nogil=True, fastmath=_SUMS)
def _run_sum(
    x: np.ndarray, y: np.ndarray, start: int, stop: int, single: bool, small_int: bool
) -> float:  # pragma: no cover - compiled
    """Sum of ``(x - y)^2`` over ``[start, stop)`` of two contiguous 1-D rows.

    ``small_int``: both rows 8-bit integers (:func:`_small_int_sum`).
    """
    # Sliced first: an index counted from 0 is provably non-negative, so numba's
    # negative-index wraparound drops out and the loop vectorises (4x faster).
    x = x[start:stop]
    y = y[start:stop]
    if small_int:
        return _small_int_sum(x, y)
    total = 0.0
    if single:
        for j in range(x.shape[0]):
            d32 = np.float32(x[j]) - np.float32(y[j])
            total += np.float64(d32 * d32)
    else:
        for j in range(x.shape[0]):
            d = np.float64(x[j]) - np.float64(y[j])
            total += d * d
    return total


@numba.njit(cache=True, nogil=True)
def _sums_rows(
    x: np.ndarray,
    y: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    channels: int,
    ids: np.ndarray,
    has_ids: bool,
    single: bool,
    small_int: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against skimage in the tests
    """:func:`_sums` over ``rows`` x ``cols`` of ``(image, y, x * channel)`` blocks.

    ``x``, ``y`` are C-contiguous, so every row of the window is one contiguous run;
    ``ids`` is ``(image, rows, cols)`` over the window.
    """
    n = x.shape[0]
    width = cols[1] - cols[0]
    for i in range(n):
        for r in range(rows[0], rows[1]):
            x_row = x[i, r]
            y_row = y[i, r]
            out[i, 0, 0] += _run_sum(
                x_row, y_row, cols[0] * channels, cols[1] * channels, single, small_int
            )
            if not has_ids:
                continue
            id_row = ids[i, r - rows[0]]
            j = 0
            while j < width:
                region = id_row[j]
                end = j + 1
                while end < width and id_row[end] == region:
                    end += 1
                if region >= 0:
                    a, b = (cols[0] + j) * channels, (cols[0] + end) * channels
                    out[i, region + 1, 0] += _run_sum(x_row, y_row, a, b, single, small_int)
                    out[i, region + 1, 1] += b - a
                j = end
        out[i, 0, 1] += (rows[1] - rows[0]) * width * channels


@numba.njit(cache=True, nogil=True)
def _sums(
    x: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    has_ids: bool,
    single: bool,
    skip: bool,
    limit: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; checked against NumPy and skimage in the tests
    """Add each image's (and region's) squared-error sum and value count to ``out``.

    ``out`` is ``(image, region, 2)``: ``[..., 0]`` the sum, ``[..., 1]`` the count;
    region 0 is ``all``, region ``k + 1`` the pixels whose id is ``k``.
    """
    n, h, w, c = x.shape
    for i in range(n):
        for r in range(h):
            row_sum = 0.0
            row_count = 0
            run_id = -1
            run_sum = 0.0
            run_count = 0
            for j in range(w):
                pixel_sum = 0.0
                pixel_count = 0
                for k in range(c):
                    a = x[i, r, j, k]
                    b = y[i, r, j, k]
                    if skip and not _usable(a, b, limit):
                        continue
                    pixel_sum += _square(a, b, single)
                    pixel_count += 1
                row_sum += pixel_sum
                row_count += pixel_count
                if has_ids:
                    pixel_id = ids[i, r, j]
                    if pixel_id != run_id:
                        if run_id >= 0:
                            out[i, run_id + 1, 0] += run_sum
                            out[i, run_id + 1, 1] += run_count
                        run_id = pixel_id
                        run_sum = 0.0
                        run_count = 0
                    run_sum += pixel_sum
                    run_count += pixel_count
            if run_id >= 0:
                out[i, run_id + 1, 0] += run_sum
                out[i, run_id + 1, 1] += run_count
            out[i, 0, 0] += row_sum
            out[i, 0, 1] += row_count


def squared_error_sums(
    x: np.ndarray,
    y: np.ndarray,
    region_ids: np.ndarray | None = None,
    n_regions: int = 1,
    *,
    window: tuple[slice, slice] | None = None,
    skip_unusable: bool = False,
    limit: float | None = None,
) -> np.ndarray:
    """Sums of squared differences and their value counts per image and region.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(image, y, x, channel)`` blocks (views are fine), same shape, any real dtype.
    region_ids : numpy.ndarray, optional
        ``(image, y, x)`` region index of each pixel (of ``window``) besides ``all``
        (``-1`` for none, else below ``n_regions - 1``); None when there is only ``all``.
    n_regions : int
        Regions including ``all``.
    window : tuple of slice, optional
        ``(y, x)`` slices (steps of 1) of the pixels to sum; default all of them.
    skip_unusable : bool
        Leave out the values where either side is NaN, Inf or beyond ``limit``.
    limit : float, optional
        Largest usable magnitude with ``skip_unusable`` (default: any finite value).

    Returns
    -------
    numpy.ndarray, shape ``(image, n_regions, 2)``
        float64 sum of ``(x - y)^2`` and the number of values it holds.

    Examples
    --------
    >>> x = np.zeros((1, 2, 2, 1), np.uint8)
    >>> y = np.full((1, 2, 2, 1), 3, np.uint8)
    >>> squared_error_sums(x, y)[0, 0].tolist()
    [36.0, 4.0]
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"x and y must be (image, y, x, channel) blocks of one shape "
            f"(got {x.shape} and {y.shape})"
        )
    n, height, width, channels = x.shape
    out = np.zeros((n, n_regions, 2))
    rows = range(height)[window[0]] if window is not None else range(height)
    cols = range(width)[window[1]] if window is not None else range(width)
    if x.size == 0 or len(rows) == 0 or len(cols) == 0:
        return out
    single = x.dtype in _SINGLE and y.dtype in _SINGLE
    if np.float16 in (x.dtype, y.dtype):
        # numba has no float16 arithmetic; skimage computes float16 in float32 too.
        x, y = x.astype(np.float32), y.astype(np.float32)
    has_ids = region_ids is not None and n_regions > 1
    ids = np.asarray(region_ids, dtype=np.intp) if has_ids else np.zeros((1, 1, 1), np.intp)
    if not skip_unusable and x.flags.c_contiguous and y.flags.c_contiguous:
        _sums_rows(
            x.reshape(n, height, width * channels),
            y.reshape(n, height, width * channels),
            (rows.start, rows.stop),
            (cols.start, cols.stop),
            channels,
            ids,
            has_ids,
            single,
            x.dtype == y.dtype and x.dtype in _SMALL_INT,
            out,
        )
        return out
    if window is not None:
        x, y = x[:, window[0], window[1]], y[:, window[0], window[1]]
    bound = _FINITE_LIMIT if limit is None else float(limit)
    _sums(x, y, ids, has_ids, single, bool(skip_unusable), bound, out)
    return out
