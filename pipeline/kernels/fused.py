"""Fused, compiled SSIM maps of a 2-D block on the CPU (numba).

Same numbers as :func:`pipeline.kernels.reference.ssim_maps` (within 1e-5,
usually ~1e-7), without its five full-size float64 moment images: each output
row is made from a small row buffer, so the working memory is O(width) per
thread and the only large arrays are the maps that are returned.

How one output row ``i`` of the 'valid' map is made:

* Gaussian window (separable, Wang et al. 2004 sec. III-C): a vertical 1-D pass
  over input rows ``i .. i + win_size - 1`` gives the five moment rows
  (x, y, x^2, y^2, xy) for every input column, then a horizontal 1-D pass
  gives the windowed moments ``mu_x, mu_y, E[x^2], E[y^2], E[xy]`` of the row.
* Uniform window: the vertical sums are running sums (add the row entering the
  window, subtract the row leaving it) and the horizontal sums slide along the
  row, so the cost per pixel does not depend on ``win_size``. Each chunk of
  rows restarts its sums from scratch, which bounds rounding drift for float
  input (integer input is summed exactly).

Precision: the moments are accumulated in float64. ``sigma_x^2 = E[x^2] -
mu_x^2`` cancels catastrophically in float32 for data far from zero (uint8
near 255 already loses ~1e-4 of ``cs`` in flat regions; uint16 near 60000 far
more), and a per-block offset does not fix windows in flat parts of a block
that also holds an edge. Every uint8/uint16/float32 pixel and every product of
two integer pixels is exact in float64, so the moments equal the reference's.
The final comparison (two divisions per pixel, three more with components) is
done in float32 once the variances exist: all its terms are non-negative or
bounded by the denominator (``|2 sigma_xy| <= sigma_x^2 + sigma_y^2``), so it
adds only ~1e-7. Maps are returned as float32; callers average them in float64.

Threads: ``*_parallel`` kernels split the rows over numba's thread pool (all
cores it is given); ``*_serial`` kernels run on the calling thread and release
the GIL, so many Dask worker threads may call them at once. Choose through
:func:`fused_maps`'s ``threads`` argument.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numba
import numpy as np
from numba import njit, prange

__all__ = ["FUSED_DTYPES", "STAT_NAMES", "fused_block_stats", "fused_maps"]

#: Input dtypes the compiled kernels read directly; anything else is cast to float64 first.
FUSED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))

#: Columns of :func:`fused_block_stats`'s result.
STAT_NAMES = (
    "count",
    "ssim_sum",
    "ssim_sum_sq",
    "ssim_min",
    "ssim_max",
    "luminance_sum",
    "contrast_sum",
    "structure_sum",
    "cs_sum",
)

# numba's default 'workqueue' threading layer aborts when two threads launch
# parallel kernels at once; the OpenMP and TBB layers are safe but would then
# oversubscribe the cores. Parallel launches therefore take turns.
_PARALLEL_LOCK = threading.Lock()

# Below this many output pixels (~1 ms of serial work) a call stays serial.
_PARALLEL_MIN_PIXELS = 128 * 128


# ---------------------------------------------------------------------------
# One output row: moments -> comparison maps
#
# All kernels use error_model="numpy": Python's ZeroDivisionError check puts a
# branch in every division and stops LLVM from vectorising the loops (the
# denominators here are >= C1 or C2 > 0 anyway). No fastmath, not even FMA
# contraction: it made no measurable difference here and breaks the exact
# symmetry and identity (ssim(x, x) == 1) of the map. Buffers are 2-D (moment,
# column) so that each loop touches few distinct arrays and LLVM's runtime
# alias checks stay within its budget.

# Output columns per tile of the Gaussian path: 2 x 5 float64 rows of ~256
# values (~21 KB) stay in a 32-48 KB L1 data cache.
_TILE = 256


def _jit(*, parallel: bool = False) -> Any:
    """numba's ``njit`` with this module's options (cached, GIL released, numpy errors)."""
    return njit(cache=True, nogil=True, error_model="numpy", parallel=parallel)


@_jit()
def _combine_row(
    m: np.ndarray,
    n_out: int,
    scale: float,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    out: np.ndarray,
    o0: int,
) -> None:
    """Luminance, contrast, structure, cs and SSIM (eqs. 6-13) from windowed moment sums.

    ``m[:, :n_out]`` rows are the sums of x, y, x^2, y^2 and xy; ``out[:, o0:o0 + n_out]``
    rows receive ssim, cs and, with ``components``, luminance, contrast, structure.
    Buffers are passed whole with explicit extents: a column slice of a 2-D
    array is non-contiguous to numba, and that stops vectorisation.
    """
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if o0 < 0 or n_out < 0:
        return
    c1_32 = np.float32(c1)
    c2_32 = np.float32(c2)
    c3_32 = np.float32(c2 / 2)
    two = np.float32(2.0)
    zero = np.float32(0.0)
    # Two loops rather than a branch inside one, so that each vectorises.
    if not components:
        for j in range(n_out):
            mu_x = m[0, j] * scale
            mu_y = m[1, j] * scale
            # The cancellation happens here, so it stays in float64.
            sigma_x_sq = np.float32(cov_norm * (m[2, j] * scale - mu_x * mu_x))
            sigma_y_sq = np.float32(cov_norm * (m[3, j] * scale - mu_y * mu_y))
            sigma_xy = np.float32(cov_norm * (m[4, j] * scale - mu_x * mu_y))
            mu_x32 = np.float32(mu_x)
            mu_y32 = np.float32(mu_y)
            luminance = (two * mu_x32 * mu_y32 + c1_32) / (
                mu_x32 * mu_x32 + mu_y32 * mu_y32 + c1_32
            )
            cs = (two * sigma_xy + c2_32) / (sigma_x_sq + sigma_y_sq + c2_32)
            out[0, o0 + j] = luminance * cs
            out[1, o0 + j] = cs
        return
    for j in range(n_out):
        mu_x = m[0, j] * scale
        mu_y = m[1, j] * scale
        sigma_x_sq = np.float32(cov_norm * (m[2, j] * scale - mu_x * mu_x))
        sigma_y_sq = np.float32(cov_norm * (m[3, j] * scale - mu_y * mu_y))
        sigma_xy = np.float32(cov_norm * (m[4, j] * scale - mu_x * mu_y))
        mu_x32 = np.float32(mu_x)
        mu_y32 = np.float32(mu_y)
        luminance = (two * mu_x32 * mu_y32 + c1_32) / (mu_x32 * mu_x32 + mu_y32 * mu_y32 + c1_32)
        denominator = sigma_x_sq + sigma_y_sq + c2_32
        cs = (two * sigma_xy + c2_32) / denominator
        # Rounding can leave a variance a hair below zero; the square root needs >= 0.
        sigma_x = np.sqrt(max(sigma_x_sq, zero))
        sigma_y = np.sqrt(max(sigma_y_sq, zero))
        out[0, o0 + j] = luminance * cs
        out[1, o0 + j] = cs
        out[2, o0 + j] = luminance
        out[3, o0 + j] = (two * sigma_x * sigma_y + c2_32) / denominator
        out[4, o0 + j] = (sigma_xy + c3_32) / (sigma_x * sigma_y + c3_32)


# ---------------------------------------------------------------------------
# Moment rows: Gaussian (separable taps) and uniform (running sums)


@_jit()
def _vertical_taps(
    x: np.ndarray, y: np.ndarray, g: np.ndarray, i: int, j0: int, width: int, k: int, v: np.ndarray
) -> int:
    """Add taps ``k .. k+3`` (or what is left) of the vertical pass into ``v``; the next tap.

    ``v[:, j]`` collects input column ``j0 + j`` for ``j < width``. Four taps per sweep: each
    sweep loads and stores the five moment rows once, so fewer sweeps means
    less memory traffic per pixel. Pixel products are formed before the
    weight (``g * (a * b)``): exact for integer pixels, and the same for
    ``(x, y)`` and ``(y, x)``, so SSIM stays exactly symmetric and
    ``ssim(x, x) == 1``.
    """
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if i < 0 or j0 < 0 or width < 0 or k < 0:
        return g.shape[0]
    if k + 4 <= g.shape[0]:
        g0 = g[k]
        g1 = g[k + 1]
        g2 = g[k + 2]
        g3 = g[k + 3]
        for j in range(width):
            a0 = np.float64(x[i + k, j0 + j])
            a1 = np.float64(x[i + k + 1, j0 + j])
            a2 = np.float64(x[i + k + 2, j0 + j])
            a3 = np.float64(x[i + k + 3, j0 + j])
            b0 = np.float64(y[i + k, j0 + j])
            b1 = np.float64(y[i + k + 1, j0 + j])
            b2 = np.float64(y[i + k + 2, j0 + j])
            b3 = np.float64(y[i + k + 3, j0 + j])
            v[0, j] += (g0 * a0 + g1 * a1) + (g2 * a2 + g3 * a3)
            v[1, j] += (g0 * b0 + g1 * b1) + (g2 * b2 + g3 * b3)
            v[2, j] += (g0 * (a0 * a0) + g1 * (a1 * a1)) + (g2 * (a2 * a2) + g3 * (a3 * a3))
            v[3, j] += (g0 * (b0 * b0) + g1 * (b1 * b1)) + (g2 * (b2 * b2) + g3 * (b3 * b3))
            v[4, j] += (g0 * (a0 * b0) + g1 * (a1 * b1)) + (g2 * (a2 * b2) + g3 * (a3 * b3))
        return k + 4
    gk = g[k]
    for j in range(width):
        a = np.float64(x[i + k, j0 + j])
        b = np.float64(y[i + k, j0 + j])
        v[0, j] += gk * a
        v[1, j] += gk * b
        v[2, j] += gk * (a * a)
        v[3, j] += gk * (b * b)
        v[4, j] += gk * (a * b)
    return k + 1


@_jit()
def _horizontal_taps(g: np.ndarray, k: int, v: np.ndarray, m: np.ndarray, n_out: int) -> int:
    """Add taps ``k .. k+3`` (or what is left) of the horizontal pass into ``m[:, :n_out]``."""
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if k < 0 or n_out < 0:
        return g.shape[0]
    if k + 4 <= g.shape[0]:
        g0 = g[k]
        g1 = g[k + 1]
        g2 = g[k + 2]
        g3 = g[k + 3]
        for q in range(5):
            for j in range(n_out):
                m[q, j] += (g0 * v[q, j + k] + g1 * v[q, j + k + 1]) + (
                    g2 * v[q, j + k + 2] + g3 * v[q, j + k + 3]
                )
        return k + 4
    gk = g[k]
    for q in range(5):
        for j in range(n_out):
            m[q, j] += gk * v[q, j + k]
    return k + 1


@_jit()
def _gaussian_moment_row(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    i: int,
    j0: int,
    n_out: int,
    v: np.ndarray,
    m: np.ndarray,
) -> None:
    """Windowed moment sums of output row ``i``, columns ``j0 .. j0 + n_out``.

    Vertical pass into ``v`` (``n_out + win_size - 1`` input columns), then
    horizontal pass into ``m[:, :n_out]``.
    """
    win_size = g.shape[0]
    width = n_out + win_size - 1
    for q in range(5):
        for j in range(width):
            v[q, j] = 0.0
        for j in range(n_out):
            m[q, j] = 0.0
    k = 0
    while k < win_size:
        k = _vertical_taps(x, y, g, i, j0, width, k, v)
    k = 0
    while k < win_size:
        k = _horizontal_taps(g, k, v, m, n_out)


@_jit()
def _add_row(x: np.ndarray, y: np.ndarray, row: int, sign: float, v: np.ndarray) -> None:
    """Add (``sign=1``) or remove (``sign=-1``) one input row's moments from the column sums."""
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if row < 0:
        return
    for j in range(x.shape[1]):
        a = np.float64(x[row, j])
        b = np.float64(y[row, j])
        v[0, j] += sign * a
        v[1, j] += sign * b
        v[2, j] += sign * (a * a)
        v[3, j] += sign * (b * b)
        v[4, j] += sign * (a * b)


@_jit()
def _slide_row(win_size: int, v: np.ndarray, m: np.ndarray) -> None:
    """Horizontal box sums of the column sums, one add and one subtract per output pixel."""
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if win_size < 1:
        return
    n_out = m.shape[1]
    for q in range(5):
        s = 0.0
        for k in range(win_size):
            s += v[q, k]
        m[q, 0] = s
        for j in range(1, n_out):
            # The difference first: one dependent add per step instead of two.
            s += v[q, j + win_size - 1] - v[q, j - 1]
            m[q, j] = s


# ---------------------------------------------------------------------------
# A chunk of output rows (one thread's work)


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
) -> None:
    """Output rows ``row_start:row_stop``: into ``maps[rows, planes, cols]`` or ``stats[9]``.

    ``maps`` planes are ``ssim, cs`` and, with ``components``, ``luminance,
    contrast, structure``; with ``write_maps=False`` the rows go to a scratch
    buffer and only their statistics are kept.
    """
    win_size = g.shape[0]
    width = x.shape[1]
    n_out = width - win_size + 1
    v = np.empty((5, width), dtype=np.float64)
    v_gauss = np.empty((5, _TILE + win_size - 1), dtype=np.float64)
    m = np.empty((5, n_out), dtype=np.float64)
    scratch = np.empty((5, n_out), dtype=np.float32)
    # Uniform sums are raw; scale them once to the window mean (the product of
    # the two 1-D tap values). Gaussian taps already carry the weights.
    scale = g[0] * g[0] if uniform else 1.0

    count = 0.0
    ssim_sum = 0.0
    ssim_sum_sq = 0.0
    ssim_min = np.inf
    ssim_max = -np.inf
    lum_sum = 0.0
    con_sum = 0.0
    str_sum = 0.0
    cs_sum = 0.0

    if uniform:
        v[:, :] = 0.0
        for k in range(win_size):
            _add_row(x, y, row_start + k, 1.0, v)
    for i in range(row_start, row_stop):
        if uniform:
            if i > row_start:
                _add_row(x, y, i + win_size - 1, 1.0, v)
                _add_row(x, y, i - 1, -1.0, v)
            _slide_row(win_size, v, m)
            out = maps[i] if write_maps else scratch
            _combine_row(m, n_out, scale, c1, c2, cov_norm, components, out, 0)
        else:
            out = maps[i] if write_maps else scratch
            # Column tiles keep the moment rows of one tile in the L1 cache;
            # the win_size - 1 columns a tile shares with the next are
            # recomputed (a few percent).
            for j0 in range(0, n_out, _TILE):
                n_tile = min(_TILE, n_out - j0)
                _gaussian_moment_row(x, y, g, i, j0, n_tile, v_gauss, m)
                _combine_row(m, n_tile, scale, c1, c2, cov_norm, components, out, j0)
        if stats.shape[0] > 0:
            for j in range(n_out):
                value = np.float64(out[0, j])
                ssim_sum += value
                ssim_sum_sq += value * value
                ssim_min = min(ssim_min, value)
                ssim_max = max(ssim_max, value)
                cs_sum += np.float64(out[1, j])
            if components:
                for j in range(n_out):
                    lum_sum += np.float64(out[2, j])
                    con_sum += np.float64(out[3, j])
                    str_sum += np.float64(out[4, j])
            count += n_out
    if stats.shape[0] > 0:
        stats[0] = count
        stats[1] = ssim_sum
        stats[2] = ssim_sum_sq
        stats[3] = ssim_min
        stats[4] = ssim_max
        stats[5] = lum_sum
        stats[6] = con_sum
        stats[7] = str_sum
        stats[8] = cs_sum


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
) -> None:
    for chunk in prange(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk],
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
) -> None:
    for chunk in range(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk],
        )  # fmt: skip


# ---------------------------------------------------------------------------
# Python entry points


def _check_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer):
        raise TypeError(f"threads must be a positive integer or None (got {threads!r})")
    if threads < 1:
        raise ValueError(f"threads must be a positive integer or None (got {threads})")
    return int(threads)


def _prepare(x: Any, y: Any, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"the fused kernel needs two 2-D arrays of the same shape (got {x.shape} and {y.shape})"
        )
    g = np.ascontiguousarray(weights, dtype=np.float64)
    if g.ndim != 1 or g.shape[0] > min(x.shape):
        raise ValueError(
            f"weights must be 1-D with at most min(shape) taps (got {g.shape} for shape {x.shape})"
        )
    dtype = np.result_type(x.dtype, y.dtype)
    # Integer images are read as they are (no float copy: half the memory of a
    # float32 cast and an eighth of float64); other dtypes go to float64 so
    # that the value the kernel sees is exactly the reference's.
    if dtype not in FUSED_DTYPES:
        dtype = np.dtype(np.float64)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    return x, y, g


def _row_bounds(n_rows: int, n_threads: int, win_size: int, uniform: bool) -> np.ndarray:
    # Several chunks per thread even out uneven progress; uniform chunks stay
    # long enough that restarting the running sums (win_size rows) is cheap.
    n_chunks = max(1, 4 * n_threads) if n_threads > 1 else 1
    min_rows = 4 * win_size if uniform else 4
    rows_per_chunk = max(min_rows, math.ceil(n_rows / n_chunks))
    if uniform and n_threads == 1:
        # Restarting bounds the drift of running sums over float input.
        rows_per_chunk = max(min_rows, 256)
    edges = [*range(0, n_rows, rows_per_chunk), n_rows]
    return np.asarray(edges, dtype=np.int64)


def _launch(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    write_maps: bool,
    threads: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    threads = _check_threads(threads)
    # None: every thread numba is allowed (NUMBA_NUM_THREADS or numba.set_num_threads).
    pool_size: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    n_threads = numba.get_num_threads() if threads is None else min(threads, pool_size)
    win_size = g.shape[0]
    if (x.shape[0] - win_size + 1) * (x.shape[1] - win_size + 1) < _PARALLEL_MIN_PIXELS:
        # Waking the thread pool costs more than a small block's whole work.
        n_threads = 1
    n_rows = x.shape[0] - win_size + 1
    n_cols = x.shape[1] - win_size + 1
    bounds = _row_bounds(n_rows, n_threads, win_size, uniform)
    # Without components only ssim and cs are stored; without maps, nothing.
    n_planes = 5 if components else 2
    # Row-major over (row, plane, column): one output row of every plane is a
    # contiguous 2-D block, which the combine loop needs to vectorise; each
    # returned map is a view with contiguous rows.
    maps = np.empty((n_rows, n_planes, n_cols) if write_maps else (0, 0, 0), dtype=np.float32)
    stats = np.zeros((bounds.shape[0] - 1, 0 if write_maps else len(STAT_NAMES)))
    args = (
        x, y, g, uniform, bounds, float(c1), float(c2), float(cov_norm), bool(components),
        bool(write_maps), maps, stats,
    )  # fmt: skip
    if n_threads == 1:
        _maps_serial(*args)
    else:
        with _PARALLEL_LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(n_threads)
            try:
                _maps_parallel(*args)
            finally:
                numba.set_num_threads(previous)
    return maps, stats


def fused_maps(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    components: bool = True,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """SSIM maps of a 2-D block on its 'valid' region, compiled and fused.

    Parameters
    ----------
    x, y : numpy.ndarray
        2-D images of the same shape. uint8, uint16, float32 and float64 are
        read directly; other dtypes are cast to float64 first.
    weights : numpy.ndarray
        The separable 1-D window (:func:`pipeline.kernels.windows.window_weights`).
    uniform : bool
        The window is a box (all taps equal): use running sums, whose cost per
        pixel does not depend on the window size.
    c1, c2 : float
        ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``; ``C3 = C2 / 2``.
    cov_norm : float
        Factor on the local (co)variances (1, or ``N / (N - 1)`` for sample covariance).
    components : bool
        Also return ``luminance``, ``contrast`` and ``structure``.
    threads : int, optional
        ``None``: numba's parallel kernel on all its threads (in-memory calls).
        ``1``: the serial kernel on the calling thread, GIL released, safe to
        call from many threads at once (Dask workers). ``n > 1``: parallel on
        ``n`` threads (capped at numba's pool size).

    Returns
    -------
    dict of numpy.ndarray
        float32 maps ``ssim`` and ``cs`` (and the components), shape
        ``(rows - win_size + 1, cols - win_size + 1)``.

    Notes
    -----
    Only 2-D blocks; other dimensionalities use the reference path.
    Parallel launches from several threads take turns (a lock) instead of
    oversubscribing the cores or aborting in numba's 'workqueue' layer.
    """
    x, y, g = _prepare(x, y, weights)
    maps, _ = _launch(x, y, g, uniform, c1, c2, cov_norm, components, True, threads)
    result = {"ssim": maps[:, 0], "cs": maps[:, 1]}
    if components:
        result.update(luminance=maps[:, 2], contrast=maps[:, 3], structure=maps[:, 4])
    return result


def fused_block_stats(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    threads: int | None = None,
) -> dict[str, float]:
    """Statistics of the 'valid' SSIM map of a 2-D block without storing the maps.

    Same arguments as :func:`fused_maps`. Returns ``count``, ``ssim_sum``,
    ``ssim_sum_sq``, ``ssim_min``, ``ssim_max`` and the sums of ``luminance``,
    ``contrast``, ``structure`` and ``cs`` (float64 sums of the float32 maps),
    i.e. mergeable partials for a mean and standard deviation. The memory is a
    few rows per thread.
    """
    x, y, g = _prepare(x, y, weights)
    _, stats = _launch(x, y, g, uniform, c1, c2, cov_norm, True, False, threads)
    merged = {
        name: float(stats[:, k].sum())
        for k, name in enumerate(STAT_NAMES)
        if name not in ("ssim_min", "ssim_max")
    }
    merged["ssim_min"] = float(stats[:, STAT_NAMES.index("ssim_min")].min())
    merged["ssim_max"] = float(stats[:, STAT_NAMES.index("ssim_max")].max())
    return {name: merged[name] for name in STAT_NAMES}
