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

Planes reach the loops as one flat contiguous view and their strides in samples
(:func:`_flat`), not as 2-D views: numba compiles a strided 2-D view's loops for a
stride known only at run time, which do not vectorise. A tile of a larger buffer
(the streaming engine reads Zarr tiles with room for their neighbours' edges) took
1.50 ms for ``f = 2`` of 2000 x 2000 uint8 that way, against 0.54 ms contiguous; read
flat, 0.54 ms too.
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
    x: np.ndarray, rs: int, cs: int, out: np.ndarray, first0: int, origin0: int, n0: int,
    first1: int, origin1: int, n1: int,
) -> None:  # fmt: skip
    """``f = 2``: output ``(i, j)`` from input rows ``2i, 2i + 1`` and columns ``2j, 2j + 1``.

    ``x`` holds the plane's samples flat, sample ``(r, c)`` at ``x[r rs + c cs]``
    (:func:`_flat`). Indices are the whole image's (``first``, ``origin``, ``n``: see
    :func:`box_downsample_plane`). ``before = 0``, so only the far edge of an odd
    side mirrors: the last sample is its own partner.
    """
    # Outputs whose two columns both lie inside the image; the last may mirror.
    full = min(out.shape[1], n1 // 2 - first1)
    # The first output's first column: indices from it up need no sign check.
    left = 2 * first1 - origin1
    for i in range(out.shape[0]):
        anchor = 2 * (first0 + i)
        r0 = (anchor - origin0) * rs
        r1 = (min(anchor + 1, n0 - 1) - origin0) * rs
        row = out[i]
        if cs == 1:
            # Rows as contiguous slices: the loop vectorises (a plane whose rows are
            # padded, a tile of a larger buffer, included).
            top = x[r0 + left :]
            bottom = x[r1 + left :]
            for j in range(full):
                c = 2 * j
                a = (np.float64(top[c]) + np.float64(bottom[c])) / 2
                b = (np.float64(top[c + 1]) + np.float64(bottom[c + 1])) / 2
                row[j] = (a + b) / 2
        else:
            for j in range(full):
                c = (left + 2 * j) * cs
                a = (np.float64(x[r0 + c]) + np.float64(x[r1 + c])) / 2
                b = (np.float64(x[r0 + c + cs]) + np.float64(x[r1 + c + cs])) / 2
                row[j] = (a + b) / 2
        for j in range(max(full, 0), out.shape[1]):
            c = 2 * (first1 + j)
            c0 = (c - origin1) * cs
            c1 = (min(c + 1, n1 - 1) - origin1) * cs
            a = (np.float64(x[r0 + c0]) + np.float64(x[r1 + c0])) / 2
            b = (np.float64(x[r0 + c1]) + np.float64(x[r1 + c1])) / 2
            row[j] = (a + b) / 2


@jit()
def _reduce(
    x: np.ndarray, rs: int, cs: int, width: int, factor: int, out: np.ndarray, first0: int,
    origin0: int, n0: int, first1: int, origin1: int, n1: int,
) -> None:  # fmt: skip
    """Any factor: each output row from a float64 row of first-axis means.

    ``x``, ``rs`` and ``cs`` as in :func:`_halve`; ``width``: the plane's columns.
    """
    before = (factor - 1) // 2
    m1 = out.shape[1]
    means = np.empty(width)
    # The second axis's taps, mirrored once: tap k of output j reads means[taps[j, k]].
    taps = np.empty((m1, factor), dtype=np.int64)
    for j in range(m1):
        for k in range(factor):
            taps[j, k] = _mirror((first1 + j) * factor - before + k, n1) - origin1
    for i in range(out.shape[0]):
        anchor = (first0 + i) * factor - before
        for k in range(factor):
            base = (_mirror(anchor + k, n0) - origin0) * rs
            if cs == 1:
                src = x[base : base + width]
                if k == 0:
                    for c in range(width):
                        means[c] = np.float64(src[c])
                else:
                    for c in range(width):
                        means[c] += np.float64(src[c])
            elif k == 0:
                for c in range(width):
                    means[c] = np.float64(x[base + c * cs])
            else:
                for c in range(width):
                    means[c] += np.float64(x[base + c * cs])
        for c in range(width):
            means[c] = means[c] / factor
        for j in range(m1):
            total = means[taps[j, 0]]
            for k in range(1, factor):
                total += means[taps[j, k]]
            out[i, j] = total / factor


def _flat(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A 2-D plane as one contiguous 1-D view and its row and column strides in samples.

    Sample ``(r, c)`` is ``flat[r rs + c cs]``: no copy for any plane with
    non-negative strides (a tile of a padded buffer, a channel of a stack), and the
    compiled loops read it as contiguous memory, which lets them vectorise where
    ``cs`` is 1 (a strided 2-D view does not: its stride is known only at run time).
    Other planes (reversed axes) are copied first.
    """
    item = x.itemsize
    if any(s < 0 or s % item for s in x.strides):
        x = np.ascontiguousarray(x)
    rs, cs = (s // item for s in x.strides)
    span = (x.shape[0] - 1) * rs + (x.shape[1] - 1) * cs + 1
    return np.lib.stride_tricks.as_strided(x, shape=(span,), strides=(item,)), rs, cs


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
    integers, float32, float64), not empty; ``out``: float64, or float32 where every
    mean is a float32 number (stored as it is). Both may be strided views. For
    a whole plane the defaults hold and ``out`` has ``ceil(n / factor)`` samples
    per axis. For a block of a larger plane (the tiled form,
    :mod:`pipeline.tiling.downsample`), per axis: ``first``, the plane's index of
    the block's first output; ``origin``, the plane's index of ``x``'s first
    sample; ``length``, the plane's length. The block must hold every sample its
    outputs read (after mirroring at the plane's edges).
    """
    n0, n1 = x.shape if length is None else length
    flat, rs, cs = _flat(x)
    args = (out, first[0], origin[0], n0, first[1], origin[1], n1)
    if factor == 2:
        _halve(flat, rs, cs, *args)
    else:
        _reduce(flat, rs, cs, x.shape[1], factor, *args)
