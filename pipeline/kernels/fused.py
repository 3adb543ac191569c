"""Fused, compiled SSIM maps of a 2-D block on the CPU (numba).

Same numbers as :func:`pipeline.kernels.reference.ssim_maps` (within 1e-5,
usually ~1e-7), without its five full-size float64 moment images: each output
row is made from a small row buffer, so the working memory is O(width) per
thread and the only large arrays are the maps that are returned.

How one output row ``i`` of the 'valid' map is made:

* Gaussian window (separable, Wang et al. 2004 sec. III-C): input rows are
  converted once into a ring of ``win_size`` float32 rows; a vertical 1-D pass
  over rows ``i .. i + win_size - 1`` gives per-column statistics (mean,
  variance, covariance, each centred on the window's centre sample), then a
  horizontal 1-D pass combines them into ``mu_x, mu_y, sigma_x^2, sigma_y^2,
  sigma_xy`` by the law of total variance, tile by tile (``_TILE`` columns).
* Uniform window: the vertical sums are running sums (add the row entering the
  window, subtract the row leaving it) and the horizontal sums slide along the
  row, so the cost per pixel does not depend on ``win_size``. Each chunk of
  rows restarts its sums from scratch, which bounds rounding drift for float
  input (integer input is summed exactly).

Precision. Plain float32 ``E[x^2] - mu^2`` cancels catastrophically for data
far from zero (1e-4 of ``cs`` for flat 255 beside an edge, 6e-4 for uint16 near
60000, with or without a per-block offset). The Gaussian path therefore forms
every (co)variance around the window's own centre sample, which bounds the
float32 rounding error relative to the variance itself (see the comment above
``_load_row``); it computes in float32 throughout and stays within ~5e-7 of
the float64 reference on uint8, uint16 near 65535, float32 and float64 data
offset by 1e4 (tests/test_kernels_fused.py). float64 input keeps float64 ring
rows so that ``x - s`` is exact before rounding. Running sums cannot be
re-centred per window, so the uniform path accumulates in float64 (every
uint8/uint16/float32 pixel and every product of two integer pixels is exact
there). The comparison step (two divisions per pixel, three more with
components) is float32: its terms are non-negative or bounded by the
denominator (``|2 sigma_xy| <= sigma_x^2 + sigma_y^2``), so it adds only
~1e-7. ``ssim(x, x) == 1`` and ``ssim(x, y) == ssim(y, x)`` hold exactly (x
and y go through the same instructions). Maps are returned as float32;
callers average them in float64.

Threads: ``*_parallel`` kernels split the rows over numba's thread pool (all
cores it is given); ``*_serial`` kernels run on the calling thread and release
the GIL, so many Dask worker threads may call them at once. Choose through
:func:`fused_maps`'s ``threads`` argument.

Statistics without maps: :func:`fused_packed_stats` reduces each output row
while it is in L1 into the packed region-``all`` row of
:mod:`pipeline.reductions` (row-wise two-pass M2, Chan-merged), which is what
the streaming engine needs for a whole image; :func:`fused_block_stats` gives
plain sums; :func:`fused_score` only the mean SSIM (no components, one
vectorised sum per row), the path of ``pipeline.ssim``'s score.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from pipeline.reductions import add_row_partial, bin_edges, empty_statistics, merge_statistics

__all__ = [
    "FUSED_DTYPES",
    "STAT_NAMES",
    "fused_block_stats",
    "fused_maps",
    "fused_packed_stats",
    "fused_score",
]

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
# Compilation options
#
# All kernels use error_model="numpy": Python's ZeroDivisionError check puts a
# branch in every division and stops LLVM from vectorising the loops (the
# denominators here are >= C1 or C2 > 0 anyway). The Gaussian accumulation
# loops allow FMA contraction ('contract', nothing else): x and y go through
# the same instruction sequence and every cross term is a product of one x
# and one y factor, so the contracted result is still exactly symmetric and
# gives ssim(x, x) == 1 (tested). The comparison step has no fastmath at all:
# contracting ``mu_x^2 + mu_y^2`` differently from ``2 mu_x mu_y`` would break
# the identity. Each loop touches few distinct arrays (buffers are (quantity,
# column) rows) so that LLVM's runtime alias checks stay within its budget.

# Output columns per tile of the Gaussian path: the tile's column statistics
# (7 x ~266 float32), accumulators (8 x 256) and moments (5 x 256) take ~20 KB
# and stay in a 48 KB L1 data cache next to the input rows being read.
_TILE = 256
# Row strides (float32 elements) of the flat per-tile buffers; not powers of
# two, so that the rows do not map to the same L1 cache sets. _COL bounds the
# window: with win_size <= _MAX_TAPS a tile still has at least 9 columns.
_ACC = _TILE + 8
_COL = 1048
_MAX_TAPS = _COL - 8

_CONTRACT = {"contract"}


def _jit(*, parallel: bool = False, fastmath: bool | set[str] = False) -> Any:
    """numba's ``njit`` with this module's options (cached, GIL released, numpy errors)."""
    return njit(cache=True, nogil=True, error_model="numpy", parallel=parallel, fastmath=fastmath)


# ---------------------------------------------------------------------------
# Moments -> comparison maps


@_jit()
def _combine_row(
    mo: np.ndarray,
    n_out: int,
    c1: float,
    c2: float,
    components: bool,
    out: np.ndarray,
    o0: int,
) -> None:
    """Luminance, contrast, structure, cs and SSIM (eqs. 6-13) from local moments.

    ``mo[q * _ACC + j]`` for ``j < n_out`` holds float32 ``mu_x, mu_y,
    sigma_x^2, sigma_y^2, sigma_xy`` (q = 0..4); ``out[:, o0:o0 + n_out]``
    rows receive ssim, cs and, with ``components``, luminance, contrast,
    structure. All terms are non-negative or bounded by the denominator
    (``|2 sigma_xy| <= sigma_x^2 + sigma_y^2``), so float32 adds only ~1e-7
    here. ``out`` is passed whole with explicit extents: a column slice of a
    2-D array is non-contiguous to numba, and that stops vectorisation.
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
            mu_x = mo[j]
            mu_y = mo[_ACC + j]
            luminance = (two * mu_x * mu_y + c1_32) / (mu_x * mu_x + mu_y * mu_y + c1_32)
            cs = (two * mo[4 * _ACC + j] + c2_32) / (mo[2 * _ACC + j] + mo[3 * _ACC + j] + c2_32)
            out[0, o0 + j] = luminance * cs
            out[1, o0 + j] = cs
        return
    for j in range(n_out):
        mu_x = mo[j]
        mu_y = mo[_ACC + j]
        sigma_x_sq = mo[2 * _ACC + j]
        sigma_y_sq = mo[3 * _ACC + j]
        sigma_xy = mo[4 * _ACC + j]
        luminance = (two * mu_x * mu_y + c1_32) / (mu_x * mu_x + mu_y * mu_y + c1_32)
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
# Gaussian window: centre-shifted float32 moments, vertical then horizontal
#
# With w(i, j) = a_i b_j, the column statistics of a window (vertical pass)
#   m_j = sum_i a_i x_ij,  V_j = sum_i a_i x_ij^2 - m_j^2,  C_j likewise for x y,
# give the window's exactly by the law of total variance (horizontal pass):
#   mu = sum_j b_j m_j,  sigma_x^2 = E_b[V] + Var_b(m),  sigma_xy = E_b[C] + Cov_b(m_x, m_y).
# Each 1-D variance is formed around the window's centre sample s instead of
# around zero: V = sum a (x - s)^2 - (sum a (x - s))^2. A weighted variance is
# at least a_c (s - m)^2, so sum a (x - s)^2 <= V (1 + 1/a_c): the subtraction
# loses a bounded factor (~4.8 for the wang2004 centre tap 0.266) times the
# float32 epsilon *relative to V*, whatever the offset of the data (flat
# windows give exactly 0). The plain float32 E[x^2] - mu^2 instead loses
# epsilon relative to mu^2 (1e-4 of cs for flat 255 beside an edge, 6e-4 for
# uint16 near 60000). The horizontal pass shifts by the centre column's mean,
# kept as two float32 parts (the centre sample s_j and d_j = m_j - s_j) so
# that m_j - m_c keeps its precision for data far from zero. The centre tap
# contributes x - s = 0, and the symmetric taps are paired: a_k (u_k + u_k').
#
# The per-tile buffers are flat with compile-time row strides (_COL, _ACC):
# LLVM then sees every row of a buffer as one object at constant distances and
# needs one runtime alias check per buffer pair. With 2-D buffers (runtime row
# stride) the 8-row accumulation loop needs ~100 checks and stays scalar.


@_jit()
def _load_row(x: np.ndarray, row: int, ring: np.ndarray, slot: int) -> None:
    """Input row ``row`` into ring row ``slot``, converted once (not once per tap)."""
    if row < 0 or slot < 0:
        return
    for j in range(x.shape[1]):
        ring[slot, j] = x[row, j]


@_jit(fastmath=_CONTRACT)
def _vertical_pass(
    rx: np.ndarray, ry: np.ndarray, g: np.ndarray, i: int, j0: int, width: int, col: np.ndarray
) -> None:
    """Column statistics of input rows ``i .. i + win_size - 1``, columns ``j0 .. j0 + width``.

    ``rx``/``ry`` are ring buffers (input row ``r`` in row ``r % win_size``),
    float32, or float64 for float64 input (then ``x - s`` is formed exactly
    before rounding). ``col[q * _COL + j]`` rows q: ``s_x, s_y`` (centre
    samples as float32), ``d_x, d_y`` (column mean minus that float32
    sample), ``V_x, V_y, C``.
    """
    win_size = g.shape[0]
    half = win_size // 2
    # A proof for LLVM that the indices below are non-negative (see _combine_row).
    if i < 0 or j0 < 0 or width < 0 or half < 0:
        return
    centre = (i + half) % win_size
    for j in range(2 * _COL, 7 * _COL):
        col[j] = 0.0
    k = 0
    # Two symmetric pairs (four taps) per sweep: each sweep loads and stores
    # the five sums once, so fewer sweeps mean less memory traffic per pixel.
    while k + 2 <= half:
        a0 = g[k]
        a1 = g[k + 1]
        t0 = (i + k) % win_size
        t0b = (i + win_size - 1 - k) % win_size
        t1 = (i + k + 1) % win_size
        t1b = (i + win_size - 2 - k) % win_size
        for j in range(width):
            sx = rx[centre, j0 + j]
            sy = ry[centre, j0 + j]
            u0 = np.float32(rx[t0, j0 + j] - sx)
            u0b = np.float32(rx[t0b, j0 + j] - sx)
            u1 = np.float32(rx[t1, j0 + j] - sx)
            u1b = np.float32(rx[t1b, j0 + j] - sx)
            w0 = np.float32(ry[t0, j0 + j] - sy)
            w0b = np.float32(ry[t0b, j0 + j] - sy)
            w1 = np.float32(ry[t1, j0 + j] - sy)
            w1b = np.float32(ry[t1b, j0 + j] - sy)
            col[2 * _COL + j] += a0 * (u0 + u0b) + a1 * (u1 + u1b)
            col[3 * _COL + j] += a0 * (w0 + w0b) + a1 * (w1 + w1b)
            col[4 * _COL + j] += a0 * (u0 * u0 + u0b * u0b) + a1 * (u1 * u1 + u1b * u1b)
            col[5 * _COL + j] += a0 * (w0 * w0 + w0b * w0b) + a1 * (w1 * w1 + w1b * w1b)
            col[6 * _COL + j] += a0 * (u0 * w0 + u0b * w0b) + a1 * (u1 * w1 + u1b * w1b)
        k += 2
    if k < half:
        a0 = g[k]
        t0 = (i + k) % win_size
        t0b = (i + win_size - 1 - k) % win_size
        for j in range(width):
            sx = rx[centre, j0 + j]
            sy = ry[centre, j0 + j]
            u0 = np.float32(rx[t0, j0 + j] - sx)
            u0b = np.float32(rx[t0b, j0 + j] - sx)
            w0 = np.float32(ry[t0, j0 + j] - sy)
            w0b = np.float32(ry[t0b, j0 + j] - sy)
            col[2 * _COL + j] += a0 * (u0 + u0b)
            col[3 * _COL + j] += a0 * (w0 + w0b)
            col[4 * _COL + j] += a0 * (u0 * u0 + u0b * u0b)
            col[5 * _COL + j] += a0 * (w0 * w0 + w0b * w0b)
            col[6 * _COL + j] += a0 * (u0 * w0 + u0b * w0b)
    for j in range(width):
        sx = rx[centre, j0 + j]
        sy = ry[centre, j0 + j]
        s_x = np.float32(sx)
        s_y = np.float32(sy)
        d_x = col[2 * _COL + j]
        d_y = col[3 * _COL + j]
        col[4 * _COL + j] -= d_x * d_x
        col[5 * _COL + j] -= d_y * d_y
        col[6 * _COL + j] -= d_x * d_y
        col[j] = s_x
        col[_COL + j] = s_y
        # float64 input: what float32 could not hold of s moves into d (zero otherwise).
        col[2 * _COL + j] = d_x + np.float32(sx - s_x)
        col[3 * _COL + j] = d_y + np.float32(sy - s_y)


@_jit(fastmath=_CONTRACT)
def _horizontal_pass(
    col: np.ndarray, g: np.ndarray, n_out: int, cov_norm: float, acc: np.ndarray, mo: np.ndarray
) -> None:
    """Local moments of a tile into ``mo[q * _ACC + o]``.

    q = 0..4: ``mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy``. ``acc`` rows
    collect ``sum b e_x, sum b e_y, sum b e_x^2, sum b e_y^2, sum b e_x e_y,
    sum b V_x, sum b V_y, sum b C`` with ``e_j = m_j - m_c``.
    Column indices are unsigned: numba wraps negative signed indices, and the
    select that needs on every load keeps LLVM from vectorising this loop
    (``o + k`` is not provably non-negative to it).
    """
    win_size = g.shape[0]
    half = win_size // 2
    if n_out < 0 or half < 0:
        return
    h = np.uint64(half)
    r1 = np.uint64(_COL)
    r2 = np.uint64(2 * _COL)
    r3 = np.uint64(3 * _COL)
    r4 = np.uint64(4 * _COL)
    r5 = np.uint64(5 * _COL)
    r6 = np.uint64(6 * _COL)
    # The centre column (odd windows) has e = 0: only its variances count.
    b_c = g[half] if win_size % 2 == 1 else np.float32(0.0)
    for o in range(5 * _ACC):
        acc[o] = 0.0
    for o in range(n_out):
        c = np.uint64(o) + h
        acc[5 * _ACC + o] = b_c * col[c + r4]
        acc[6 * _ACC + o] = b_c * col[c + r5]
        acc[7 * _ACC + o] = b_c * col[c + r6]
    # Neighbouring taps are added in pairs, ``acc += b0 t0 + b1 t1`` (the centre
    # tap of an odd window is skipped); a sweep takes two pairs, then one, so
    # the eight sums are loaded and stored once per two pairs. Two pairs per
    # sweep give the very same additions, in the same order, as one pair per
    # sweep. (Pairing the *symmetric* taps k and win_size - 1 - k instead keeps
    # LLVM from vectorising the loop; more than two pairs per sweep spill.)
    n_taps = win_size - (win_size % 2)
    odd = win_size % 2 == 1
    p = 0
    while p + 4 <= n_taps:
        ka = np.uint64(p + 1 if (odd and p >= half) else p)
        kb = np.uint64(p + 2 if (odd and p + 1 >= half) else p + 1)
        kc = np.uint64(p + 3 if (odd and p + 2 >= half) else p + 2)
        kd = np.uint64(p + 4 if (odd and p + 3 >= half) else p + 3)
        b0, b1, b2, b3 = g[ka], g[kb], g[kc], g[kd]
        for o in range(n_out):
            ou = np.uint64(o)
            c = ou + h
            ja, jb, jc, jd = ou + ka, ou + kb, ou + kc, ou + kd
            cx, cy, dx, dy = col[c], col[c + r1], col[c + r2], col[c + r3]
            e0 = (col[ja] - cx) + (col[ja + r2] - dx)
            f0 = (col[ja + r1] - cy) + (col[ja + r3] - dy)
            e1 = (col[jb] - cx) + (col[jb + r2] - dx)
            f1 = (col[jb + r1] - cy) + (col[jb + r3] - dy)
            e2 = (col[jc] - cx) + (col[jc + r2] - dx)
            f2 = (col[jc + r1] - cy) + (col[jc + r3] - dy)
            e3 = (col[jd] - cx) + (col[jd + r2] - dx)
            f3 = (col[jd + r1] - cy) + (col[jd + r3] - dy)
            s0 = acc[o] + (b0 * e0 + b1 * e1)
            s1 = acc[_ACC + o] + (b0 * f0 + b1 * f1)
            s2 = acc[2 * _ACC + o] + (b0 * (e0 * e0) + b1 * (e1 * e1))
            s3 = acc[3 * _ACC + o] + (b0 * (f0 * f0) + b1 * (f1 * f1))
            s4 = acc[4 * _ACC + o] + (b0 * (e0 * f0) + b1 * (e1 * f1))
            s5 = acc[5 * _ACC + o] + (b0 * col[ja + r4] + b1 * col[jb + r4])
            s6 = acc[6 * _ACC + o] + (b0 * col[ja + r5] + b1 * col[jb + r5])
            s7 = acc[7 * _ACC + o] + (b0 * col[ja + r6] + b1 * col[jb + r6])
            acc[o] = s0 + (b2 * e2 + b3 * e3)
            acc[_ACC + o] = s1 + (b2 * f2 + b3 * f3)
            acc[2 * _ACC + o] = s2 + (b2 * (e2 * e2) + b3 * (e3 * e3))
            acc[3 * _ACC + o] = s3 + (b2 * (f2 * f2) + b3 * (f3 * f3))
            acc[4 * _ACC + o] = s4 + (b2 * (e2 * f2) + b3 * (e3 * f3))
            acc[5 * _ACC + o] = s5 + (b2 * col[jc + r4] + b3 * col[jd + r4])
            acc[6 * _ACC + o] = s6 + (b2 * col[jc + r5] + b3 * col[jd + r5])
            acc[7 * _ACC + o] = s7 + (b2 * col[jc + r6] + b3 * col[jd + r6])
        p += 4
    while p + 2 <= n_taps:
        k0 = p + 1 if (win_size % 2 == 1 and p >= half) else p
        k1 = p + 2 if (win_size % 2 == 1 and p + 1 >= half) else p + 1
        b0 = g[k0]
        b1 = g[k1]
        ka = np.uint64(k0)
        kb = np.uint64(k1)
        for o in range(n_out):
            ou = np.uint64(o)
            c = ou + h
            ja = ou + ka
            jb = ou + kb
            cx = col[c]
            cy = col[c + r1]
            dx = col[c + r2]
            dy = col[c + r3]
            e0 = (col[ja] - cx) + (col[ja + r2] - dx)
            f0 = (col[ja + r1] - cy) + (col[ja + r3] - dy)
            e1 = (col[jb] - cx) + (col[jb + r2] - dx)
            f1 = (col[jb + r1] - cy) + (col[jb + r3] - dy)
            acc[o] += b0 * e0 + b1 * e1
            acc[_ACC + o] += b0 * f0 + b1 * f1
            acc[2 * _ACC + o] += b0 * (e0 * e0) + b1 * (e1 * e1)
            acc[3 * _ACC + o] += b0 * (f0 * f0) + b1 * (f1 * f1)
            acc[4 * _ACC + o] += b0 * (e0 * f0) + b1 * (e1 * f1)
            acc[5 * _ACC + o] += b0 * col[ja + r4] + b1 * col[jb + r4]
            acc[6 * _ACC + o] += b0 * col[ja + r5] + b1 * col[jb + r5]
            acc[7 * _ACC + o] += b0 * col[ja + r6] + b1 * col[jb + r6]
        p += 2
    if p < n_taps:
        k0 = p + 1 if (win_size % 2 == 1 and p >= half) else p
        b = g[k0]
        ka = np.uint64(k0)
        for o in range(n_out):
            ou = np.uint64(o)
            c = ou + h
            ja = ou + ka
            e = (col[ja] - col[c]) + (col[ja + r2] - col[c + r2])
            f = (col[ja + r1] - col[c + r1]) + (col[ja + r3] - col[c + r3])
            acc[o] += b * e
            acc[_ACC + o] += b * f
            acc[2 * _ACC + o] += b * (e * e)
            acc[3 * _ACC + o] += b * (f * f)
            acc[4 * _ACC + o] += b * (e * f)
            acc[5 * _ACC + o] += b * col[ja + r4]
            acc[6 * _ACC + o] += b * col[ja + r5]
            acc[7 * _ACC + o] += b * col[ja + r6]
    norm = np.float32(cov_norm)
    for o in range(n_out):
        c = np.uint64(o) + h
        e_x = acc[o]
        e_y = acc[_ACC + o]
        mo[o] = col[c] + (col[c + r2] + e_x)
        mo[_ACC + o] = col[c + r1] + (col[c + r3] + e_y)
        mo[2 * _ACC + o] = norm * (acc[5 * _ACC + o] + (acc[2 * _ACC + o] - e_x * e_x))
        mo[3 * _ACC + o] = norm * (acc[6 * _ACC + o] + (acc[3 * _ACC + o] - e_y * e_y))
        mo[4 * _ACC + o] = norm * (acc[7 * _ACC + o] + (acc[4 * _ACC + o] - e_x * e_y))


@_jit()
def _gaussian_row(
    rx: np.ndarray,
    ry: np.ndarray,
    g: np.ndarray,
    i: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    col: np.ndarray,
    acc: np.ndarray,
    mo: np.ndarray,
    out: np.ndarray,
) -> None:
    """Output row ``i`` of the Gaussian path, in column tiles."""
    win_size = g.shape[0]
    # Column tiles keep the tile's buffers in the L1 cache; the win_size - 1
    # columns a tile shares with the next are recomputed (a few percent).
    tile = min(_TILE, _COL - win_size + 1)
    for j0 in range(0, n_out, tile):
        n_tile = min(tile, n_out - j0)
        _vertical_pass(rx, ry, g, i, j0, n_tile + win_size - 1, col)
        _horizontal_pass(col, g, n_tile, cov_norm, acc, mo)
        _combine_row(mo, n_tile, c1, c2, components, out, j0)


# ---------------------------------------------------------------------------
# Uniform window: float64 running sums
#
# Running sums cannot be centred per window, so they stay in float64: every
# uint8/uint16/float32 pixel and every product of two integer pixels is exact
# there, and the cancellation in E[x^2] - mu^2 happens in float64.


@_jit()
def _add_row(x: np.ndarray, y: np.ndarray, row: int, sign: float, v: np.ndarray) -> None:
    """Add (``sign=1``) or remove (``sign=-1``) one input row's moments from the column sums."""
    # A proof for LLVM that the indices below are non-negative (see _combine_row).
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
def _swap_row(x: np.ndarray, y: np.ndarray, new: int, old: int, v: np.ndarray) -> None:
    """Add input row ``new`` and remove row ``old`` from the column sums in one pass.

    The same two float64 operations per sum and pixel, in the same order, as
    ``_add_row(new, +1)`` then ``_add_row(old, -1)``: identical sums, half the
    passes over ``v``.
    """
    if new < 0 or old < 0:
        return
    for j in range(x.shape[1]):
        a = np.float64(x[new, j])
        b = np.float64(y[new, j])
        p = np.float64(x[old, j])
        q = np.float64(y[old, j])
        v[0, j] = (v[0, j] + a) - p
        v[1, j] = (v[1, j] + b) - q
        v[2, j] = (v[2, j] + a * a) - p * p
        v[3, j] = (v[3, j] + b * b) - q * q
        v[4, j] = (v[4, j] + a * b) - p * q


@_jit()
def _slide_row(win_size: int, v: np.ndarray, m: np.ndarray) -> None:
    """Horizontal box sums of the column sums, one add and one subtract per output pixel."""
    # A proof for LLVM that the indices below are non-negative (see _combine_row).
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


@_jit()
def _uniform_row(
    v: np.ndarray,
    m: np.ndarray,
    win_size: int,
    n_out: int,
    scale: float,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    mo: np.ndarray,
    out: np.ndarray,
) -> None:
    """One output row of the uniform path from the column sums ``v``, in column tiles."""
    _slide_row(win_size, v, m)
    for j0 in range(0, n_out, _TILE):
        n_tile = min(_TILE, n_out - j0)
        _uniform_moments(m, j0, n_tile, scale, cov_norm, mo)
        _combine_row(mo, n_tile, c1, c2, components, out, j0)


@_jit()
def _uniform_moments(
    m: np.ndarray, j0: int, n_tile: int, scale: float, cov_norm: float, mo: np.ndarray
) -> None:
    """float32 moments of columns ``j0 .. j0 + n_tile`` from the float64 window sums.

    The cancellation in E[x^2] - mu^2 happens here, in float64.
    """
    if j0 < 0 or n_tile < 0:
        return
    for j in range(n_tile):
        mu_x = m[0, j0 + j] * scale
        mu_y = m[1, j0 + j] * scale
        mo[j] = mu_x
        mo[_ACC + j] = mu_y
        mo[2 * _ACC + j] = cov_norm * (m[2, j0 + j] * scale - mu_x * mu_x)
        mo[3 * _ACC + j] = cov_norm * (m[3, j0 + j] * scale - mu_y * mu_y)
        mo[4 * _ACC + j] = cov_norm * (m[4, j0 + j] * scale - mu_x * mu_y)


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
    edges: np.ndarray,
    packed: np.ndarray,
    ring: np.ndarray,
) -> None:
    """Output rows ``row_start:row_stop``: into ``maps[rows, planes, cols]``, ``stats[9]``
    or ``packed``.

    ``maps`` planes are ``ssim, cs`` and, with ``components``, ``luminance,
    contrast, structure``; with ``write_maps=False`` the rows go to a scratch
    buffer and only their statistics are kept: :data:`STAT_NAMES` into
    ``stats`` when it has that length, only ``count, ssim_sum`` when it has
    length 2, and the packed region-``all`` row of
    :mod:`pipeline.reductions` (histogram over ``edges``) into ``packed`` when
    that is not empty (needs ``components``). ``ring`` is this chunk's
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
    ssim_sum_sq = 0.0
    ssim_min = np.inf
    ssim_max = -np.inf
    lum_sum = 0.0
    con_sum = 0.0
    str_sum = 0.0
    cs_sum = 0.0

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
        if stats.shape[0] == 2:
            # Score only: the mean needs one sum, which vectorises.
            ssim_sum += _row_sum(out, n_out)
            count += n_out
        elif stats.shape[0] > 0:
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
        if packed.shape[0] > 0:
            # The row is still in L1: reduce it before the next one overwrites it.
            add_row_partial(out[0], out[2], out[3], out[4], n_out, edges, packed)
    if stats.shape[0] == 2:
        stats[0] = count
        stats[1] = ssim_sum
    elif stats.shape[0] > 0:
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
    edges: np.ndarray,
    packed: np.ndarray,
    rings: np.ndarray,
) -> None:
    for chunk in prange(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk], edges, packed[chunk], rings[chunk],
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
    edges: np.ndarray,
    packed: np.ndarray,
    rings: np.ndarray,
) -> None:
    for chunk in range(bounds.shape[0] - 1):
        _maps_chunk(
            x, y, g, uniform, bounds[chunk], bounds[chunk + 1], c1, c2, cov_norm, components,
            write_maps, maps, stats[chunk], edges, packed[chunk], rings[chunk],
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


def _check_weights(weights: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The window's taps as float64, checked against the block's spatial ``shape``."""
    g = np.ascontiguousarray(weights, dtype=np.float64)
    if g.ndim != 1 or g.shape[0] > min(shape):
        raise ValueError(
            f"weights must be 1-D with at most min(shape) taps (got {g.shape} for shape {shape})"
        )
    if g.shape[0] > _MAX_TAPS:
        raise ValueError(f"weights must have at most {_MAX_TAPS} taps (got {g.shape[0]})")
    if not np.array_equal(g, g[::-1]):
        # The Gaussian path adds taps k and win_size - 1 - k with one weight.
        raise ValueError(f"weights must be symmetric (got {np.array2string(g, precision=4)})")
    return g


def _kernel_dtype(x: np.ndarray, y: np.ndarray) -> np.dtype:
    """The dtype both images are read as."""
    dtype = np.result_type(x.dtype, y.dtype)
    # Integer images are read as they are (no float copy: half the memory of a
    # float32 cast and an eighth of float64); other dtypes go to float64 so
    # that the value the kernel sees is exactly the reference's.
    return dtype if dtype in FUSED_DTYPES else np.dtype(np.float64)


def _prepare(x: Any, y: Any, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"the fused kernel needs two 2-D arrays of the same shape (got {x.shape} and {y.shape})"
        )
    g = _check_weights(weights, x.shape)
    dtype = _kernel_dtype(x, y)
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    return x, y, g


def _plan_threads(threads: int | None, shape: tuple[int, ...], win_size: int) -> int:
    """How many threads a block of spatial ``shape`` is split over (``threads`` checked)."""
    threads = _check_threads(threads)
    # None: every thread numba is allowed (NUMBA_NUM_THREADS or numba.set_num_threads).
    pool_size: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    n_threads = numba.get_num_threads() if threads is None else min(threads, pool_size)
    if (shape[0] - win_size + 1) * (shape[1] - win_size + 1) < _PARALLEL_MIN_PIXELS:
        # Waking the thread pool costs more than a small block's whole work.
        n_threads = 1
    return n_threads


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
    bins: int = 0,
    score: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    win_size = g.shape[0]
    n_threads = _plan_threads(threads, x.shape[:2], win_size)
    n_rows = x.shape[0] - win_size + 1
    n_cols = x.shape[1] - win_size + 1
    bounds = _row_bounds(n_rows, n_threads, win_size, uniform)
    # Without components only ssim and cs are stored; without maps, nothing.
    n_planes = 5 if components else 2
    # Row-major over (row, plane, column): one output row of every plane is a
    # contiguous 2-D block, which the combine loop needs to vectorise; each
    # returned map is a view with contiguous rows.
    maps = np.empty((n_rows, n_planes, n_cols) if write_maps else (0, 0, 0), dtype=np.float32)
    n_chunks = bounds.shape[0] - 1
    n_stats = 2 if score else len(STAT_NAMES)
    stats = np.zeros((n_chunks, 0 if write_maps or bins else n_stats))
    # Packed statistics: one partial row per chunk, merged by the caller.
    edges = bin_edges(bins) if bins else np.zeros(0)
    packed = empty_statistics(n_chunks, 1, bins)[:, 0] if bins else np.zeros((n_chunks, 0))
    # One (x, y) ring of win_size input rows per chunk for the Gaussian path:
    # float32 holds uint8, uint16 and float32 pixels exactly; float64 input
    # keeps float64 rows so that x - s is formed before rounding.
    ring_shape = (0, 2, 0, 0) if uniform else (bounds.shape[0] - 1, 2, win_size, x.shape[1])
    rings = np.empty(ring_shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    args = (
        x, y, g, uniform, bounds, float(c1), float(c2), float(cov_norm), bool(components),
        bool(write_maps), maps, stats, edges, packed, rings,
    )  # fmt: skip
    _run_kernel(_maps_serial, _maps_parallel, n_threads, args)
    return maps, stats, packed


def _run_kernel(serial: Any, parallel: Any, n_threads: int, args: tuple[Any, ...]) -> None:
    """``serial(*args)`` on this thread, or ``parallel(*args)`` on ``n_threads`` of numba's."""
    if n_threads == 1:
        serial(*args)
        return
    with _PARALLEL_LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            parallel(*args)
        finally:
            numba.set_num_threads(previous)


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
    maps, _, _ = _launch(x, y, g, uniform, c1, c2, cov_norm, components, True, threads)
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
    _, stats, _ = _launch(x, y, g, uniform, c1, c2, cov_norm, True, False, threads)
    merged = {
        name: float(stats[:, k].sum())
        for k, name in enumerate(STAT_NAMES)
        if name not in ("ssim_min", "ssim_max")
    }
    merged["ssim_min"] = float(stats[:, STAT_NAMES.index("ssim_min")].min())
    merged["ssim_max"] = float(stats[:, STAT_NAMES.index("ssim_max")].max())
    return {name: merged[name] for name in STAT_NAMES}


def fused_score(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    threads: int | None = None,
) -> float:
    """Mean of the 'valid' SSIM map of a 2-D block (the score), without storing the map.

    Same arguments as :func:`fused_maps`. Only SSIM and its float64 sum are
    computed (no components, no other statistics): the cheapest path, the
    one :func:`pipeline.ssim` takes for a score.
    """
    x, y, g = _prepare(x, y, weights)
    _, stats, _ = _launch(x, y, g, uniform, c1, c2, cov_norm, False, False, threads, score=True)
    return float(stats[:, 1].sum() / stats[:, 0].sum())


def fused_packed_stats(
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
) -> np.ndarray:
    """Packed region-``all`` statistics of a block's 'valid' SSIM map, without storing maps.

    Same arguments as :func:`fused_maps`, plus ``bins`` (histogram bins over
    [-1, 1]). Returns the row that :func:`pipeline.reductions.block_statistics`
    gives for region ``all`` of the float32 maps (shape ``(8 + bins,)``: count,
    sums of ssim/luminance/contrast/structure, M2, min, max, histogram). Each
    output row is reduced while it is in cache; ``M2`` joins row by row by
    Chan's update, so it matches the two-pass value to ~1e-12 relative.
    Several threads give one partial per row chunk, merged by
    :func:`pipeline.reductions.merge_statistics`.
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer (got {bins!r})")
    x, y, g = _prepare(x, y, weights)
    _, _, packed = _launch(x, y, g, uniform, c1, c2, cov_norm, True, False, threads, int(bins))
    if packed.shape[0] == 1:
        return packed[0]
    return np.asarray(merge_statistics(packed, axis=0))
