"""A chunk of output rows of the fused CPU kernel: one thread's work.

:func:`_maps_chunk` walks its rows top to bottom, keeps the Gaussian path's
ring of input rows (:mod:`pipeline.kernels.fused_gaussian`) or the uniform
path's running column sums (:mod:`pipeline.kernels.fused_uniform`) up to date,
and writes each output row into the maps or reduces it while it is in L1 (the
score's single sum, or the packed row of :mod:`pipeline.reductions`).
:func:`_maps_serial` runs the chunks on the calling thread (GIL released),
:func:`_maps_parallel` over numba's thread pool; :func:`pipeline.kernels.fused._launch` picks one.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipeline.kernels.fused_combine import _ACC, _COL, _jit
from pipeline.kernels.fused_gaussian import _gaussian_row, _load_row
from pipeline.kernels.fused_uniform import _add_row, _swap_row, _uniform_row
from pipeline.reductions import add_row_partial


@_jit(fastmath={"reassoc"})
def _row_sum(out: np.ndarray, n_out: int) -> float:
    """float64 sum of ``out[0, :n_out]`` (the SSIM row), in any order so that it vectorises.

    Reordering a float64 sum of float32 values moves it by ~1e-16 relative;
    a row of ones still sums to exactly ``n_out``.
    """
    if n_out < 0:
        return 0.0
    total = 0.0
    for j in range(n_out):
        total += np.float64(out[0, j])
    return total


@_jit()
def _maps_chunk(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    uniform: bool,
    row_start: int,
    row_stop: int,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    write_maps: bool,
    maps: np.ndarray,
    stats: np.ndarray,
    packed: np.ndarray,
    ring: np.ndarray,
) -> None:
    """Output rows ``row_start:row_stop``: into ``maps[rows, planes, cols]``, ``stats[2]``
    or ``packed``.

    ``maps`` planes are ``ssim, cs`` and, with ``components``, ``luminance,
    contrast, structure``; with ``write_maps=False`` the rows go to a scratch
    buffer and only their statistics are kept: ``count, ssim_sum`` (the score)
    into ``stats`` when it is not empty, and the packed region-``all`` row of
    :mod:`pipeline.reductions` (its histogram fields over ``bin_edges`` of their
    count) into ``packed`` when that is not empty (needs ``components``). ``ring`` is this chunk's
    ``(2, win_size, width)`` row buffer of the Gaussian path (float32, or
    float64 for float64 input).
    """
    win_size = g.shape[0]
    width = x.shape[1]
    n_out = width - win_size + 1
    scratch = np.empty((5, n_out), dtype=np.float32)
    mo = np.empty(5 * _ACC, dtype=np.float32)
    g32 = g.astype(np.float32)
    if uniform:
        v = np.empty((5, width), dtype=np.float64)
        m = np.empty((5, n_out), dtype=np.float64)
        # Uniform sums are raw; scale them once to the window mean (the
        # product of the two 1-D tap values).
        scale = g[0] * g[0]
        v[:, :] = 0.0
        for k in range(win_size):
            _add_row(x, y, row_start + k, 1.0, v)
    else:
        col = np.empty(7 * _COL, dtype=np.float32)
        acc = np.empty(8 * _ACC, dtype=np.float32)
        rx = ring[0]
        ry = ring[1]
        for r in range(row_start, row_start + win_size - 1):
            _load_row(x, r, rx, r % win_size)
            _load_row(y, r, ry, r % win_size)

    count = 0.0
    ssim_sum = 0.0

    for i in range(row_start, row_stop):
        out = maps[i] if write_maps else scratch
        if uniform:
            if i > row_start:
                _swap_row(x, y, i + win_size - 1, i - 1, v)
            _uniform_row(v, m, win_size, n_out, scale, c1, c2, cov_norm, components, mo, out)
        else:
            last = i + win_size - 1
            _load_row(x, last, rx, last % win_size)
            _load_row(y, last, ry, last % win_size)
            _gaussian_row(rx, ry, g32, i, n_out, c1, c2, cov_norm, components, col, acc, mo, out)
        if stats.shape[0] > 0:
            # The score: the mean needs one sum, which vectorises.
            ssim_sum += _row_sum(out, n_out)
            count += n_out
        if packed.shape[0] > 0:
            # The row is still in L1: reduce it before the next one overwrites it.
            add_row_partial(out[0], out[2], out[3], out[4], n_out, packed)
    if stats.shape[0] > 0:
        stats[0] = count
        stats[1] = ssim_sum


@_jit(parallel=True)
def _maps_parallel(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    uniform: bool,
    bounds: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    write_maps: bool,
    maps: np.ndarray,
    stats: np.ndarray,
    packed: np.ndarray,
    rings: np.ndarray,
) -> None:
    for chunk in prange(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk], packed[chunk], rings[chunk],
        )  # fmt: skip


@_jit()
def _maps_serial(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    uniform: bool,
    bounds: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    write_maps: bool,
    maps: np.ndarray,
    stats: np.ndarray,
    packed: np.ndarray,
    rings: np.ndarray,
) -> None:
    for chunk in range(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk], packed[chunk], rings[chunk],
        )  # fmt: skip
