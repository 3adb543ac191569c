"""Extremes and fixed-bin histogram counts of a run of SSIM values, compiled.

The statistics kernels reduce every output row while it is in cache, and a
row's minimum, maximum and histogram were its most expensive part: a scalar
loop whose every pixel did a clamp, a float-to-int conversion, a gather of two
bin edges and a float64 increment that waits on the previous one whenever
neighbouring pixels share a bin (they mostly do). Here a run of values is
reduced in three passes over it, two of which vectorise:

1. extremes: min and max through order-preserving integer keys of the float
   bits (LLVM vectorises integer min/max reductions, not floating ones);
2. bin indices into a small int32 buffer: a float32 guess (8 lanes), and for
   the rare values within its rounding error of an edge the exact test against
   the edges, computed from the index instead of gathered (the same two
   operations that make :func:`~pipeline.kernels.statistics.bin_edges`);
3. counts into four interleaved int64 histograms (independent increments
   instead of one chain through memory), summed into the float64 counts at
   the end.

Short runs (under :data:`_SHORT` values, e.g. label masks cut into small
pieces) take one scalar pass with the same index arithmetic. Both give
exactly ``np.histogram(values, bins=bin_edges(bins))`` of the values clipped to
[-1, 1] (values a rounding error outside the range count in the end bins), and
exactly the float extremes. The edges, and the most bins (their indices are
int32 here), are those of :mod:`pipeline.kernels.statistics`.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["add_extremes_and_counts"]

# Below this many values a run is reduced in one scalar pass.
_SHORT = 64
# Interleaved copies of the counts.
_COPIES = 4


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _bin_of(v: float, bins: int, half: float, step: float) -> float:  # pragma: no cover - compiled
    """Bin of ``v`` (clipped to [-1, 1]; NaN counts in bin 0), as ``np.histogram`` places it.

    Returned as an integer-valued float64. The multiply can round across an
    edge, so the guess is corrected against the edges, recomputed exactly as
    :func:`~pipeline.kernels.statistics.bin_edges` computes them (``i * step -
    1``, two rounded operations). Every step stays in float64, integers
    included (``floor`` instead of a conversion to int and back): AVX2 has no
    packed int64 <-> float64 conversion, and with one the loop that calls this
    ran a scalar conversion per value.
    """
    clipped = v if v > -1.0 else -1.0
    clipped = clipped if clipped < 1.0 else 1.0
    last = np.float64(bins - 1)
    guess = np.floor((clipped + 1.0) * half)
    index = guess if guess < last else last
    lower = index * step - 1.0
    upper = (index + 1.0) * step - 1.0
    down = 1.0 if clipped < lower else 0.0
    up = 1.0 if clipped >= upper else 0.0
    # At most one of them is 1; a step up from the last bin (v == 1) is clamped back.
    corrected = index - down + up
    return corrected if corrected < last else last


def _extremes(values):
    """Min and max of ``values`` (not empty), as float64.

    Compiled only: :func:`_extremes_overload` picks the implementation per
    dtype and memory layout. (Unannotated: numba matches the overload's
    parameters, annotations included, against this signature.)
    """
    raise NotImplementedError("compiled only")


@overload(_extremes, jit_options={"nogil": True, "error_model": "numpy"})
def _extremes_overload(values):
    """Integer keys for contiguous float32/float64 runs, a scalar loop for anything else.

    The key of a float's bits ``b`` is ``b ^ ((b >> (width - 1)) & ~sign)``:
    positive floats keep their order, negative ones have their magnitude bits
    flipped, so integers compare as the floats do (with -0 below +0).
    """
    if not isinstance(values, types.Array) or values.layout != "C":
        return _extremes_scalar
    bits: Any
    flip: Any
    if values.dtype == types.float32:
        bits, flip = np.int32, np.int32(0x7FFFFFFF)
    elif values.dtype == types.float64:
        bits, flip = np.int64, np.int64(0x7FFFFFFFFFFFFFFF)
    else:
        return _extremes_scalar
    width = np.dtype(bits).itemsize * 8
    shift = bits(width - 1)
    smallest = bits(np.iinfo(bits).min)
    largest = bits(np.iinfo(bits).max)
    float_type = np.float32 if bits is np.int32 else np.float64

    def _extremes_keys(values):
        keys = values.view(bits)
        low = largest
        high = smallest
        for k in range(keys.shape[0]):
            b = keys[k]
            # Cast back at each step: numba widens int32 arithmetic to int64, which
            # would halve the loop's lanes (float32 rows: 0.20 -> 0.08 ns per value).
            key = bits(b ^ bits(bits(b >> shift) & flip))
            low = key if key < low else low
            high = key if key > high else high
        out = np.empty(2, dtype=bits)
        out[0] = low ^ ((low >> shift) & flip)
        out[1] = high ^ ((high >> shift) & flip)
        found = out.view(float_type)
        return np.float64(found[0]), np.float64(found[1])

    return _extremes_keys


def _extremes_scalar(values):
    low = np.inf
    high = -np.inf
    for k in range(values.shape[0]):
        v = np.float64(values[k])
        low = min(low, v)
        high = max(high, v)
    return low, high


# Up to this many bins the float32 guess of _indices is tried first.
_FAST_BINS = 2**20


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _indices(values: np.ndarray, bins: int, index: np.ndarray) -> None:  # pragma: no cover
    """Bin of every value into ``index``: a float32 guess, exact where it could be wrong.

    The guess ``floor((v + 1) * bins / 2)`` in float32 (8 lanes) differs from
    the exact bin only if ``(v + 1) * bins / 2`` lies within its rounding error
    (at most ~1.1e-7 * bins, float64 values rounded to float32 included) of an
    integer, i.e. within that distance of an edge. Such values (and only
    those; never -1 or 1, whose bins are certain) are marked -1, and a second
    scan, a compare per value, gives them the exact :func:`_bin_of`. In an
    SSIM map they are a few in 1e5 (exact zeros, say).
    """
    n = values.shape[0]
    half64 = bins / 2.0
    step = 2.0 / bins
    lowest = np.int32(0)
    if bins <= _FAST_BINS:
        one = np.float32(1.0)
        half = np.float32(half64)
        last = np.float32(bins - 1)
        margin = np.float32(bins * 2.5e-7 + 1e-6)
        for k in range(n):
            v = np.float32(values[k])
            clipped = v if v > -one else -one
            clipped = clipped if clipped < one else one
            t = (clipped + one) * half
            guess = np.floor(t)
            frac = t - guess
            near = (frac < margin) | (frac > one - margin)
            near = near & (clipped > -one) & (clipped < one)
            guess = guess if guess < last else last
            found = np.int32(-1) if near else np.int32(guess)
            index[k] = found
            # An int32 min, not a count: numba widens integer sums to int64,
            # and the int64 lanes halve the vector width of the whole loop.
            lowest = min(lowest, found)
    else:
        lowest = np.int32(-1)
        for k in range(n):
            index[k] = -1
    if lowest >= 0:
        return
    for k in range(n):
        if index[k] < 0:
            index[k] = np.int32(_bin_of(np.float64(values[k]), bins, half64, step))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _count(index: np.ndarray, bins: int, counts: np.ndarray) -> None:  # pragma: no cover
    n = index.shape[0]
    copies = np.zeros(_COPIES * bins, dtype=np.int64)
    n_even = n - n % _COPIES
    for k in range(0, n_even, _COPIES):
        copies[np.uint32(index[k])] += 1
        copies[bins + np.uint32(index[k + 1])] += 1
        copies[2 * bins + np.uint32(index[k + 2])] += 1
        copies[3 * bins + np.uint32(index[k + 3])] += 1
    for k in range(n_even, n):
        copies[np.uint32(index[k])] += 1
    for b in range(bins):
        total = copies[b] + copies[bins + b] + copies[2 * bins + b] + copies[3 * bins + b]
        counts[b] += np.float64(total)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def add_extremes_and_counts(
    values: np.ndarray, low: float, high: float, counts: np.ndarray
) -> tuple[float, float]:  # pragma: no cover - compiled; checked against NumPy in the tests
    """Add the histogram of the run ``values`` to ``counts``; return the new (low, high).

    ``counts`` holds float64 counts of ``counts.shape[0]`` bins over
    :func:`~pipeline.kernels.statistics.bin_edges`; ``low`` and ``high`` are the
    extremes so far. A run is a 1-D view (a slice of a map row), never bounds: a
    constant bound such as 0 would be typed as a literal and compile the whole
    chain a second time.
    """
    n = values.shape[0]
    if n == 0:
        return low, high
    bins = counts.shape[0]
    if n < _SHORT:
        half = bins / 2.0
        step = 2.0 / bins
        for k in range(n):
            v = np.float64(values[k])
            low = min(low, v)
            high = max(high, v)
            counts[np.int64(_bin_of(v, bins, half, step))] += 1.0
        return low, high
    run_low, run_high = _extremes(values)
    index = np.empty(n, dtype=np.int32)
    _indices(values, bins, index)
    _count(index, bins, counts)
    return min(low, run_low), max(high, run_high)
