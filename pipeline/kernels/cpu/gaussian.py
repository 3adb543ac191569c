"""Gaussian window of the fused CPU kernel: centre-shifted float32 moments, row by row.

One output row is made in column tiles (:func:`gaussian_row`): the window's
input rows sit in a ring of ``win_size`` rows, each converted once
(:func:`load_row`); a vertical 1-D pass gives per-column statistics
(:func:`_vertical_pass`); a horizontal 1-D pass combines them into the
window's moments by the law of total variance (:func:`_horizontal_pass`);
:func:`~pipeline.kernels.cpu.combine.combine_row` makes the maps. Why every
(co)variance is centred on the window's centre sample, and what precision that
buys, is the comment below. Odd windows of up to 11 taps carry a sixth moment,
``var(x - y)``, formed directly (:func:`_vertical_sweep_m`,
:func:`_horizontal_sweep_m`, :func:`~pipeline.kernels.cpu.combine.combine_row_m`;
the comment above them). A score alone (odd windows of up to 11 taps) takes
:func:`gaussian_score_row` instead: the same passes on ``x + y`` and ``x - y``,
four moments instead of five, each column mean one float32 number (two parts
where data lie far outside their range or far from zero), and a float64
comparison step (the last comment); maps without components (ssim and cs) the
same passes (:func:`gaussian_sd_row`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from pipeline.kernels.cpu.combine import (
    ACC,
    COL,
    CONTRACT,
    SWEEP_TILE,
    TILE,
    combine_row,
    combine_row_m,
    combine_row_sd,
    jit,
)

__all__ = [
    "SCORE_TAPS",
    "five_moment_marker",
    "gaussian_row",
    "gaussian_score_row",
    "gaussian_sd_row",
    "load_row",
    "load_rows_sd",
]

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
# The per-tile buffers are flat with compile-time row strides (COL, ACC):
# LLVM then sees every row of a buffer as one object at constant distances and
# needs one runtime alias check per buffer pair. With 2-D buffers (runtime row
# stride) the 8-row accumulation loop needs ~100 checks and stays scalar.


@jit()
def load_row(x: np.ndarray, row: int, ring: np.ndarray, slot: int) -> None:
    """Input row ``row`` into ring row ``slot``, converted once (not once per tap)."""
    if row < 0 or slot < 0:
        return
    for j in range(x.shape[1]):
        ring[slot, j] = x[row, j]


# Odd windows of up to 2 * _PAIRS + 1 taps (wang2004's 11 included) take one
# sweep over the tile with every tap pair unrolled and the five sums held in
# registers: each column's sums are written once, already as the final column
# statistics, instead of being loaded and stored once per two pairs and fixed
# up in a last pass. Missing pairs of a smaller window have weight 0 and read
# the centre row (u = 0), which adds exactly 0.
_PAIRS = 5
#: The widest (odd) window of the score's sum/difference path (:func:`gaussian_score_row`).
SCORE_TAPS = 2 * _PAIRS + 1


def five_moment_marker(uniform: bool, win_size: int) -> np.ndarray | None:
    """The marker argument of the five-moment Gaussian path, or None for the other paths.

    Even windows and windows of more than ``SCORE_TAPS`` taps take the five moments
    (:func:`gaussian_row`), odd windows up to that size the six
    (:func:`gaussian_row_m`). The kernels take the marker (an empty array) or None;
    which it is is known at compile time, so each compiles the one path it runs.
    """
    if uniform or (win_size % 2 == 1 and win_size <= SCORE_TAPS):
        return None
    return np.empty(0)


@jit()
def _sweep_weights(g: np.ndarray) -> tuple[Any, ...]:
    """Taps 0..4 of an odd window of at most ``2 * _PAIRS + 1`` taps; 0 for missing pairs."""
    half = g.shape[0] // 2
    zero = np.float32(0.0)
    return (
        g[0] if half > 0 else zero,
        g[1] if half > 1 else zero,
        g[2] if half > 2 else zero,
        g[3] if half > 3 else zero,
        g[4] if half > 4 else zero,
    )


@jit()
def _outer_weights(g: np.ndarray) -> tuple[Any, ...]:
    """The horizontal sweeps' tap pairs 0..4, outermost first (pair ``k`` is ``5 - k`` off centre).

    A window of fewer than ``2 * _PAIRS + 1`` taps lacks the outer pairs: weight 0
    (their columns hold finite values, so they add exactly 0).
    """
    skip = _PAIRS - g.shape[0] // 2
    zero = np.float32(0.0)
    return (
        g[0 - skip] if skip <= 0 else zero,
        g[1 - skip] if skip <= 1 else zero,
        g[2 - skip] if skip <= 2 else zero,
        g[3 - skip] if skip <= 3 else zero,
        g[4 - skip] if skip <= 4 else zero,
    )


@jit()
def _sweep_rows(win_size: int, i: int) -> tuple[int, ...]:
    """Ring rows of output row ``i``'s window: the centre, then taps 0..4 and their mirrors.

    A pair the window lacks (fewer than ``2 * _PAIRS + 1`` taps) reads the centre row,
    whose deviation is 0 (and its weight is 0 too). Row ``(i + k) % win_size`` as
    ``i % win_size + k`` less ``win_size`` where it passes the ring's end: one
    integer division per call, not eleven (the sweeps call this once per column tile;
    ~1 % of the score's time on a Zen 4 core).
    """
    half = win_size // 2
    start = i % win_size
    centre = _ring_row(start + half, win_size)
    return (
        centre,
        _ring_row(start + 0, win_size) if half > 0 else centre,
        _ring_row(start + 1, win_size) if half > 1 else centre,
        _ring_row(start + 2, win_size) if half > 2 else centre,
        _ring_row(start + 3, win_size) if half > 3 else centre,
        _ring_row(start + 4, win_size) if half > 4 else centre,
        _ring_row(start + win_size - 1, win_size) if half > 0 else centre,
        _ring_row(start + win_size - 2, win_size) if half > 1 else centre,
        _ring_row(start + win_size - 3, win_size) if half > 2 else centre,
        _ring_row(start + win_size - 4, win_size) if half > 3 else centre,
        _ring_row(start + win_size - 5, win_size) if half > 4 else centre,
    )


@jit()
def _ring_row(row: int, win_size: int) -> int:
    """``row % win_size`` for ``0 <= row < 2 * win_size`` (every row :func:`_sweep_rows` takes)."""
    return row - win_size if row >= win_size else row


@jit(fastmath=CONTRACT)
def _vertical_pass(
    rx: np.ndarray, ry: np.ndarray, g: np.ndarray, i: int, j0: int, width: int, col: np.ndarray
) -> None:
    """Column statistics of input rows ``i .. i + win_size - 1``, columns ``j0 .. j0 + width``.

    ``rx``/``ry`` are ring buffers (input row ``r`` in row ``r % win_size``),
    float32, or float64 for float64 input (then ``x - s`` is formed exactly
    before rounding). ``col[q * COL + j]`` rows q: ``s_x, s_y`` (centre
    samples as float32), ``d_x, d_y`` (column mean minus that float32
    sample), ``V_x, V_y, C``.
    """
    win_size = g.shape[0]
    half = win_size // 2
    # A proof for LLVM that the indices below are non-negative (see combine_row).
    if i < 0 or j0 < 0 or width < 0 or half < 0:
        return
    centre = (i + half) % win_size
    for j in range(2 * COL, 7 * COL):
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
            col[2 * COL + j] += a0 * (u0 + u0b) + a1 * (u1 + u1b)
            col[3 * COL + j] += a0 * (w0 + w0b) + a1 * (w1 + w1b)
            col[4 * COL + j] += a0 * (u0 * u0 + u0b * u0b) + a1 * (u1 * u1 + u1b * u1b)
            col[5 * COL + j] += a0 * (w0 * w0 + w0b * w0b) + a1 * (w1 * w1 + w1b * w1b)
            col[6 * COL + j] += a0 * (u0 * w0 + u0b * w0b) + a1 * (u1 * w1 + u1b * w1b)
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
            col[2 * COL + j] += a0 * (u0 + u0b)
            col[3 * COL + j] += a0 * (w0 + w0b)
            col[4 * COL + j] += a0 * (u0 * u0 + u0b * u0b)
            col[5 * COL + j] += a0 * (w0 * w0 + w0b * w0b)
            col[6 * COL + j] += a0 * (u0 * w0 + u0b * w0b)
    for j in range(width):
        sx = rx[centre, j0 + j]
        sy = ry[centre, j0 + j]
        s_x = np.float32(sx)
        s_y = np.float32(sy)
        d_x = col[2 * COL + j]
        d_y = col[3 * COL + j]
        col[4 * COL + j] -= d_x * d_x
        col[5 * COL + j] -= d_y * d_y
        col[6 * COL + j] -= d_x * d_y
        col[j] = s_x
        col[COL + j] = s_y
        # float64 input: what float32 could not hold of s moves into d (zero otherwise).
        col[2 * COL + j] = d_x + np.float32(sx - s_x)
        col[3 * COL + j] = d_y + np.float32(sy - s_y)


# ---------------------------------------------------------------------------
# The maps' sixth moment: var(x - y), formed directly
#
# From the five moments, 1 - cs = (v - 2 sigma_xy) / (v + C2) with v = sigma_x^2 +
# sigma_y^2: for near-identical high-contrast textures v - 2 sigma_xy is far below
# v, and the float32 rounding of the three moments (~6e-8 of v each) is all that
# is left of it: a uint8 checkerboard 128+-50 against 128+-48 (Gaussian 11) has a
# mean 1.0e-7 off the exact one, 128+-20 against 128+-19 1.5e-7. The sweeps below
# also carry m = x - y: per tap its deviation about the centre, (s_x - x) -
# (s_y - y), formed before it rounds to float32 (exact for uint8 and uint16 pixels,
# in float64 for float64 pixels; float32 pixels' deviations are rounded float32
# numbers already, as in the score's path), its column variance V_m in the
# vertical pass and var(m) by the law of total variance in the horizontal one,
# with the column means' deviations e - f. var(m) keeps float32's precision
# relative to itself: 0 exactly for equal images, m -> -m exactly for swapped
# ones, so ssim(x, x) == 1 and the exact symmetry hold as before.
#
# Five moments cannot do it (the sum/difference basis of the score,
# mu_p, mu_m, var(p), var(m), cov(p, m), was tried): contrast needs sigma_x^2 and
# sigma_y^2 to their own precision and structure sigma_xy to that of sigma_x
# sigma_y, and any three second moments leave one of them, or var(m), to a
# difference that cancels. An edge in x against a flat y (uint16, 100 vs 60000)
# put the sum/difference basis's structure 1e-2 and contrast 9e-5 off the float64
# reference. So the maps carry four second moments, about 20 % more arithmetic in
# the two passes (benchmarks/README-kernels.md, "The maps' sixth moment").


@jit(fastmath=CONTRACT)
def _vertical_sweep_m(
    rx: np.ndarray, ry: np.ndarray, g: np.ndarray, i: int, j0: int, width: int, col: np.ndarray
) -> None:
    """:func:`_vertical_pass` of an odd window of up to 11 taps in one sweep, and ``V_m``.

    Every tap pair unrolled, the sums held in registers and written once per column
    (rows 0..6 as :func:`_vertical_pass` writes them), and the column variance ``V_m``
    of ``m = x - y`` in row 7. ``m``'s deviations about the centre, ``(s_x - x) -
    (s_y - y)``, are formed before they round to float32 (exact for uint8/uint16
    pixels, in float64 for float64 pixels): ``V_m`` is exactly 0 for equal columns and
    keeps float32's precision relative to itself for near-identical ones (the comment
    above this function).
    """
    win_size = g.shape[0]
    half = win_size // 2
    if i < 0 or j0 < 0 or width < 0 or half < 0:
        return
    a0, a1, a2, a3, a4 = _sweep_weights(g)
    centre, t0, t1, t2, t3, t4, b0, b1, b2, b3, b4 = _sweep_rows(win_size, i)
    xc, yc = rx[centre], ry[centre]
    x0, x1, x2, x3, x4 = rx[t0], rx[t1], rx[t2], rx[t3], rx[t4]
    x5, x6, x7, x8, x9 = rx[b0], rx[b1], rx[b2], rx[b3], rx[b4]
    y0, y1, y2, y3, y4 = ry[t0], ry[t1], ry[t2], ry[t3], ry[t4]
    y5, y6, y7, y8, y9 = ry[b0], ry[b1], ry[b2], ry[b3], ry[b4]
    # The deviations are formed negated, s - x (the same magnitudes, so every sum
    # below is exactly the negative of the one of x - s, and the squares and
    # products are equal): the row's load then folds into the subtraction.
    for j in range(width):
        q = j0 + j
        sx = xc[q]
        sy = yc[q]
        u = np.float32(sx - x0[q])
        ub = np.float32(sx - x5[q])
        w = np.float32(sy - y0[q])
        wb = np.float32(sy - y5[q])
        m = np.float32((sx - x0[q]) - (sy - y0[q]))
        mb = np.float32((sx - x5[q]) - (sy - y5[q]))
        d_x = a0 * (u + ub)
        d_y = a0 * (w + wb)
        v_x = a0 * (u * u + ub * ub)
        v_y = a0 * (w * w + wb * wb)
        c_xy = a0 * (u * w + ub * wb)
        d_m = a0 * (m + mb)
        v_m = a0 * (m * m + mb * mb)
        u = np.float32(sx - x1[q])
        ub = np.float32(sx - x6[q])
        w = np.float32(sy - y1[q])
        wb = np.float32(sy - y6[q])
        m = np.float32((sx - x1[q]) - (sy - y1[q]))
        mb = np.float32((sx - x6[q]) - (sy - y6[q]))
        d_x += a1 * (u + ub)
        d_y += a1 * (w + wb)
        v_x += a1 * (u * u + ub * ub)
        v_y += a1 * (w * w + wb * wb)
        c_xy += a1 * (u * w + ub * wb)
        d_m += a1 * (m + mb)
        v_m += a1 * (m * m + mb * mb)
        u = np.float32(sx - x2[q])
        ub = np.float32(sx - x7[q])
        w = np.float32(sy - y2[q])
        wb = np.float32(sy - y7[q])
        m = np.float32((sx - x2[q]) - (sy - y2[q]))
        mb = np.float32((sx - x7[q]) - (sy - y7[q]))
        d_x += a2 * (u + ub)
        d_y += a2 * (w + wb)
        v_x += a2 * (u * u + ub * ub)
        v_y += a2 * (w * w + wb * wb)
        c_xy += a2 * (u * w + ub * wb)
        d_m += a2 * (m + mb)
        v_m += a2 * (m * m + mb * mb)
        u = np.float32(sx - x3[q])
        ub = np.float32(sx - x8[q])
        w = np.float32(sy - y3[q])
        wb = np.float32(sy - y8[q])
        m = np.float32((sx - x3[q]) - (sy - y3[q]))
        mb = np.float32((sx - x8[q]) - (sy - y8[q]))
        d_x += a3 * (u + ub)
        d_y += a3 * (w + wb)
        v_x += a3 * (u * u + ub * ub)
        v_y += a3 * (w * w + wb * wb)
        c_xy += a3 * (u * w + ub * wb)
        d_m += a3 * (m + mb)
        v_m += a3 * (m * m + mb * mb)
        u = np.float32(sx - x4[q])
        ub = np.float32(sx - x9[q])
        w = np.float32(sy - y4[q])
        wb = np.float32(sy - y9[q])
        m = np.float32((sx - x4[q]) - (sy - y4[q]))
        mb = np.float32((sx - x9[q]) - (sy - y9[q]))
        d_x += a4 * (u + ub)
        d_y += a4 * (w + wb)
        v_x += a4 * (u * u + ub * ub)
        v_y += a4 * (w * w + wb * wb)
        c_xy += a4 * (u * w + ub * wb)
        d_m += a4 * (m + mb)
        v_m += a4 * (m * m + mb * mb)
        s_x = np.float32(sx)
        s_y = np.float32(sy)
        col[4 * COL + j] = v_x - d_x * d_x
        col[5 * COL + j] = v_y - d_y * d_y
        col[6 * COL + j] = c_xy - d_x * d_y
        col[7 * COL + j] = v_m - d_m * d_m
        col[j] = s_x
        col[COL + j] = s_y
        # float64 input: what float32 could not hold of s moves into d (zero otherwise).
        col[2 * COL + j] = np.float32(sx - s_x) - d_x
        col[3 * COL + j] = np.float32(sy - s_y) - d_y


@jit(fastmath=CONTRACT)
def _horizontal_sweep_m(
    col: np.ndarray, g: np.ndarray, n_out: int, cov_norm: float, mo: np.ndarray
) -> None:
    """:func:`_horizontal_pass` of an odd window of up to 11 taps in one sweep, and ``var(m)``.

    Each window is centred on its centre column's mean ``m_c`` (two float32 parts,
    ``s_c + d_c``), as :func:`_horizontal_pass` does, but the column variances join
    the squares at once, ``sum b (V + e^2) - (sum b e)^2`` (the law of total
    variance, with ``e_k = m_k - m_c``), so the sums are made in one sweep, in
    registers, without ``acc``; taps ``k`` and ``10 - k`` share a weight and are
    added before it multiplies. The tap offsets are constants, so every load is one
    address plus a displacement (with offsets held in registers the loop runs out of
    them and spills). ``mo`` rows q = 0..5: ``mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy, var(m)``,
    ``var(m) = sigma_x^2 + sigma_y^2 - 2 sigma_xy`` formed directly (law of total
    variance on ``V_m`` and the column means' ``e - f``). Output ``o``'s centre column
    is ``o + _PAIRS`` (the vertical pass writes a smaller window's columns that far in)
    and the missing taps have weight 0, as in :func:`_horizontal_sweep_sd`.
    """
    half = g.shape[0] // 2
    if n_out < 0 or half > _PAIRS or half < 0:
        return
    b0, b1, b2, b3, b4 = _outer_weights(g)
    b_c = g[half]
    h = np.uint64(_PAIRS)
    r1 = np.uint64(COL)
    r2 = np.uint64(2 * COL)
    r3 = np.uint64(3 * COL)
    r4 = np.uint64(4 * COL)
    r5 = np.uint64(5 * COL)
    r6 = np.uint64(6 * COL)
    r7 = np.uint64(7 * COL)
    norm = np.float32(cov_norm)
    for o in range(n_out):
        ou = np.uint64(o)
        c = ou + h
        cx, cy, dx, dy = col[c], col[c + r1], col[c + r2], col[c + r3]
        # Deviations negated, e = m_c - m_k (as in the vertical sweep: the loads fold
        # into the subtractions; sums change sign exactly, squares not at all). The
        # centre column has e = 0: only its variances count.
        e_xx = b_c * col[c + r4]
        e_yy = b_c * col[c + r5]
        e_xy = b_c * col[c + r6]
        e_mm = b_c * col[c + r7]
        ja = ou + np.uint64(0)
        jb = ou + np.uint64(10)
        e = (cx - col[ja]) + (dx - col[ja + r2])
        eb = (cx - col[jb]) + (dx - col[jb + r2])
        f = (cy - col[ja + r1]) + (dy - col[ja + r3])
        fb = (cy - col[jb + r1]) + (dy - col[jb + r3])
        e_x = b0 * (e + eb)
        e_y = b0 * (f + fb)
        e_xx += b0 * ((e * e + col[ja + r4]) + (eb * eb + col[jb + r4]))
        e_yy += b0 * ((f * f + col[ja + r5]) + (fb * fb + col[jb + r5]))
        e_xy += b0 * ((e * f + col[ja + r6]) + (eb * fb + col[jb + r6]))
        gm = e - f
        gmb = eb - fb
        e_m = b0 * (gm + gmb)
        e_mm += b0 * ((gm * gm + col[ja + r7]) + (gmb * gmb + col[jb + r7]))
        ja = ou + np.uint64(1)
        jb = ou + np.uint64(9)
        e = (cx - col[ja]) + (dx - col[ja + r2])
        eb = (cx - col[jb]) + (dx - col[jb + r2])
        f = (cy - col[ja + r1]) + (dy - col[ja + r3])
        fb = (cy - col[jb + r1]) + (dy - col[jb + r3])
        e_x += b1 * (e + eb)
        e_y += b1 * (f + fb)
        e_xx += b1 * ((e * e + col[ja + r4]) + (eb * eb + col[jb + r4]))
        e_yy += b1 * ((f * f + col[ja + r5]) + (fb * fb + col[jb + r5]))
        e_xy += b1 * ((e * f + col[ja + r6]) + (eb * fb + col[jb + r6]))
        gm = e - f
        gmb = eb - fb
        e_m += b1 * (gm + gmb)
        e_mm += b1 * ((gm * gm + col[ja + r7]) + (gmb * gmb + col[jb + r7]))
        ja = ou + np.uint64(2)
        jb = ou + np.uint64(8)
        e = (cx - col[ja]) + (dx - col[ja + r2])
        eb = (cx - col[jb]) + (dx - col[jb + r2])
        f = (cy - col[ja + r1]) + (dy - col[ja + r3])
        fb = (cy - col[jb + r1]) + (dy - col[jb + r3])
        e_x += b2 * (e + eb)
        e_y += b2 * (f + fb)
        e_xx += b2 * ((e * e + col[ja + r4]) + (eb * eb + col[jb + r4]))
        e_yy += b2 * ((f * f + col[ja + r5]) + (fb * fb + col[jb + r5]))
        e_xy += b2 * ((e * f + col[ja + r6]) + (eb * fb + col[jb + r6]))
        gm = e - f
        gmb = eb - fb
        e_m += b2 * (gm + gmb)
        e_mm += b2 * ((gm * gm + col[ja + r7]) + (gmb * gmb + col[jb + r7]))
        ja = ou + np.uint64(3)
        jb = ou + np.uint64(7)
        e = (cx - col[ja]) + (dx - col[ja + r2])
        eb = (cx - col[jb]) + (dx - col[jb + r2])
        f = (cy - col[ja + r1]) + (dy - col[ja + r3])
        fb = (cy - col[jb + r1]) + (dy - col[jb + r3])
        e_x += b3 * (e + eb)
        e_y += b3 * (f + fb)
        e_xx += b3 * ((e * e + col[ja + r4]) + (eb * eb + col[jb + r4]))
        e_yy += b3 * ((f * f + col[ja + r5]) + (fb * fb + col[jb + r5]))
        e_xy += b3 * ((e * f + col[ja + r6]) + (eb * fb + col[jb + r6]))
        gm = e - f
        gmb = eb - fb
        e_m += b3 * (gm + gmb)
        e_mm += b3 * ((gm * gm + col[ja + r7]) + (gmb * gmb + col[jb + r7]))
        ja = ou + np.uint64(4)
        jb = ou + np.uint64(6)
        e = (cx - col[ja]) + (dx - col[ja + r2])
        eb = (cx - col[jb]) + (dx - col[jb + r2])
        f = (cy - col[ja + r1]) + (dy - col[ja + r3])
        fb = (cy - col[jb + r1]) + (dy - col[jb + r3])
        e_x += b4 * (e + eb)
        e_y += b4 * (f + fb)
        e_xx += b4 * ((e * e + col[ja + r4]) + (eb * eb + col[jb + r4]))
        e_yy += b4 * ((f * f + col[ja + r5]) + (fb * fb + col[jb + r5]))
        e_xy += b4 * ((e * f + col[ja + r6]) + (eb * fb + col[jb + r6]))
        gm = e - f
        gmb = eb - fb
        e_m += b4 * (gm + gmb)
        e_mm += b4 * ((gm * gm + col[ja + r7]) + (gmb * gmb + col[jb + r7]))
        mo[o] = cx + (dx - e_x)
        mo[ACC + o] = cy + (dy - e_y)
        mo[2 * ACC + o] = norm * (e_xx - e_x * e_x)
        mo[3 * ACC + o] = norm * (e_yy - e_y * e_y)
        mo[4 * ACC + o] = norm * (e_xy - e_x * e_y)
        mo[5 * ACC + o] = norm * (e_mm - e_m * e_m)


@jit(fastmath=CONTRACT)
def _horizontal_pass(
    col: np.ndarray, g: np.ndarray, n_out: int, cov_norm: float, acc: np.ndarray, mo: np.ndarray
) -> None:
    """Local moments of a tile into ``mo[q * ACC + o]``.

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
    r1 = np.uint64(COL)
    r2 = np.uint64(2 * COL)
    r3 = np.uint64(3 * COL)
    r4 = np.uint64(4 * COL)
    r5 = np.uint64(5 * COL)
    r6 = np.uint64(6 * COL)
    # The centre column (odd windows) has e = 0: only its variances count.
    b_c = g[half] if win_size % 2 == 1 else np.float32(0.0)
    for o in range(5 * ACC):
        acc[o] = 0.0
    for o in range(n_out):
        c = np.uint64(o) + h
        acc[5 * ACC + o] = b_c * col[c + r4]
        acc[6 * ACC + o] = b_c * col[c + r5]
        acc[7 * ACC + o] = b_c * col[c + r6]
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
            s1 = acc[ACC + o] + (b0 * f0 + b1 * f1)
            s2 = acc[2 * ACC + o] + (b0 * (e0 * e0) + b1 * (e1 * e1))
            s3 = acc[3 * ACC + o] + (b0 * (f0 * f0) + b1 * (f1 * f1))
            s4 = acc[4 * ACC + o] + (b0 * (e0 * f0) + b1 * (e1 * f1))
            s5 = acc[5 * ACC + o] + (b0 * col[ja + r4] + b1 * col[jb + r4])
            s6 = acc[6 * ACC + o] + (b0 * col[ja + r5] + b1 * col[jb + r5])
            s7 = acc[7 * ACC + o] + (b0 * col[ja + r6] + b1 * col[jb + r6])
            acc[o] = s0 + (b2 * e2 + b3 * e3)
            acc[ACC + o] = s1 + (b2 * f2 + b3 * f3)
            acc[2 * ACC + o] = s2 + (b2 * (e2 * e2) + b3 * (e3 * e3))
            acc[3 * ACC + o] = s3 + (b2 * (f2 * f2) + b3 * (f3 * f3))
            acc[4 * ACC + o] = s4 + (b2 * (e2 * f2) + b3 * (e3 * f3))
            acc[5 * ACC + o] = s5 + (b2 * col[jc + r4] + b3 * col[jd + r4])
            acc[6 * ACC + o] = s6 + (b2 * col[jc + r5] + b3 * col[jd + r5])
            acc[7 * ACC + o] = s7 + (b2 * col[jc + r6] + b3 * col[jd + r6])
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
            acc[ACC + o] += b0 * f0 + b1 * f1
            acc[2 * ACC + o] += b0 * (e0 * e0) + b1 * (e1 * e1)
            acc[3 * ACC + o] += b0 * (f0 * f0) + b1 * (f1 * f1)
            acc[4 * ACC + o] += b0 * (e0 * f0) + b1 * (e1 * f1)
            acc[5 * ACC + o] += b0 * col[ja + r4] + b1 * col[jb + r4]
            acc[6 * ACC + o] += b0 * col[ja + r5] + b1 * col[jb + r5]
            acc[7 * ACC + o] += b0 * col[ja + r6] + b1 * col[jb + r6]
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
            acc[ACC + o] += b * f
            acc[2 * ACC + o] += b * (e * e)
            acc[3 * ACC + o] += b * (f * f)
            acc[4 * ACC + o] += b * (e * f)
            acc[5 * ACC + o] += b * col[ja + r4]
            acc[6 * ACC + o] += b * col[ja + r5]
            acc[7 * ACC + o] += b * col[ja + r6]
    norm = np.float32(cov_norm)
    for o in range(n_out):
        c = np.uint64(o) + h
        e_x = acc[o]
        e_y = acc[ACC + o]
        mo[o] = col[c] + (col[c + r2] + e_x)
        mo[ACC + o] = col[c + r1] + (col[c + r3] + e_y)
        mo[2 * ACC + o] = norm * (acc[5 * ACC + o] + (acc[2 * ACC + o] - e_x * e_x))
        mo[3 * ACC + o] = norm * (acc[6 * ACC + o] + (acc[3 * ACC + o] - e_y * e_y))
        mo[4 * ACC + o] = norm * (acc[7 * ACC + o] + (acc[4 * ACC + o] - e_x * e_y))


@jit()
def gaussian_row(
    rx: np.ndarray,
    ry: np.ndarray,
    g: np.ndarray,
    i: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    planes: int,
    col: np.ndarray,
    acc: np.ndarray,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
) -> None:
    """Output row ``i`` of the Gaussian path from the five moments, in column tiles.

    The path of even windows and of windows of more than ``2 * _PAIRS + 1`` taps;
    odd windows up to that size take :func:`gaussian_row_m`. The two are separate
    entry points, chosen by the caller's arguments (a marker array or None), so that
    a compiled kernel holds only the one it runs.
    """
    win_size = g.shape[0]
    # Column tiles keep the tile's buffers in the L1 cache; the win_size - 1
    # columns a tile shares with the next are recomputed (a few percent).
    tile = min(TILE, COL - win_size + 1)
    for j0 in range(0, n_out, tile):
        n_tile = min(tile, n_out - j0)
        _vertical_pass(rx, ry, g, i, j0, n_tile + win_size - 1, col)
        _horizontal_pass(col, g, n_tile, cov_norm, acc, mo)
        combine_row(mo, n_tile, c1, c2, planes, out, deficit, j0)


@jit()
def gaussian_row_m(
    rx: np.ndarray,
    ry: np.ndarray,
    g: np.ndarray,
    i: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    planes: int,
    col: np.ndarray,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
) -> None:
    """Output row ``i`` of the Gaussian path with ``var(x - y)`` beside the five moments.

    Odd windows of up to ``2 * _PAIRS + 1`` taps (:func:`_vertical_sweep_m`,
    :func:`_horizontal_sweep_m`, :func:`~pipeline.kernels.cpu.combine.combine_row_m`);
    ``col`` needs ``8 * COL`` elements, finite where no tile writes, and ``mo`` ``6 *
    ACC``. Arguments as :func:`gaussian_row`, less its ``acc``.
    """
    win_size = g.shape[0]
    half = win_size // 2
    if win_size % 2 == 0 or half < 0 or half > _PAIRS:
        return
    # A smaller window's columns are written _PAIRS - half in, so that the sweep's
    # missing taps (weight 0) read finite columns.
    view = col[_PAIRS - half :]
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    for j0 in range(0, n_out, tile):
        n_tile = min(tile, n_out - j0)
        _vertical_sweep_m(rx, ry, g, i, j0, n_tile + win_size - 1, view)
        _horizontal_sweep_m(col, g, n_tile, cov_norm, mo)
        combine_row_m(mo, n_tile, c1, c2, planes, out, deficit, j0)


# ---------------------------------------------------------------------------
# The score in the sum/difference basis
#
# The score needs four local moments, not five: with p = x + y and m = x - y,
#   V- = sigma_x^2 + sigma_y^2 - 2 sigma_xy = var(m),
#   V+ = sigma_x^2 + sigma_y^2 = (var(p) + var(m)) / 2,
#   mu_x - mu_y = mu_m,  mu_x^2 + mu_y^2 = (mu_p^2 + mu_m^2) / 2,
#   2 mu_x mu_y = (mu_p^2 - mu_m^2) / 2,
# so each pass carries two second moments instead of three. V- is formed
# directly: it is exactly 0 for equal images and does not cancel for
# near-identical ones, where v - 2 sigma_xy of the five moments loses float32's
# precision relative to v (1e-7 of the mean on a uint8 checkerboard of 128+-50
# against 128+-48). The ring holds p and m rows, formed once per input row
# (exact for uint8 and uint16 pixels in float32, and in the float64 ring of
# float64 pixels to 1e-16 relative), so each tap costs one subtraction per
# basis image, as the five-moment path's does per image: deviations about the
# centre sample, p - s_p and m - s_m, in the same one-sweep form as
# _vertical_sweep_m. float32 pixels keep a ring of x and y (their sum is not a
# float32 number, and a float64 ring costs more than it saves): deviations
# u = x - s_x, w = y - s_y as in the five-moment path, joined as p = u + w,
# m = u - w; where the column means are kept in two parts (below), the float32
# rounding of s_x + s_y and s_x - s_y is carried by two-sums (5e-8 of the mean
# of float32 data near 1e4 without). Swapping x and y leaves p
# and negates m exactly (round-to-nearest is symmetric), so ssim(x, y) ==
# ssim(y, x) still holds exactly, and m = 0 for equal images gives d = 0. The
# horizontal pass centres each window on its centre column's means of p and m
# (one float32 number per column, below). The comparison step is float64 with
# the deficit as one quotient (the luminance and contrast-structure deficits
# dl = Nl / Dl and dcs = V- / Dc joined as dl + dcs - dl dcs):
#   d = (Nl Dc + V- (2 mu_x mu_y + C1)) / (Dl Dc),
#   Nl = mu_m^2, Dl = mu_x^2 + mu_y^2 + C1, Dc = V+ + C2,
# which leaves d only the float32 rounding of the moments. The maps need
# sigma_x^2, sigma_y^2 and sigma_xy apart (contrast, structure) and carry var(m)
# as a sixth moment (above), so ssim(full=True)'s mean (of the maps path's
# deficits, from float32 moments) and this score are two computations of one number, within
# float32 rounding of each other (<= 5e-9 on the tested pairs), not the same bits.
#
# The horizontal pass needs each column's mean, m_c - m_k for every tap. Kept as
# one float32 number per column (s - d, rounded once), a tap costs four loads and
# one subtraction per basis image; kept as two parts (the centre sample and the
# rest, as the maps path keeps them), six loads and three subtractions (the
# horizontal pass took 1.9 ns per output pixel instead of 1.3 on a Zen 4 core).
# One part rounds each mean to float32's precision relative to its size, not to
# its distance from the window's centre column: a smooth window beside far
# brighter columns loses up to |m| * 6e-8 in each deviation. For the deficit that
# stays within float32 rounding of sigma^2 + C2 while |m| is a small multiple of
# sqrt(C2) (data within their data range: p <= 2 L = 67 sqrt(C2) for K2 = 0.03,
# |m| <= L), and var(m), the deficit's numerator, has m's own size, small for
# similar images. An output whose window holds a column mean beyond
# _ONE_PART_SPREAD sqrt(C2) (a data range far below the pixels' values, data far
# from zero, NaN) is made from two parts instead, at the cost of both sweeps
# (float32 data near 1e4 with a data range of 1: 1.37x the time of two parts
# alone). The choice depends on the window's columns alone, so the bits do not
# depend on how the image is tiled (blocks of the streaming engine, column tiles,
# threads), and uint8 pixels and the same values as float32 still give the same
# score. (The maps path keeps two parts: contrast and structure need sigma_x^2 and
# sigma_y^2 each to its own precision, and one part put them 2e-6 off on faint
# texture beside an edge, against 4e-8.)
_ONE_PART_SPREAD = 512.0
# The marker of the two-part sweeps (None: one part; see five_moment_marker).
_TWO_PARTS = np.zeros(0, dtype=np.float32)
# What a one-part vertical sweep found of its columns' means: none beyond the
# spread, some, all. Kept as an int32 minimum and maximum of the columns' flags,
# not a count: numba widens an integer sum to int64, and the int64 lanes of a
# count halved the sweep's vector width (8 columns an iteration instead of 16, for
# about the same instructions: 1.39 against 1.28 ns per output pixel, one thread
# of a Zen 4 core, its ring's rows aligned to cache lines).
_FAR_NONE, _FAR_SOME, _FAR_ALL = 0, 1, 2


@jit()
def load_rows_sd(
    x: np.ndarray, y: np.ndarray, row: int, rp: np.ndarray, rm: np.ndarray, slot: int, summed: bool
) -> None:
    """Input row ``row`` into ring row ``slot`` of the score's path (:func:`gaussian_score_row`).

    With ``summed``, ``x + y`` into ``rp`` and ``x - y`` into ``rm``, formed in the
    ring's precision (:func:`_in_ring`): float32 for uint8/uint16 pixels, exact (sums
    below 2^17); float64 for float64 pixels, rounded by 1e-16 relative. ``y - x`` is
    exactly ``-(x - y)``. Without, ``x`` and ``y`` (float32 pixels), as
    :func:`load_row`.
    """
    if row < 0 or slot < 0:
        return
    if not summed:
        load_row(x, row, rp, slot)
        load_row(y, row, rm, slot)
        return
    for j in range(x.shape[1]):
        a = _in_ring(x[row, j], rp)
        b = _in_ring(y[row, j], rp)
        rp[slot, j] = a + b
        rm[slot, j] = a - b


def _in_ring(value, ring):
    """``value`` as the ring's float type. Compiled only (:func:`_in_ring_overload`)."""
    raise NotImplementedError("compiled only")


@overload(_in_ring, jit_options={"nogil": True, "error_model": "numpy"})
def _in_ring_overload(value, ring):
    """float32 for a float32 ring (uint8 or uint16 pixels: exact sums, 16 lanes), else float64.

    Unannotated: numba matches these parameters against :func:`_in_ring`'s.
    """
    if isinstance(ring, types.Array) and ring.dtype == types.float32:
        return lambda value, ring: np.float32(value)
    return lambda value, ring: np.float64(value)


@jit(fastmath=CONTRACT)
def _vertical_sweep_sd(
    rp: np.ndarray,
    rm: np.ndarray,
    g: np.ndarray,
    i: int,
    j0: int,
    width: int,
    col: np.ndarray,
    parts: np.ndarray | None,
    limit: float,
) -> int:
    """Column statistics of p = x + y and m = x - y, one sweep (odd windows of <= 11 taps).

    :func:`_vertical_sweep_m`'s form on a ring of ``p`` and ``m`` rows
    (:func:`load_rows_sd`) instead of ``x`` and ``y``: two second moments, no cross
    term. ``col[q * COL + j]`` rows 2 and 3: ``V_p, V_m``; rows 0 and 1 the column
    means of ``p`` and ``m``: with ``parts`` None, each rounded once to float32
    (``s - d`` in the ring's precision); with ``parts`` (a marker), as two float32
    parts, the centre samples ``s_p, s_m`` in rows 0 and 1 and the rest ``d_p,
    d_m`` in rows 4 and 5 (the float64 ring's remainder of ``s`` included). Returns
    whether none, some or all of the columns' one-part means lie beyond ``+-limit``
    (:func:`_far`): ``_FAR_NONE``, ``_FAR_SOME``, ``_FAR_ALL`` (``_FAR_NONE`` with
    ``parts``).
    """
    win_size = g.shape[0]
    half = win_size // 2
    if i < 0 or j0 < 0 or width < 0 or half < 0:
        return 0
    a0, a1, a2, a3, a4 = _sweep_weights(g)
    centre, t0, t1, t2, t3, t4, b0, b1, b2, b3, b4 = _sweep_rows(win_size, i)
    pc, mc = rp[centre], rm[centre]
    p0, p1, p2, p3, p4 = rp[t0], rp[t1], rp[t2], rp[t3], rp[t4]
    p5, p6, p7, p8, p9 = rp[b0], rp[b1], rp[b2], rp[b3], rp[b4]
    m0, m1, m2, m3, m4 = rm[t0], rm[t1], rm[t2], rm[t3], rm[t4]
    m5, m6, m7, m8, m9 = rm[b0], rm[b1], rm[b2], rm[b3], rm[b4]
    bound = np.float32(limit)
    fewest = np.int32(1)
    most = np.int32(0)
    # Deviations negated, as in _vertical_sweep_m: the row's load folds into the subtraction.
    for j in range(width):
        q = j0 + j
        sp = pc[q]
        sm = mc[q]
        u = np.float32(sp - p0[q])
        ub = np.float32(sp - p5[q])
        w = np.float32(sm - m0[q])
        wb = np.float32(sm - m5[q])
        d_p = a0 * (u + ub)
        d_m = a0 * (w + wb)
        v_p = a0 * (u * u + ub * ub)
        v_m = a0 * (w * w + wb * wb)
        u = np.float32(sp - p1[q])
        ub = np.float32(sp - p6[q])
        w = np.float32(sm - m1[q])
        wb = np.float32(sm - m6[q])
        d_p += a1 * (u + ub)
        d_m += a1 * (w + wb)
        v_p += a1 * (u * u + ub * ub)
        v_m += a1 * (w * w + wb * wb)
        u = np.float32(sp - p2[q])
        ub = np.float32(sp - p7[q])
        w = np.float32(sm - m2[q])
        wb = np.float32(sm - m7[q])
        d_p += a2 * (u + ub)
        d_m += a2 * (w + wb)
        v_p += a2 * (u * u + ub * ub)
        v_m += a2 * (w * w + wb * wb)
        u = np.float32(sp - p3[q])
        ub = np.float32(sp - p8[q])
        w = np.float32(sm - m3[q])
        wb = np.float32(sm - m8[q])
        d_p += a3 * (u + ub)
        d_m += a3 * (w + wb)
        v_p += a3 * (u * u + ub * ub)
        v_m += a3 * (w * w + wb * wb)
        u = np.float32(sp - p4[q])
        ub = np.float32(sp - p9[q])
        w = np.float32(sm - m4[q])
        wb = np.float32(sm - m9[q])
        d_p += a4 * (u + ub)
        d_m += a4 * (w + wb)
        v_p += a4 * (u * u + ub * ub)
        v_m += a4 * (w * w + wb * wb)
        col[2 * COL + j] = v_p - d_p * d_p
        col[3 * COL + j] = v_m - d_m * d_m
        if parts is None:
            t_p = np.float32(sp - d_p)
            t_m = np.float32(sm - d_m)
            col[j] = t_p
            col[COL + j] = t_m
            far = np.int32(_far(t_p, t_m, bound))
            fewest = min(fewest, far)
            most = max(most, far)
        else:
            s_p = np.float32(sp)
            s_m = np.float32(sm)
            col[j] = s_p
            col[COL + j] = s_m
            # float64 ring: what float32 could not hold of s moves into d (zero otherwise).
            col[4 * COL + j] = np.float32(sp - s_p) - d_p
            col[5 * COL + j] = np.float32(sm - s_m) - d_m
    return _far_answer(fewest, most)


@jit(fastmath=CONTRACT)
def _vertical_sweep_sd_xy(
    rx: np.ndarray,
    ry: np.ndarray,
    g: np.ndarray,
    i: int,
    j0: int,
    width: int,
    col: np.ndarray,
    parts: np.ndarray | None,
    limit: float,
) -> int:
    """:func:`_vertical_sweep_sd` from a float32 ring of ``x`` and ``y`` rows (float32 pixels).

    ``x + y`` of float32 pixels is not a float32 number: the deviations are formed
    as in :func:`_vertical_sweep_m` (``u = s_x - x``, ``w = s_y - y``) and joined,
    ``p = u + w``, ``m = u - w``. With ``parts`` None each column mean is
    ``(s_x + s_y) - d_p`` (and ``(s_x - s_y) - d_m``) in float32: two roundings, each
    relative to the mean's size as one part's is anyway (one for integer-valued
    pixels, whose sums are exact: the bits of the uint8 path); with ``parts``, rows 0
    and 1 hold the centre's sums rounded to float32 and :func:`_centre_remainders`
    adds their rounding to ``d_p``, ``d_m`` (rows 4 and 5). Rows 2 and 3, and the
    answer returned (none, some or all far), as :func:`_vertical_sweep_sd` writes and
    returns them.
    """
    win_size = g.shape[0]
    half = win_size // 2
    if i < 0 or j0 < 0 or width < 0 or half < 0:
        return 0
    a0, a1, a2, a3, a4 = _sweep_weights(g)
    centre, t0, t1, t2, t3, t4, b0, b1, b2, b3, b4 = _sweep_rows(win_size, i)
    xc, yc = rx[centre], ry[centre]
    x0, x1, x2, x3, x4 = rx[t0], rx[t1], rx[t2], rx[t3], rx[t4]
    x5, x6, x7, x8, x9 = rx[b0], rx[b1], rx[b2], rx[b3], rx[b4]
    y0, y1, y2, y3, y4 = ry[t0], ry[t1], ry[t2], ry[t3], ry[t4]
    y5, y6, y7, y8, y9 = ry[b0], ry[b1], ry[b2], ry[b3], ry[b4]
    bound = np.float32(limit)
    fewest = np.int32(1)
    most = np.int32(0)
    for j in range(width):
        q = j0 + j
        sx = xc[q]
        sy = yc[q]
        u = np.float32(sx - x0[q])
        ub = np.float32(sx - x5[q])
        w = np.float32(sy - y0[q])
        wb = np.float32(sy - y5[q])
        p, pb, m, mb = u + w, ub + wb, u - w, ub - wb
        d_p = a0 * (p + pb)
        d_m = a0 * (m + mb)
        v_p = a0 * (p * p + pb * pb)
        v_m = a0 * (m * m + mb * mb)
        u = np.float32(sx - x1[q])
        ub = np.float32(sx - x6[q])
        w = np.float32(sy - y1[q])
        wb = np.float32(sy - y6[q])
        p, pb, m, mb = u + w, ub + wb, u - w, ub - wb
        d_p += a1 * (p + pb)
        d_m += a1 * (m + mb)
        v_p += a1 * (p * p + pb * pb)
        v_m += a1 * (m * m + mb * mb)
        u = np.float32(sx - x2[q])
        ub = np.float32(sx - x7[q])
        w = np.float32(sy - y2[q])
        wb = np.float32(sy - y7[q])
        p, pb, m, mb = u + w, ub + wb, u - w, ub - wb
        d_p += a2 * (p + pb)
        d_m += a2 * (m + mb)
        v_p += a2 * (p * p + pb * pb)
        v_m += a2 * (m * m + mb * mb)
        u = np.float32(sx - x3[q])
        ub = np.float32(sx - x8[q])
        w = np.float32(sy - y3[q])
        wb = np.float32(sy - y8[q])
        p, pb, m, mb = u + w, ub + wb, u - w, ub - wb
        d_p += a3 * (p + pb)
        d_m += a3 * (m + mb)
        v_p += a3 * (p * p + pb * pb)
        v_m += a3 * (m * m + mb * mb)
        u = np.float32(sx - x4[q])
        ub = np.float32(sx - x9[q])
        w = np.float32(sy - y4[q])
        wb = np.float32(sy - y9[q])
        p, pb, m, mb = u + w, ub + wb, u - w, ub - wb
        d_p += a4 * (p + pb)
        d_m += a4 * (m + mb)
        v_p += a4 * (p * p + pb * pb)
        v_m += a4 * (m * m + mb * mb)
        col[2 * COL + j] = v_p - d_p * d_p
        col[3 * COL + j] = v_m - d_m * d_m
        if parts is None:
            t_p = (sx + sy) - d_p
            t_m = (sx - sy) - d_m
            col[j] = t_p
            col[COL + j] = t_m
            far = np.int32(_far(t_p, t_m, bound))
            fewest = min(fewest, far)
            most = max(most, far)
        else:
            col[j] = sx + sy
            col[COL + j] = sx - sy
            col[4 * COL + j] = -d_p
            col[5 * COL + j] = -d_m
    return _far_answer(fewest, most)


@jit()
def _centre_remainders(
    rx: np.ndarray, ry: np.ndarray, centre: int, j0: int, width: int, col: np.ndarray
) -> None:
    """Add float32's rounding of ``s_x + s_y`` and ``s_x - s_y`` to ``d_p``, ``d_m`` (two parts).

    For float32 pixels (:func:`_vertical_sweep_sd_xy` with ``parts``), whose sum and
    difference float32 may round (by up to half an ulp of ``|s_x| + |s_y|``, 1e-3 for
    data near 1e4, which would enter every deviation of the horizontal pass): the
    exact error of each rounded sum (Knuth's two-sum; the same for ``(y, x)``, up
    to the sign of the difference's).
    """
    if centre < 0 or j0 < 0 or width < 0:
        return
    xc, yc = rx[centre], ry[centre]
    for j in range(width):
        sx = xc[j0 + j]
        sy = yc[j0 + j]
        sp = sx + sy
        bp = sp - sx
        ep = (sx - (sp - bp)) + (sy - bp)
        ny = -sy
        sm = sx + ny
        bm = sm - sx
        em = (sx - (sm - bm)) + (ny - bm)
        col[4 * COL + j] += np.float32(ep)
        col[5 * COL + j] += np.float32(em)


@jit()
def _far(t_p: float, t_m: float, bound: float) -> bool:
    """Whether a column's one-part means lie beyond ``+-bound`` (NaN does): it needs two parts."""
    return (not (-bound <= t_p <= bound)) | (not (-bound <= t_m <= bound))


@jit()
def _far_answer(fewest: int, most: int) -> int:
    """``_FAR_NONE``, ``_FAR_SOME`` or ``_FAR_ALL`` from a sweep's least and greatest flag.

    Flags are 0 or 1; a sweep that flagged nothing keeps its starting ``fewest = 1,
    most = 0`` and answers ``_FAR_NONE``.
    """
    return int(most + (fewest & most))


@jit()
def _deviation(
    col: np.ndarray, c: float, d: float, j: np.uint64, rd: np.uint64, parts: np.ndarray | None
) -> float:
    """``m_c - m_j`` of the column means: ``c - t_j`` (one part), or ``(c - s_j) + (d - d_j)``."""
    if parts is None:
        return c - col[j]
    return (c - col[j]) + (d - col[j + rd])


@jit(fastmath=CONTRACT)
def _horizontal_sweep_sd(
    col: np.ndarray,
    g: np.ndarray,
    n_out: int,
    cov_norm: float,
    parts: np.ndarray | None,
    mo: np.ndarray,
    first: int,
) -> None:
    """``mu_p, mu_m, var(p), var(m)`` of a tile into ``mo[(first + q) * ACC + o]``, one sweep.

    :func:`_horizontal_sweep_m`'s form on the column statistics of
    :func:`_vertical_sweep_sd`, for odd windows of up to ``2 * _PAIRS + 1``
    taps: output ``o``'s centre column is ``o + _PAIRS`` (the vertical pass
    writes a smaller window's columns that far in) and the missing taps have
    weight 0 (their columns hold finite values: 0 times them adds exactly 0).
    The column means are those of :func:`_vertical_sweep_sd` with the same
    ``parts``: with None one float32 number each, so that a tap costs four loads
    and one subtraction per basis image instead of six and three.
    """
    half = g.shape[0] // 2
    if n_out < 0 or half > _PAIRS or half < 0 or first < 0:
        return
    b0, b1, b2, b3, b4 = _outer_weights(g)
    b_c = g[half]
    h = np.uint64(_PAIRS)
    r1 = np.uint64(COL)
    r2 = np.uint64(2 * COL)
    r3 = np.uint64(3 * COL)
    r4 = np.uint64(4 * COL)
    norm = np.float32(cov_norm)
    zero = np.float32(0.0)
    base = first * ACC
    for o in range(n_out):
        ou = np.uint64(o)
        c = ou + h
        cp, cm = col[c], col[c + r1]
        dp, dm = (zero, zero) if parts is None else (col[c + r4], col[c + r4 + r1])
        e_pp = b_c * col[c + r2]
        e_mm = b_c * col[c + r3]
        ja = ou + np.uint64(0)
        jb = ou + np.uint64(10)
        e = _deviation(col, cp, dp, ja, r4, parts)
        eb = _deviation(col, cp, dp, jb, r4, parts)
        f = _deviation(col, cm, dm, ja + r1, r4, parts)
        fb = _deviation(col, cm, dm, jb + r1, r4, parts)
        e_p = b0 * (e + eb)
        e_m = b0 * (f + fb)
        e_pp += b0 * ((e * e + col[ja + r2]) + (eb * eb + col[jb + r2]))
        e_mm += b0 * ((f * f + col[ja + r3]) + (fb * fb + col[jb + r3]))
        ja = ou + np.uint64(1)
        jb = ou + np.uint64(9)
        e = _deviation(col, cp, dp, ja, r4, parts)
        eb = _deviation(col, cp, dp, jb, r4, parts)
        f = _deviation(col, cm, dm, ja + r1, r4, parts)
        fb = _deviation(col, cm, dm, jb + r1, r4, parts)
        e_p += b1 * (e + eb)
        e_m += b1 * (f + fb)
        e_pp += b1 * ((e * e + col[ja + r2]) + (eb * eb + col[jb + r2]))
        e_mm += b1 * ((f * f + col[ja + r3]) + (fb * fb + col[jb + r3]))
        ja = ou + np.uint64(2)
        jb = ou + np.uint64(8)
        e = _deviation(col, cp, dp, ja, r4, parts)
        eb = _deviation(col, cp, dp, jb, r4, parts)
        f = _deviation(col, cm, dm, ja + r1, r4, parts)
        fb = _deviation(col, cm, dm, jb + r1, r4, parts)
        e_p += b2 * (e + eb)
        e_m += b2 * (f + fb)
        e_pp += b2 * ((e * e + col[ja + r2]) + (eb * eb + col[jb + r2]))
        e_mm += b2 * ((f * f + col[ja + r3]) + (fb * fb + col[jb + r3]))
        ja = ou + np.uint64(3)
        jb = ou + np.uint64(7)
        e = _deviation(col, cp, dp, ja, r4, parts)
        eb = _deviation(col, cp, dp, jb, r4, parts)
        f = _deviation(col, cm, dm, ja + r1, r4, parts)
        fb = _deviation(col, cm, dm, jb + r1, r4, parts)
        e_p += b3 * (e + eb)
        e_m += b3 * (f + fb)
        e_pp += b3 * ((e * e + col[ja + r2]) + (eb * eb + col[jb + r2]))
        e_mm += b3 * ((f * f + col[ja + r3]) + (fb * fb + col[jb + r3]))
        ja = ou + np.uint64(4)
        jb = ou + np.uint64(6)
        e = _deviation(col, cp, dp, ja, r4, parts)
        eb = _deviation(col, cp, dp, jb, r4, parts)
        f = _deviation(col, cm, dm, ja + r1, r4, parts)
        fb = _deviation(col, cm, dm, jb + r1, r4, parts)
        e_p += b4 * (e + eb)
        e_m += b4 * (f + fb)
        e_pp += b4 * ((e * e + col[ja + r2]) + (eb * eb + col[jb + r2]))
        e_mm += b4 * ((f * f + col[ja + r3]) + (fb * fb + col[jb + r3]))
        if parts is None:
            mo[base + o] = cp - e_p
            mo[base + ACC + o] = cm - e_m
        else:
            mo[base + o] = cp + (dp - e_p)
            mo[base + ACC + o] = cm + (dm - e_m)
        mo[base + 2 * ACC + o] = norm * (e_pp - e_p * e_p)
        mo[base + 3 * ACC + o] = norm * (e_mm - e_m * e_m)


@jit()
def _sd_limit(c2: float) -> float:
    """How far from zero a column mean may lie and stay one float32 number (see above)."""
    return _ONE_PART_SPREAD * np.sqrt(c2)


@jit()
def _sd_moments(
    rp: np.ndarray,
    rm: np.ndarray,
    g: np.ndarray,
    i: int,
    j0: int,
    n_tile: int,
    limit: float,
    cov_norm: float,
    summed: bool,
    col: np.ndarray,
    view: np.ndarray,
    mo: np.ndarray,
) -> None:
    """``mu_p, mu_m, var(p), var(m)`` of the outputs ``j0 .. j0 + n_tile`` of row ``i``.

    ``view`` is ``col[_PAIRS - win_size // 2:]`` (where the vertical sweeps write a
    smaller window's columns) and ``limit`` is ``_ONE_PART_SPREAD * sqrt(C2)``, both
    made once per row by the caller (:func:`_sd_limit`).
    From the column means in one part, except for the outputs whose window holds
    a column mean beyond ``limit`` (a data range far below
    the pixels' values, data far from zero, NaN): those come from the same sweeps
    with the means in two parts, whose precision does not depend on the means'
    size (made in ``mo`` rows 4..7 where the tile holds both kinds of window). The
    choice is the window's alone, so any tiling of the image gives the same bits.
    """
    win_size = g.shape[0]
    half = win_size // 2
    if half < 0 or half > _PAIRS or n_tile < 0:
        return
    skip = _PAIRS - half
    width = n_tile + win_size - 1
    if summed:
        marked = _vertical_sweep_sd(rp, rm, g, i, j0, width, view, None, limit)
    else:
        marked = _vertical_sweep_sd_xy(rp, rm, g, i, j0, width, view, None, limit)
    if marked != _FAR_ALL:
        _horizontal_sweep_sd(col, g, n_tile, cov_norm, None, mo, 0)
    if marked == _FAR_NONE:
        return
    if marked == _FAR_SOME:
        # Both kinds of window: mark the columns (row 6) before the two-part sweep
        # overwrites the one-part means, with the sweep's own test.
        bound = np.float32(limit)
        for j in range(width):
            view[6 * COL + j] = np.float32(_far(view[j], view[COL + j], bound))
    if summed:
        _vertical_sweep_sd(rp, rm, g, i, j0, width, view, _TWO_PARTS, limit)
    else:
        _vertical_sweep_sd_xy(rp, rm, g, i, j0, width, view, _TWO_PARTS, limit)
        _centre_remainders(rp, rm, (i + half) % win_size, j0, width, view)
    if marked == _FAR_ALL:
        # Every window holds a marked column (data far from zero, say).
        _horizontal_sweep_sd(col, g, n_tile, cov_norm, _TWO_PARTS, mo, 0)
        return
    _horizontal_sweep_sd(col, g, n_tile, cov_norm, _TWO_PARTS, mo, 4)
    # Marked columns in each output's window, kept as a running sum.
    flags = 6 * COL + skip
    inside = 0.0
    for j in range(win_size - 1):
        inside += col[flags + j]
    for o in range(n_tile):
        inside += col[flags + o + win_size - 1]
        if inside > 0.0:
            for q in range(4):
                mo[q * ACC + o] = mo[(q + 4) * ACC + o]
        inside -= col[flags + o]


@jit()
def _combine_score(
    mo: np.ndarray, n_out: int, c1: float, c2: float, deficit: np.ndarray, o0: int
) -> None:
    """``deficit[o0:o0 + n_out]``: float64 ``d = 1 - ssim`` from ``mu_p, mu_m, var(p), var(m)``.

    One quotient (see the comment above :func:`_vertical_sweep_sd`); only squares
    of ``mu_m`` and ``var(m)`` enter, so swapping x and y (m -> -m) changes
    nothing, and m = 0 gives d = 0 exactly. No contraction, as in
    :func:`~pipeline.kernels.cpu.combine.combine_row`.
    """
    if o0 < 0 or n_out < 0:
        return
    for j in range(n_out):
        mu_p = np.float64(mo[j])
        mu_m = np.float64(mo[ACC + j])
        var_p = np.float64(mo[2 * ACC + j])
        var_m = np.float64(mo[3 * ACC + j])
        sq_p = mu_p * mu_p
        sq_m = mu_m * mu_m
        dl = 0.5 * (sq_p + sq_m) + c1
        l_num = 0.5 * (sq_p - sq_m) + c1
        dc = 0.5 * (var_p + var_m) + c2
        deficit[o0 + j] = (sq_m * dc + var_m * l_num) / (dl * dc)


@jit()
def gaussian_score_row(
    rp: np.ndarray,
    rm: np.ndarray,
    g: np.ndarray,
    i: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    summed: bool,
    col: np.ndarray,
    mo: np.ndarray,
    deficit: np.ndarray,
) -> None:
    """float64 deficits ``1 - ssim`` of output row ``i`` (odd windows of <= 11 taps), for a score.

    The sum/difference basis (comment above :func:`_vertical_sweep_sd`), in
    column tiles as :func:`gaussian_row`. With ``summed``, ``rp`` and ``rm`` are the
    ring of ``x + y`` and ``x - y`` rows (:func:`load_rows_sd`; float32 for
    uint8/uint16 pixels, float64 for float64 pixels: exact, or nearly so); without,
    the float32 ring of ``x`` and ``y`` rows (float32 pixels, whose sum float32
    would round and a float64 ring would slow down; :func:`_vertical_sweep_sd_xy`).
    ``col`` (``>= 7 * COL + 2 * _PAIRS`` float32) must hold finite values where no
    tile writes (zeros at first): a window of fewer than 11 taps reads them with
    weight 0. ``mo`` holds ``8 * ACC`` float32 (:func:`_sd_moments`).
    """
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    view = col[_PAIRS - g.shape[0] // 2 :]
    limit = _sd_limit(c2)
    for j0 in range(0, n_out, tile):
        n_tile = min(tile, n_out - j0)
        _sd_moments(rp, rm, g, i, j0, n_tile, limit, cov_norm, summed, col, view, mo)
        _combine_score(mo, n_tile, c1, c2, deficit, j0)


@jit()
def gaussian_sd_row(
    rp: np.ndarray,
    rm: np.ndarray,
    g: np.ndarray,
    i: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    summed: bool,
    planes: int,
    col: np.ndarray,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
) -> None:
    """Output row ``i``'s ssim and cs maps in the sum/difference basis (``planes`` 0 or 2).

    :func:`gaussian_score_row`'s ring and passes (four moments; odd windows of up to
    11 taps), then :func:`~pipeline.kernels.cpu.combine.combine_row_sd`: maps without
    the components (MS-SSIM's scales) need no more than the score does. ``planes``,
    ``out`` and ``deficit`` as :func:`~pipeline.kernels.cpu.combine.combine_row`.
    """
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    view = col[_PAIRS - g.shape[0] // 2 :]
    limit = _sd_limit(c2)
    for j0 in range(0, n_out, tile):
        n_tile = min(tile, n_out - j0)
        _sd_moments(rp, rm, g, i, j0, n_tile, limit, cov_norm, summed, col, view, mo)
        combine_row_sd(mo, n_tile, c1, c2, planes, out, deficit, j0)
