"""Chunks of output rows of the fused CPU kernel: the compiled entry point.

:func:`maps_chunks` walks the row chunks it takes, each top to bottom: it
keeps the Gaussian path's ring of input rows (:mod:`pipeline.kernels.cpu.gaussian`)
or the uniform path's running column sums (:mod:`pipeline.kernels.cpu.uniform`)
up to date, and writes each output row into the maps or reduces it while it is
in L1 (the score's single sum of the deficits ``1 - ssim``, or the packed row of
:mod:`pipeline.kernels.statistics`,
and optionally the float64 sums of the valid maps over the images of a block: the
mean maps, without a second pass).
:func:`pipeline.kernels.cpu.launch.run_kernel` calls it once on the calling
thread (GIL released), or once on each thread of a launch; the threads take the
chunks from one counter.

Compile only what a run needs. The window's state and the outputs are arrays,
or None where a run does not use them (``rings`` for a Gaussian window, ``sums``
for a uniform one; ``maps``, ``scores``, ``packed``). numba types None apart
from an array and, before it types a function, drops every ``if arg is not
None`` branch whose ``arg`` is None, so each combination compiles only its own
path: a map run never compiles the packed statistics (the histogram kernels
behind them), a Gaussian run never the running sums. (Only a None argument
decides a branch this way: an ``else`` of such a test is always compiled, so
each path tests its own argument.) One entry point and no ``parallel=True``
twin: every kernel a compiled function calls is compiled again inside it, so
each extra entry point costs seconds of a first run.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.combine import ACC, COL, borrowed, jit
from pipeline.kernels.cpu.gaussian import (
    gaussian_row,
    gaussian_row_m,
    gaussian_score_row,
    gaussian_sd_row,
    load_row,
    load_rows_sd,
)
from pipeline.kernels.cpu.launch import take_chunk
from pipeline.kernels.cpu.partials import add_row_partial
from pipeline.kernels.cpu.uniform import (
    INT_ROWS,
    add_row,
    add_row_int,
    swap_row,
    swap_row_int,
    swap_row_int_score,
    uniform_row,
    uniform_row_int,
)

__all__ = ["add_map_row", "maps_chunks"]


@jit(fastmath={"reassoc"})
def _row_sum(deficit: np.ndarray, n_out: int) -> float:
    """float64 sum of the row's SSIM, ``n_out - sum(deficit[:n_out])``, vectorised.

    Summed from the deficits ``1 - ssim`` that the comparison step keeps to
    float32's relative precision, not from the float32 map, which rounds by up
    to 3e-8 near 1 (:func:`~pipeline.kernels.cpu.combine.combine_row`).
    Reordering a float64 sum moves it by ~1e-16 relative; a row of zero
    deficits still sums to exactly ``n_out``.
    """
    if n_out < 0:
        return 0.0
    total = 0.0
    for j in range(n_out):
        total += deficit[j]
    return n_out - total


@jit()
def add_map_row(out: np.ndarray, n_out: int, map_sums: np.ndarray, i: int) -> None:
    """``map_sums[:4, i, :n_out] +=`` the row's ssim, luminance, contrast, structure (float64).

    ``out`` is a combined row (planes ``ssim, cs, luminance, contrast, structure``);
    ``map_sums`` the ``(components, rows, cols)`` float64 sums of several images' valid
    maps, its first four components those maps (four contiguous, vectorised adds).
    """
    for k in range(4):
        src = out[0 if k == 0 else k + 1]
        dst = map_sums[k, i]
        for j in range(n_out):
            dst[j] += np.float64(src[j])


@jit()
def maps_chunks(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    bounds: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    shift: float,
    rings: np.ndarray | None,
    score_rows: np.ndarray | None,
    sd_maps: np.ndarray | None,
    five: np.ndarray | None,
    summed: bool,
    sums: np.ndarray | None,
    isums: np.ndarray | None,
    maps: np.ndarray | None,
    deficit_map: np.ndarray | None,
    scores: np.ndarray | None,
    packed: np.ndarray | None,
    map_sums: np.ndarray | None,
    taken: np.ndarray,
) -> None:
    """Row chunks (output rows ``bounds[chunk]:bounds[chunk + 1]``) until none is left.

    Each chunk is taken with :func:`~pipeline.kernels.cpu.launch.take_chunk` from
    ``taken``, the counter the threads of a launch share (zeros for one thread).

    The window is the one whose state is given, the other is None:
    ``rings[chunk]``, a chunk's ``(2, win_size, width)`` input rows of the
    Gaussian path (float32, or float64 for float64 input), or ``sums[chunk]``,
    a chunk's ``(5, width)`` float64 running column sums of the uniform path
    (restarted at each chunk) of the data less ``shift``
    (:func:`~pipeline.kernels.cpu.uniform.data_shift`), or ``isums[chunk]``,
    ``(INT_ROWS, width)`` exact int32 sums for uint8 input (the two means packed in
    one row, :mod:`pipeline.kernels.cpu.uniform`; windows of at most
    ``INT_TAPS`` taps). With ``rings``, ``score_rows[chunk]`` (float64, ``n_out``
    wide; only for a score without maps, odd windows of up to ``SCORE_TAPS`` taps)
    takes each row's deficits from the sum/difference path
    (:func:`~pipeline.kernels.cpu.gaussian.gaussian_score_row`; with ``summed``
    its ring holds ``x + y`` and ``x - y``); with ``sd_maps`` (any array: a marker,
    for maps without components under the same windows) the ssim and cs rows come
    from the same ring and passes
    (:func:`~pipeline.kernels.cpu.gaussian.gaussian_sd_row`); otherwise the rows come
    from the six moments of :func:`~pipeline.kernels.cpu.gaussian.gaussian_row_m`, or,
    with ``five`` (a marker as well: even windows or more than ``SCORE_TAPS`` taps), the
    five of :func:`~pipeline.kernels.cpu.gaussian.gaussian_row`. Each marker is None or
    not at compile time, so a kernel holds the one path it runs. The outputs that are
    not None receive the rows:
    ``maps[rows, planes, cols]`` (planes ``ssim, cs`` and, with
    ``components``, ``luminance, contrast, structure``); ``deficit_map[rows, cols]``
    the float64 deficits ``1 - ssim``; ``scores[chunk]`` the
    chunk's ``count, ssim_sum`` (the sum from the float64 sum of the deficits
    ``1 - ssim``, see :func:`~pipeline.kernels.cpu.combine.combine_row`; with or
    without ``maps`` in the same pass); ``packed[chunk]`` the chunk's packed
    region-``all`` row of :mod:`pipeline.kernels.statistics` (its histogram fields
    over ``bin_edges`` of their count; needs ``components``);
    ``map_sums[:4, rows, cols]`` adds the ``ssim``, ``luminance``, ``contrast`` and
    ``structure`` rows in float64 (the sum of several images' maps, one call per
    image; needs ``components``).
    """
    win_size = g.shape[0]
    width = x.shape[1]
    n_out = width - win_size + 1
    scratch = np.empty((5, n_out), dtype=np.float32)
    # Planes of ``out`` the comparison step writes: all five with components, ssim
    # and cs for maps without, none for the score, which needs only the deficits.
    planes = 5 if components else (2 if maps is not None else 0)
    # 1 - ssim of the current row (see combine_row): what the sums are made from. float64:
    # where SSIM is near 0 the deficit is near 1, and float32 would round it by up to 3e-8,
    # alike on every pixel of a flat region (the comparison steps that make it in float64
    # keep it so; the others' float32 values are stored exactly).
    deficit = np.empty(n_out, dtype=np.float64)
    # Six rows: the moments of the Gaussian maps path (see gaussian_row_m) and of the
    # uniform window (see uniform.uniform_row), five elsewhere; the score's four and,
    # where data lie far outside their range, their two-part twins (gaussian._sd_moments).
    mo = np.empty(8 * ACC, dtype=np.float32)
    if rings is not None:
        g32 = g.astype(np.float32)
        # Zeros: the sweeps of odd windows of <= SCORE_TAPS taps read columns no tile
        # wrote, with weight 0. Eight rows: the maps path's column statistics.
        col = np.zeros(8 * COL, dtype=np.float32)
        # The five-moment passes' accumulators; the other Gaussian paths keep theirs in
        # registers.
        acc = np.empty(8 * ACC if five is not None else 0, dtype=np.float32)
    if sums is not None:
        m = np.empty((5, n_out), dtype=np.float64)
        # Uniform sums are raw; scale them once to the window mean (the
        # product of the two 1-D tap values).
        scale = g[0] * g[0]
    if isums is not None:
        im = np.empty((INT_ROWS, n_out), dtype=np.int32)

    n_chunks = bounds.shape[0] - 1
    while True:
        chunk = take_chunk(taken)
        if chunk >= n_chunks:
            break
        # The row loop's calls take views that count no references (see borrowed):
        # the owners are the arguments and this function's buffers, used again by the
        # next chunk's lines here, so alive until the loop ends. The tests of None stay
        # on the arguments, so that numba still compiles only the paths a run takes.
        bx, by = borrowed(x), borrowed(y)
        bscratch, bdeficit, bmo = borrowed(scratch), borrowed(deficit), borrowed(mo)
        bmaps, bdeficit_map = borrowed(maps), borrowed(deficit_map)
        bpacked, bmap_sums = borrowed(packed), borrowed(map_sums)
        row_start = bounds[chunk]
        row_stop = bounds[chunk + 1]
        if score_rows is not None:
            srow = borrowed(score_rows[chunk])
        if rings is not None:
            bg, bcol, bacc = borrowed(g32), borrowed(col), borrowed(acc)
            rx = borrowed(rings[chunk, 0])
            ry = borrowed(rings[chunk, 1])
            for r in range(row_start, row_start + win_size - 1):
                if score_rows is not None:
                    load_rows_sd(bx, by, r, rx, ry, r % win_size, summed)
                elif sd_maps is not None:
                    load_rows_sd(bx, by, r, rx, ry, r % win_size, summed)
                else:
                    load_row(bx, r, rx, r % win_size)
                    load_row(by, r, ry, r % win_size)
        if sums is not None:
            bm = borrowed(m)
            v = borrowed(sums[chunk])
            v[:, :] = 0.0
            for k in range(win_size):
                add_row(bx, by, row_start + k, 1.0, shift, v)
        if isums is not None:
            bim = borrowed(im)
            iv = borrowed(isums[chunk])
            iv[:, :] = 0
            for k in range(win_size):
                add_row_int(bx, by, row_start + k, iv, score_rows is not None)
        count = 0.0
        ssim_sum = 0.0
        for i in range(row_start, row_stop):
            # The deficits go to the row buffer, or straight to ``deficit_map`` when it
            # is given (stored with the maps, for statistics reduced later).
            row_deficit = bdeficit if deficit_map is None else bdeficit_map[i]
            out = bscratch if maps is None else bmaps[i]
            if rings is not None:
                last = i + win_size - 1
                if score_rows is not None:
                    load_rows_sd(bx, by, last, rx, ry, last % win_size, summed)
                    gaussian_score_row(
                        rx, ry, bg, i, n_out, c1, c2, cov_norm, summed, bcol, bmo, srow
                    )  # fmt: skip
                elif sd_maps is not None:
                    load_rows_sd(bx, by, last, rx, ry, last % win_size, summed)
                    gaussian_sd_row(
                        rx, ry, bg, i, n_out, c1, c2, cov_norm, summed, planes, bcol, bmo, out,
                        row_deficit,
                    )  # fmt: skip
                else:
                    load_row(bx, last, rx, last % win_size)
                    load_row(by, last, ry, last % win_size)
                    if five is not None:
                        gaussian_row(
                            rx, ry, bg, i, n_out, c1, c2, cov_norm, planes, bcol, bacc, bmo,
                            out, row_deficit,
                        )  # fmt: skip
                    else:
                        gaussian_row_m(
                            rx, ry, bg, i, n_out, c1, c2, cov_norm, planes, bcol, bmo, out,
                            row_deficit,
                        )  # fmt: skip
            if sums is not None:
                if i > row_start:
                    swap_row(bx, by, i + win_size - 1, i - 1, shift, v)
                uniform_row(
                    v, bm, win_size, n_out, scale, shift, c1, c2, cov_norm, planes, bmo, out,
                    row_deficit,
                )  # fmt: skip
            if isums is not None:
                if score_rows is not None:
                    if i > row_start:
                        swap_row_int_score(bx, by, i + win_size - 1, i - 1, iv)
                    uniform_row_int(
                        iv, bim, win_size, n_out, c1, c2, cov_norm, planes, bmo, out, srow, True
                    )  # fmt: skip
                else:
                    if i > row_start:
                        swap_row_int(bx, by, i + win_size - 1, i - 1, iv)
                    uniform_row_int(
                        iv, bim, win_size, n_out, c1, c2, cov_norm, planes, bmo, out,
                        row_deficit, False,
                    )  # fmt: skip
            if scores is not None:
                # The score: the mean needs one sum, which vectorises.
                if score_rows is not None:
                    ssim_sum += _row_sum(srow, n_out)
                else:
                    ssim_sum += _row_sum(row_deficit, n_out)
                count += n_out
            if packed is not None:
                # The row is still in L1: reduce it before the next one overwrites it.
                add_row_partial(out[0], row_deficit, out[2], out[3], out[4], n_out, bpacked[chunk])
            if map_sums is not None:
                add_map_row(out, n_out, bmap_sums, i)
        if scores is not None:
            scores[chunk, 0] = count
            scores[chunk, 1] = ssim_sum
