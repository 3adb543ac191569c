"""Wang's box-filter-and-sample downsampling of a 2-D NumPy plane, compiled (numba).

:func:`pipeline.kernels.downsample.box_downsample` of NumPy arrays, for the two
axes of a plane, reduced in their order: output ``(i, j)`` averages the input
samples ``i f - before .. i f + after`` of the first axis, then of the second,
each index mirrored into the plane as NumPy's ``mode="symmetric"`` extension
does. The arithmetic is the generic form's, operation for operation, so the
result is the same to the last bit: each pixel as float64, the taps of the first
axis summed in order (tap 0 first) and divided by ``f``, then those means summed
along the second axis in the same order and divided by ``f``.

Why compiled: the generic form pads a float64 copy of the image and adds strided
views of it, about 7 ns per input pixel for ``f = 2`` (15 for ``f = 8``); that
made four fifths of an MS-SSIM call, whose pyramid halves both images four
times, and nearly all of a ``wang2009`` call. Here one pass over the input rows
makes each output row: ``f = 2`` straight from the two input rows, any other
factor through one float64 row of first-axis means.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.combine import jit

__all__ = ["box_downsample_plane"]


@jit()
def _mirror(index: int, n: int) -> int:
    """Sample ``index`` of an axis of ``n`` extended symmetrically (the edge sample repeats).

    The extension repeats with period ``2 n``: ``-1 -> 0``, ``n -> n - 1``,
    ``2 n -> 0``, as NumPy's ``mode="symmetric"`` pads however wide the pad.
    """
    period = 2 * n
    m = index % period
    return m if m < n else period - 1 - m


@jit()
def _halve(
    x: np.ndarray, out: np.ndarray, first0: int, origin0: int, n0: int, first1: int, origin1: int,
    n1: int,
) -> None:  # fmt: skip
    """``f = 2``: output ``(i, j)`` from input rows ``2i, 2i + 1`` and columns ``2j, 2j + 1``.

    Indices are the whole image's (``first``, ``origin``, ``n``: see
    :func:`box_downsample_plane`). ``before = 0``, so only the far edge of an odd
    side mirrors: the last sample is its own partner.
    """
    # Outputs whose two columns both lie inside the image; the last may mirror.
    full = min(out.shape[1], n1 // 2 - first1)
    for i in range(out.shape[0]):
        anchor = 2 * (first0 + i)
        r0 = anchor - origin0
        r1 = min(anchor + 1, n0 - 1) - origin0
        # Rows from the first output's first column: indices from 0 up need no sign check.
        top = x[r0, 2 * first1 - origin1 :]
        bottom = x[r1, 2 * first1 - origin1 :]
        row = out[i]
        for j in range(full):
            c = 2 * j
            a = (np.float64(top[c]) + np.float64(bottom[c])) / 2
            b = (np.float64(top[c + 1]) + np.float64(bottom[c + 1])) / 2
            row[j] = (a + b) / 2
        for j in range(max(full, 0), out.shape[1]):
            c = 2 * (first1 + j)
            c0 = c - origin1
            c1 = min(c + 1, n1 - 1) - origin1
            a = (np.float64(x[r0, c0]) + np.float64(x[r1, c0])) / 2
            b = (np.float64(x[r0, c1]) + np.float64(x[r1, c1])) / 2
            out[i, j] = (a + b) / 2


@jit()
def _reduce(
    x: np.ndarray, factor: int, out: np.ndarray, first0: int, origin0: int, n0: int, first1: int,
    origin1: int, n1: int,
) -> None:  # fmt: skip
    """Any factor: each output row from a float64 row of first-axis means."""
    before = (factor - 1) // 2
    m1 = out.shape[1]
    width = x.shape[1]
    means = np.empty(width)
    # The second axis's taps, mirrored once: tap k of output j reads means[taps[j, k]].
    taps = np.empty((m1, factor), dtype=np.int64)
    for j in range(m1):
        for k in range(factor):
            taps[j, k] = _mirror((first1 + j) * factor - before + k, n1) - origin1
    for i in range(out.shape[0]):
        anchor = (first0 + i) * factor - before
        r = _mirror(anchor, n0) - origin0
        for c in range(width):
            means[c] = np.float64(x[r, c])
        for k in range(1, factor):
            r = _mirror(anchor + k, n0) - origin0
            for c in range(width):
                means[c] += np.float64(x[r, c])
        for c in range(width):
            means[c] = means[c] / factor
        for j in range(m1):
            total = means[taps[j, 0]]
            for k in range(1, factor):
                total += means[taps[j, k]]
            out[i, j] = total / factor


def box_downsample_plane(
    x: np.ndarray,
    factor: int,
    out: np.ndarray,
    first: tuple[int, int] = (0, 0),
    origin: tuple[int, int] = (0, 0),
    length: tuple[int, int] | None = None,
) -> None:
    """``out[:] = box_downsample(x, factor)`` of a 2-D NumPy plane or a block of one.

    ``x``: any real dtype that numba turns into float64 as NumPy does (bool,
    integers, float32, float64); ``out``: float64, or float32 where every mean is a
    float32 number (stored as it is). Both may be strided views. For
    a whole plane the defaults hold and ``out`` has ``ceil(n / factor)`` samples
    per axis. For a block of a larger plane (the tiled form,
    :mod:`pipeline.tiling.downsample`), per axis: ``first``, the plane's index of
    the block's first output; ``origin``, the plane's index of ``x``'s first
    sample; ``length``, the plane's length. The block must hold every sample its
    outputs read (after mirroring at the plane's edges).
    """
    n0, n1 = x.shape if length is None else length
    args = (out, first[0], origin[0], n0, first[1], origin[1], n1)
    if factor == 2:
        _halve(x, *args)
    else:
        _reduce(x, factor, *args)
