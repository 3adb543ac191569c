"""Fused statistics of the channel-averaged SSIM map of a colour block (numba, CPU).

scikit-image's ``channel_axis`` convention scores a colour image by the mean of
its per-channel SSIM; per pixel, the map this project reduces is the mean over
channels of the per-channel maps (``ssim``, ``luminance``, ``contrast``,
``structure``), whose mean is that score. :meth:`pipeline.reductions.kernel_spec.KernelSpec.maps`
builds those averaged maps whole, one channel at a time, and
:func:`pipeline.reductions.statistics.block_statistics` then reads them again. Here every
output row is made for all channels, averaged and reduced while it is in
cache, so no map is ever stored:

* the channels are read from the interleaved ``(y, x, channel)`` block one
  input row of every channel per step, into a few contiguous rows per channel
  (the window's ring; no channel plane is copied whole);
* each channel's row is computed by the very routines of the fused kernel
  (the Gaussian ring-and-tiles path of :mod:`pipeline.kernels.cpu.gaussian`
  or the uniform running sums of :mod:`pipeline.kernels.cpu.uniform`, same
  row chunks for the same ``threads``), so each per-channel value is bit for
  bit the one :func:`~pipeline.kernels.cpu.fused.fused_maps` returns;
* each channel's combined row is kept, and the channels are then summed in
  float32 in channel order and divided by the channel count in float32, one
  pass per plane, which is exactly what ``KernelSpec.maps`` does with the fused
  engine's float32 maps;
* the channels' deficits ``1 - ssim`` (float32, see
  :func:`~pipeline.kernels.cpu.combine.combine_row`) are averaged in float64;
* the averaged row goes to :func:`pipeline.kernels.cpu.partials.add_row_partial`, the
  row-wise reduction of :func:`~pipeline.kernels.cpu.fused.fused_packed_stats`
  (two passes per row, ``M2`` merged by Chan's update), ``SUM`` and ``M2`` from the
  averaged deficits.

The packed result is therefore that of ``block_statistics`` of the averaged
maps up to the order of float64 summation (~1e-12 relative; counts, minima,
maxima and histograms exactly), but for the SSIM ``SUM`` and ``M2``, which are
free of the float32 rounding of the averaged map (up to ~1.6e-7 a pixel for three
channels): the mean stays within 1e-8 of the exact channel mean on the adversarial
pairs of the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.cpu.chunk import add_map_row
from pipeline.kernels.cpu.combine import ACC, COL, borrowed, jit
from pipeline.kernels.cpu.gaussian import five_moment_marker, gaussian_row, gaussian_row_m
from pipeline.kernels.cpu.launch import (
    aligned_empty,
    check_bins,
    check_map_sums,
    check_weights,
    kernel_inputs,
    plan_threads,
    ring_width,
    row_bounds,
    run_kernel,
    take_chunk,
)
from pipeline.kernels.cpu.partials import add_row_partial
from pipeline.kernels.cpu.uniform import (
    INT_ROWS,
    INT_TAPS,
    add_row,
    add_row_int,
    data_shift,
    swap_row,
    swap_row_int,
    uniform_row,
    uniform_row_int,
)
from pipeline.kernels.statistics import empty_statistics, merge_statistics

__all__ = ["fused_colour_packed_stats", "fused_colour_packed_stats_stack"]

# Planes of a combined row (see combine.combine_row): ssim, cs, luminance,
# contrast, structure. cs is not part of the packed statistics.
_AVERAGED_PLANES = (0, 2, 3, 4)
# The stacked serial kernel's rings, all of one group of images at once: about what a
# core's L2 holds (seven 512-wide RGB images).
_STACK_RING_BYTES = 1 << 20
_STACK_MOST = 8


@jit()
def _load_channel_rows(x: np.ndarray, row: int, ring: np.ndarray, slot: int) -> None:
    """Input row ``row`` of every channel into ``ring[channel, slot]``, converted once.

    Three channels (RGB) take one sweep along the interleaved row, which LLVM
    vectorises with shuffles; other counts read each channel with a stride of
    the channel count, one element at a time (for three channels that took
    three times as long).
    """
    if row < 0 or slot < 0:
        return
    width = x.shape[1]
    if x.shape[2] == 3:
        src = x[row].reshape(3 * width)
        r0 = ring[0, slot]
        r1 = ring[1, slot]
        r2 = ring[2, slot]
        for j in range(width):
            r0[j] = src[3 * j]
            r1[j] = src[3 * j + 1]
            r2[j] = src[3 * j + 2]
        return
    for c in range(x.shape[2]):
        for j in range(width):
            ring[c, slot, j] = x[row, j, c]


@jit()
def _average_channels(
    parts: np.ndarray, deficits: np.ndarray, n_out: int, total: np.ndarray, mean_deficit: np.ndarray
) -> None:
    """The channel means of a row's planes and deficits, in one pass per plane.

    ``parts[channel]`` holds a channel's combined row and ``deficits[channel]`` its
    deficits ``1 - ssim`` (float64, as the Gaussian comparison step makes them; the
    uniform one's float32 values are exact in float64). The averaged planes (not
    ``cs``) are summed in float32 in channel order and divided by the channel count
    in float32, as NumPy's ``+=`` and in-place ``/=`` on the float32 maps of
    ``KernelSpec.maps``; the deficits are summed in float64 and divided in float64
    (a channel mean in float32 would round by up to 6e-8 of itself, the same way on
    every pixel of a flat pair).
    """
    channels = parts.shape[0]
    if n_out < 0 or channels < 1:
        return
    divisor = np.float32(channels)
    if channels == 3:
        # The usual case in one sweep per plane: no row is stored and read back.
        for q in _AVERAGED_PLANES:
            dst = total[q]
            a = parts[0, q]
            b = parts[1, q]
            c = parts[2, q]
            for j in range(n_out):
                dst[j] = ((a[j] + b[j]) + c[j]) / divisor
        d0 = deficits[0]
        d1 = deficits[1]
        d2 = deficits[2]
        for j in range(n_out):
            mean_deficit[j] = (
                (np.float64(d0[j]) + np.float64(d1[j])) + np.float64(d2[j])
            ) / channels
        return
    for q in _AVERAGED_PLANES:
        dst = total[q]
        src = parts[0, q]
        for j in range(n_out):
            dst[j] = src[j]
        for c in range(1, channels):
            src = parts[c, q]
            for j in range(n_out):
                dst[j] += src[j]
        if channels > 1:
            for j in range(n_out):
                dst[j] = dst[j] / divisor
    d = deficits[0]
    for j in range(n_out):
        mean_deficit[j] = d[j]
    for c in range(1, channels):
        d = deficits[c]
        for j in range(n_out):
            mean_deficit[j] += d[j]
    if channels > 1:
        for j in range(n_out):
            mean_deficit[j] = mean_deficit[j] / channels


@jit()
def _load_pair(x: np.ndarray, y: np.ndarray, row: int, rings: np.ndarray, slot: int) -> None:
    """Input row ``row`` of both images into slot ``slot`` of their rings ``rings[0]``, ``[1]``."""
    _load_channel_rows(x, row, rings[0], slot)
    _load_channel_rows(y, row, rings[1], slot)


@jit()
def _reduce_row(
    parts: np.ndarray,
    deficits: np.ndarray,
    n_out: int,
    total: np.ndarray,
    mean_deficit: np.ndarray,
    packed_row: np.ndarray,
    map_sums: np.ndarray | None,
    i: int,
) -> None:
    """Output row ``i`` of every channel: averaged, reduced into ``packed_row``, added to the sums.

    The averaged row is still in L1: it is reduced before the next one overwrites it;
    ``map_sums`` (None: no sums) receives it as row ``i``.
    """
    _average_channels(parts, deficits, n_out, total, mean_deficit)
    add_row_partial(total[0], mean_deficit, total[2], total[3], total[4], n_out, packed_row)
    if map_sums is not None:
        add_map_row(total, n_out, map_sums, i)


@jit()
def _colour_chunks(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    bounds: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    shifts: np.ndarray,
    rings: np.ndarray | None,
    five: np.ndarray | None,
    sums: np.ndarray | None,
    isums: np.ndarray | None,
    packed: np.ndarray,
    map_sums: np.ndarray | None,
    taken: np.ndarray,
) -> None:
    """Row chunks of a ``(y, x, channel)`` pair into ``packed[chunk]``, until none is left.

    Output rows ``bounds[chunk]:bounds[chunk + 1]`` make a chunk, taken from the
    counter ``taken`` as in :func:`~pipeline.kernels.cpu.chunk.maps_chunks`. The window
    is the one whose state is given, the other is None (as in
    :func:`~pipeline.kernels.cpu.chunk.maps_chunks`, so that only its path
    is compiled): ``rings[chunk]``, a chunk's ``(2, channels, win_size,
    width)`` input rows of the Gaussian path (float32, or float64 for float64
    input; the six moments of :func:`~pipeline.kernels.cpu.gaussian.gaussian_row_m`,
    or with the marker ``five`` the five of
    :func:`~pipeline.kernels.cpu.gaussian.gaussian_row`, as in ``maps_chunks``),
    or ``sums[chunk]``, a chunk's ``(channels, 5, width)`` float64
    running column sums of the uniform path (restarted at each chunk) of the
    data less ``shifts[channel]`` (as in ``maps_chunks``), or
    ``isums[chunk]``, ``(channels, INT_ROWS, width)`` exact int32 sums for uint8 input
    (windows of at most ``INT_TAPS`` taps, as in ``maps_chunks``); both uniform paths add and
    remove rows of a ring of ``win_size + 1`` contiguous input rows per side and
    channel made here, in the input dtype. ``map_sums``, when given, adds the
    averaged rows in float64 (as ``maps_chunks`` does).
    """
    win_size = g.shape[0]
    width = x.shape[1]
    channels = x.shape[2]
    n_out = width - win_size + 1
    # Each channel's combined row and deficits 1 - ssim (see combine.combine_row),
    # then their channel means (the deficits' in float64: what the sums are made from).
    parts = np.empty((channels, 5, n_out), dtype=np.float32)
    # float64, as maps_chunks' deficit row: the channel mean of deficits near 1.
    deficits = np.empty((channels, n_out), dtype=np.float64)
    total = np.empty((5, n_out), dtype=np.float32)
    mean_deficit = np.empty(n_out)
    mo = np.empty(6 * ACC, dtype=np.float32)
    if rings is not None:
        g32 = g.astype(np.float32)
        # Zeros and eight rows, as maps_chunks (see gaussian.gaussian_row_m).
        col = np.zeros(8 * COL, dtype=np.float32)
        acc = np.empty(8 * ACC if five is not None else 0, dtype=np.float32)  # as maps_chunks
    # The uniform path's input rows, each channel's contiguous (the running sums add
    # and remove rows of strided channel views one element at a time otherwise): a
    # ring of win_size + 1 rows, the window's and the one leaving it, in the input dtype.
    slots = win_size + 1
    if rings is None:
        window = np.empty((2, channels, slots, width), dtype=x.dtype)
    if sums is not None:
        m = np.empty((5, n_out), dtype=np.float64)
        scale = g[0] * g[0]
    if isums is not None:
        im = np.empty((INT_ROWS, n_out), dtype=np.int32)

    n_chunks = bounds.shape[0] - 1
    while True:
        chunk = take_chunk(taken)
        if chunk >= n_chunks:
            break
        # Views that count no references for the row loop's calls, their owners used
        # again by the next chunk's lines here (as in maps_chunks; see borrowed).
        bx, by, bmo = borrowed(x), borrowed(y), borrowed(mo)
        bparts, bdeficits = borrowed(parts), borrowed(deficits)
        btotal, bmean = borrowed(total), borrowed(mean_deficit)
        row_packed = borrowed(packed[chunk])
        bmap_sums = borrowed(map_sums)
        row_start = bounds[chunk]
        row_stop = bounds[chunk + 1]
        if rings is not None:
            bg, bcol, bacc = borrowed(g32), borrowed(col), borrowed(acc)
            ring = borrowed(rings[chunk])
            for r in range(row_start, row_start + win_size - 1):
                _load_pair(bx, by, r, ring, r % win_size)
        else:
            bwindow = borrowed(window)
            for r in range(row_start, row_start + win_size):
                _load_pair(bx, by, r, bwindow, r % slots)
        if sums is not None:
            bm = borrowed(m)
            v = borrowed(sums[chunk])
            v[:, :, :] = 0.0
            for c in range(channels):
                for r in range(row_start, row_start + win_size):
                    add_row(bwindow[0, c], bwindow[1, c], r % slots, 1.0, shifts[c], v[c])
        if isums is not None:
            bim = borrowed(im)
            iv = borrowed(isums[chunk])
            iv[:, :, :] = 0
            for c in range(channels):
                for r in range(row_start, row_start + win_size):
                    add_row_int(bwindow[0, c], bwindow[1, c], r % slots, iv[c], False)

        for i in range(row_start, row_stop):
            new = i + win_size - 1
            if rings is not None:
                _load_pair(bx, by, new, ring, new % win_size)
            elif i > row_start:
                # The row entering the uniform window, in the slot of the one that left
                # it a row ago (the row leaving it now stays readable).
                _load_pair(bx, by, new, bwindow, new % slots)
            for c in range(channels):
                out = bparts[c]
                deficit = bdeficits[c]
                if rings is not None:
                    rx = ring[0, c]
                    ry = ring[1, c]
                    if five is not None:
                        gaussian_row(
                            rx, ry, bg, i, n_out, c1, c2, cov_norm, 5, bcol, bacc, bmo, out,
                            deficit,
                        )  # fmt: skip
                    else:
                        gaussian_row_m(
                            rx, ry, bg, i, n_out, c1, c2, cov_norm, 5, bcol, bmo, out, deficit
                        )
                if sums is not None:
                    if i > row_start:
                        old = (i - 1) % slots
                        swap_row(bwindow[0, c], bwindow[1, c], new % slots, old, shifts[c], v[c])
                    uniform_row(
                        v[c], bm, win_size, n_out, scale, shifts[c], c1, c2, cov_norm, 5, bmo,
                        out, deficit,
                    )  # fmt: skip
                if isums is not None:
                    if i > row_start:
                        old = (i - 1) % slots
                        swap_row_int(bwindow[0, c], bwindow[1, c], new % slots, old, iv[c])
                    uniform_row_int(
                        iv[c], bim, win_size, n_out, c1, c2, cov_norm, 5, bmo, out, deficit,
                        False,
                    )  # fmt: skip
            _reduce_row(bparts, bdeficits, n_out, btotal, bmean, row_packed, bmap_sums, i)


def _checked(
    x: Any, y: Any, weights: np.ndarray, bins: int, kernel: str, layout: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two arrays of ``layout`` (channels last) and one shape, and the checked window.

    ``kernel`` and ``layout`` name them in the error (``"(rows, cols, channels)"``, or
    with a leading image axis).
    """
    check_bins(bins)
    x = np.asarray(x)
    y = np.asarray(y)
    ndim = layout.count(",") + 1
    if x.ndim != ndim or x.shape != y.shape or x.shape[-1] < 1:
        raise ValueError(
            f"{kernel} needs two {layout} arrays of the same shape (got {x.shape} and {y.shape})"
        )
    return x, y, check_weights(weights, x.shape[-3:-1])


def fused_colour_packed_stats(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    bins: int,
    cov_norm: float = 1.0,
    threads: int | None = None,
    map_sums: np.ndarray | None = None,
) -> np.ndarray:
    """Packed region-``all`` statistics of the channel-averaged SSIM map of a colour block.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(rows, cols, channels)`` images of the same shape, channels last.
        uint8, uint16, float32 and float64 are read directly; other dtypes are
        cast to float64 first (as :func:`~pipeline.kernels.cpu.fused.fused_maps` does).
    weights : numpy.ndarray
        The separable 1-D window (:func:`pipeline.kernels.windows.window_weights`).
    uniform : bool
        The window is a box: running sums (see :mod:`pipeline.kernels.cpu.uniform`).
    c1, c2 : float
        ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``; ``C3 = C2 / 2``.
    bins : int
        Histogram bins over [-1, 1].
    cov_norm : float
        Factor on the local (co)variances (1, or ``N / (N - 1)`` for sample covariance).
    threads : int, optional
        As for :func:`~pipeline.kernels.cpu.fused.fused_maps`: ``None`` all of
        numba's threads, ``1`` the serial kernel on the calling thread (GIL
        released; Dask workers), ``n`` a parallel launch on ``n`` threads.
    map_sums : numpy.ndarray, optional
        ``(k >= 4, rows - win_size + 1, cols - win_size + 1)`` float64, C-contiguous:
        the channel-averaged ``ssim``, ``luminance``, ``contrast`` and ``structure``
        maps are added to its first four components in place, row by row in the
        same pass (summing several images' maps without storing one).

    Returns
    -------
    numpy.ndarray, shape ``(len(FIELDS) + bins,)``
        The row :func:`pipeline.reductions.statistics.block_statistics` gives for region
        ``all`` of the per-pixel channel means of the fused kernel's float32
        ``ssim``, ``luminance``, ``contrast`` and ``structure`` maps: count,
        sums, M2, min, max, histogram. The maps are never stored; the working
        memory is a few rows per thread.

    Examples
    --------
    >>> import numpy as np
    >>> from pipeline.kernels import window_weights
    >>> from pipeline.kernels.statistics import COUNT, SUM
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    >>> packed = fused_colour_packed_stats(
    ...     x, x, weights=window_weights("gaussian", 7, 1.5), uniform=False,
    ...     c1=(0.01 * 255) ** 2, c2=(0.03 * 255) ** 2, bins=10)
    >>> float(packed[SUM] / packed[COUNT])
    1.0
    """
    x, y, g = _checked(x, y, weights, bins, "the fused colour kernel", "(rows, cols, channels)")
    x, y = kernel_inputs(x, y)
    dtype = x.dtype
    win_size = g.shape[0]
    # Same threads and row chunks as fused_maps on each channel: the uniform
    # path's running sums restart at the same rows, so every value agrees.
    n_threads = plan_threads(threads, x.shape[:2], win_size, uniform=uniform)
    bounds = row_bounds(x.shape[0] - win_size + 1, n_threads, win_size, uniform)
    n_chunks = bounds.shape[0] - 1
    packed = empty_statistics(n_chunks, 1, int(bins))[:, 0]
    # Each chunk's state of its window's path, per side and channel (see fused._launch).
    channels, width = x.shape[2], x.shape[1]
    ring_dtype = np.float64 if dtype == np.float64 else np.float32
    stride = ring_width(width, np.dtype(ring_dtype).itemsize)
    ring_shape = (n_chunks, 2, channels, win_size, stride)
    rings = None if uniform else aligned_empty(ring_shape, ring_dtype)
    five = five_moment_marker(uniform, win_size)  # as fused._launch
    # uint8 under a uniform window of at most INT_TAPS taps: exact int32 sums (as fused._launch).
    exact = uniform and dtype == np.uint8 and win_size <= INT_TAPS
    sums = np.empty((n_chunks, channels, 5, width)) if uniform and not exact else None
    shifts = np.zeros(channels)
    if sums is not None:
        shifts[:] = [data_shift(x[..., c], y[..., c]) for c in range(channels)]
    isums = np.empty((n_chunks, channels, INT_ROWS, width), dtype=np.int32) if exact else None
    check_map_sums(map_sums, (x.shape[0] - win_size + 1, x.shape[1] - win_size + 1))
    args = (
        x, y, g, bounds, float(c1), float(c2), float(cov_norm), shifts, rings, five, sums,
        isums, packed, map_sums,
    )  # fmt: skip
    run_kernel(_colour_chunks, n_threads, n_chunks, args)
    if n_chunks == 1:
        return packed[0]
    return np.asarray(merge_statistics(packed, axis=0))


@jit()
def _colour_stack(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    rings: np.ndarray,
    packed: np.ndarray,
    map_sums: np.ndarray,
    summed: np.ndarray,
) -> None:
    """:func:`_colour_chunks` of a stack's images, one chunk each, serially, the sums shared.

    ``x``, ``y``: ``(image, y, x, channel)``; the Gaussian path of odd windows of up to
    ``SCORE_TAPS`` taps only (six moments). The images go in groups of
    ``rings.shape[0]``, each with its own ring, and within a group row by row: row
    ``i`` of every image of the group, then row ``i + 1``. Each image's rows, and so
    its ``packed[image]``, are those of a one-chunk call; ``map_sums`` receives the
    rows of the images whose ``summed`` flag is set, each pixel's images in their
    order, so its values are those of the calls image after image too (the same
    bits). What changes is that a row of the sums is added to by the whole group while
    it is in cache, and one compiled call serves the stack.
    """
    n_images = x.shape[0]
    group = rings.shape[0]
    win_size = g.shape[0]
    width = x.shape[2]
    channels = x.shape[3]
    n_out = width - win_size + 1
    n_rows = x.shape[1] - win_size + 1
    if n_out <= 0 or n_rows <= 0 or group < 1:
        return
    parts = np.empty((channels, 5, n_out), dtype=np.float32)
    deficits = np.empty((channels, n_out), dtype=np.float64)
    total = np.empty((5, n_out), dtype=np.float32)
    mean_deficit = np.empty(n_out)
    mo = np.empty(6 * ACC, dtype=np.float32)
    g32 = g.astype(np.float32)
    col = np.zeros(8 * COL, dtype=np.float32)
    for start in range(0, n_images, group):
        # Views that count no references for the row loop's calls, their owners used
        # again by the next group's lines here (as in maps_chunks; see borrowed).
        bx, by, brings, bpacked = borrowed(x), borrowed(y), borrowed(rings), borrowed(packed)
        bg, bcol, bmo, bmap_sums = borrowed(g32), borrowed(col), borrowed(mo), borrowed(map_sums)
        bparts, bdeficits = borrowed(parts), borrowed(deficits)
        btotal, bmean = borrowed(total), borrowed(mean_deficit)
        stop = min(n_images, start + group)
        for k in range(start, stop):
            ring = brings[k - start]
            for r in range(win_size - 1):
                _load_pair(bx[k], by[k], r, ring, r % win_size)
        for i in range(n_rows):
            new = i + win_size - 1
            for k in range(start, stop):
                ring = brings[k - start]
                _load_pair(bx[k], by[k], new, ring, new % win_size)
                for c in range(channels):
                    gaussian_row_m(
                        ring[0, c], ring[1, c], bg, i, n_out, c1, c2, cov_norm, 5, bcol, bmo,
                        bparts[c], bdeficits[c],
                    )  # fmt: skip
                # Two calls, not one with "map_sums if ... else None": an optional array
                # made the stack ~4 % slower.
                if summed[k]:
                    _reduce_row(bparts, bdeficits, n_out, btotal, bmean, bpacked[k], bmap_sums, i)
                else:
                    _reduce_row(bparts, bdeficits, n_out, btotal, bmean, bpacked[k], None, i)


def fused_colour_packed_stats_stack(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    bins: int,
    cov_norm: float = 1.0,
    map_sums: np.ndarray,
    summed: Any = None,
) -> np.ndarray | None:
    """:func:`fused_colour_packed_stats` of every image of a stack, serially, into one ``map_sums``.

    ``x``, ``y``: ``(image, rows, cols, channels)`` of one shape. The same packed rows,
    ``(image, len(FIELDS) + bins)``, and the same ``map_sums``, bit for bit, as
    ``fused_colour_packed_stats(x[i], y[i], threads=1, map_sums=...)`` image after image
    (an image whose ``summed`` flag is False, as with ``map_sums=None``): what a Dask
    task of several images computes for a run with mean maps. It runs the images of a
    group side by side, row by row (:func:`_colour_stack`), so that each row of the
    float64 sums, which every image reads and writes, is added to by the group while
    it is in cache; and it is one compiled call, not one per image.

    Gaussian windows only (``weights`` of the Gaussian path: the uniform window's
    running sums restart in chunks). None for a window the six-moment path does not
    take (even, or wider than ``SCORE_TAPS``): call :func:`fused_colour_packed_stats`
    per image then.
    """
    x, y, g = _checked(
        x, y, weights, bins, "the stacked colour kernel", "(image, rows, cols, channels)"
    )
    win_size = g.shape[0]
    if five_moment_marker(False, win_size) is not None:
        return None
    x, y = kernel_inputs(x, y)
    dtype = x.dtype
    n, height, width, channels = x.shape
    check_map_sums(map_sums, (height - win_size + 1, width - win_size + 1))
    flags = np.ones(n, dtype=np.bool_) if summed is None else np.asarray(summed, dtype=np.bool_)
    if flags.shape != (n,):
        raise ValueError(f"summed must hold one flag per image ({n}; got shape {flags.shape})")
    ring_dtype = np.float64 if dtype == np.float64 else np.float32
    stride = ring_width(width, np.dtype(ring_dtype).itemsize)
    ring_bytes = 2 * channels * win_size * stride * np.dtype(ring_dtype).itemsize
    group = int(max(1, min(_STACK_MOST, n, _STACK_RING_BYTES // ring_bytes)))
    rings = aligned_empty((group, 2, channels, win_size, stride), ring_dtype)
    packed = empty_statistics(n, 1, int(bins))[:, 0]
    _colour_stack(x, y, g, float(c1), float(c2), float(cov_norm), rings, packed, map_sums, flags)
    return packed
