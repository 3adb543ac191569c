"""Uniform (box) window of the fused CPU kernel: float64 running sums, row by row.

The window's vertical sums are running column sums (:func:`add_row` at the
start of a chunk of rows, then :func:`swap_row`: add the row entering the
window, remove the row leaving it) and its horizontal sums slide along the row
(:func:`_slide_row`), so the cost per pixel does not depend on ``win_size``; the
7-tap window (scikit-image's default) instead adds its seven column sums per
output pixel, tile by tile in registers (:func:`_tile_moments7`: one vectorised
pass, no serial chain, no drift along the row).
:func:`_uniform_moments` turns the window sums into float32 moments and
:func:`~pipeline.kernels.cpu.combine.combine_row_m` those into maps, tile by
tile (:func:`uniform_row`). The moments are six: the five and ``var(x - y) =
sigma_x^2 + sigma_y^2 - 2 sigma_xy``, formed from the unrounded float64 (or exact
integer) moments before they are rounded to float32, so that ``1 - cs`` does not
cancel on near-identical high-contrast textures (8e-8 of the mean of a uint8
checkerboard 128+-50 against 128+-48 from the five float32 moments; ~1e-10 now).
The chunk driver (:func:`pipeline.kernels.cpu.chunk.maps_chunks`) restarts the sums at each chunk,
which bounds rounding drift for float input (integer input is summed exactly).

uint8 input under a window of at most :data:`INT_TAPS` taps takes int32 twins
of these steps (:func:`add_row_int`, :func:`swap_row_int`,
:func:`uniform_row_int`), with the two means' sums packed in one int32: every sum is
an exact integer, and each variance is
rounded once from its exact integer numerator (``var(x - y)``'s
too). The 7-tap window (scikit-image's
default) forms its box sums tile by tile in registers, straight from the column
sums (:func:`_tile_moments_int7`); other sizes add two taps per vectorised pass
over the tile (:func:`_tile_box_sums_int`, the tap count a run-time value).
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.cpu.combine import ACC, TILE, combine_row_m, combine_score_v, jit

__all__ = [
    "INT_ROWS",
    "INT_TAPS",
    "SCORE_INT_ROWS",
    "add_row",
    "add_row_int",
    "data_shift",
    "swap_row",
    "swap_row_int",
    "swap_row_int_score",
    "uniform_row",
    "uniform_row_int",
]

# ---------------------------------------------------------------------------
# Uniform window: float64 running sums
#
# Running sums cannot be centred per window, so they stay in float64: every
# uint8/uint16/float32 pixel and every product of two integer pixels is exact
# there, and the cancellation in E[x^2] - mu^2 happens in float64. Float data
# are summed less one shift per block (data_shift): E[x^2] - mu^2 in float64
# loses ~1e-16 mu^2, which is ~1e-8 of the variance of data offset by 1e4 and,
# through the running sums, moves the mean SSIM by ~2e-8; about a value near
# the data the loss is that of the data's spread. var(x - y) is var_x + var_y - 2 cov
# of the float64 moments (before rounding): its error is that of the three, ~1e-16
# of the shifted second moments, not float32's 6e-8 of them.


def data_shift(x: np.ndarray, y: np.ndarray) -> float:
    """The value the uniform path subtracts from float pixels before summing them.

    The median of a sparse grid of samples (every ``side // 16``-th row and column) of both
    images: near the bulk of the data, whatever its offset, and the same for
    ``(x, y)`` and ``(y, x)`` (the median of the same values), which keeps the
    maps exactly symmetric. Integer pixels are summed exactly and take 0, as
    do images whose samples are all NaN or infinite.
    """
    if x.dtype.kind != "f":
        return 0.0
    steps = (max(1, x.shape[0] // 16), max(1, x.shape[1] // 16))
    grid = (slice(None, None, steps[0]), slice(None, None, steps[1]))
    sample = np.concatenate([x[grid].ravel(), y[grid].ravel()]).astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    return float(np.median(sample))


@jit()
def add_row(
    x: np.ndarray, y: np.ndarray, row: int, sign: float, shift: float, v: np.ndarray
) -> None:
    """Add (``sign=1``) or remove (``sign=-1``) one input row's moments from the column sums.

    The moments are those of ``x - shift`` and ``y - shift`` (see :func:`data_shift`).
    """
    # A proof for LLVM that the indices below are non-negative (see combine_row).
    if row < 0:
        return
    for j in range(x.shape[1]):
        a = np.float64(x[row, j]) - shift
        b = np.float64(y[row, j]) - shift
        v[0, j] += sign * a
        v[1, j] += sign * b
        v[2, j] += sign * (a * a)
        v[3, j] += sign * (b * b)
        v[4, j] += sign * (a * b)


@jit()
def swap_row(x: np.ndarray, y: np.ndarray, new: int, old: int, shift: float, v: np.ndarray) -> None:
    """Add input row ``new`` and remove row ``old`` from the column sums in one pass.

    The same two float64 operations per sum and pixel, in the same order, as
    ``add_row(new, +1, shift)`` then ``add_row(old, -1, shift)``: identical sums,
    half the passes over ``v``.
    """
    if new < 0 or old < 0:
        return
    for j in range(x.shape[1]):
        a = np.float64(x[new, j]) - shift
        b = np.float64(y[new, j]) - shift
        p = np.float64(x[old, j]) - shift
        q = np.float64(y[old, j]) - shift
        v[0, j] = (v[0, j] + a) - p
        v[1, j] = (v[1, j] + b) - q
        v[2, j] = (v[2, j] + a * a) - p * p
        v[3, j] = (v[3, j] + b * b) - q * q
        v[4, j] = (v[4, j] + a * b) - p * q


@jit()
def _slide_row(win_size: int, v: np.ndarray, m: np.ndarray) -> None:
    """Horizontal box sums of the column sums, one add and one subtract per output pixel.

    The five sums slide side by side: five independent dependency chains per step
    instead of one, so the additions overlap (the same operations, in the same
    order, per sum as one sum at a time).
    """
    # A proof for LLVM that the indices below are non-negative (see combine_row).
    if win_size < 1:
        return
    n_out = m.shape[1]
    s0 = s1 = s2 = s3 = s4 = 0.0
    for k in range(win_size):
        s0 += v[0, k]
        s1 += v[1, k]
        s2 += v[2, k]
        s3 += v[3, k]
        s4 += v[4, k]
    m[0, 0] = s0
    m[1, 0] = s1
    m[2, 0] = s2
    m[3, 0] = s3
    m[4, 0] = s4
    for j in range(1, n_out):
        new = j + win_size - 1
        old = j - 1
        # The difference first: one dependent add per step instead of two.
        s0 += v[0, new] - v[0, old]
        s1 += v[1, new] - v[1, old]
        s2 += v[2, new] - v[2, old]
        s3 += v[3, new] - v[3, old]
        s4 += v[4, new] - v[4, old]
        m[0, j] = s0
        m[1, j] = s1
        m[2, j] = s2
        m[3, j] = s3
        m[4, j] = s4


@jit()
def _box7_f64(r: np.ndarray, j: np.uint64) -> float:
    """``r[j] + ... + r[j + 6]`` in float64, left to right, offsets constant."""
    return (
        r[j]
        + r[j + np.uint64(1)]
        + r[j + np.uint64(2)]
        + r[j + np.uint64(3)]
        + r[j + np.uint64(4)]
        + r[j + np.uint64(5)]
        + r[j + np.uint64(6)]
    )


@jit()
def _tile_moments7(
    v: np.ndarray,
    j0: int,
    n_tile: int,
    scale: float,
    cov_norm: float,
    shift: float,
    mo: np.ndarray,
) -> None:
    """:func:`_uniform_moments` of a 7x7 window, its box sums formed in registers.

    The seven-column sums of the float64 column sums are added directly (one
    vectorised pass over the tile) instead of sliding along the row
    (:func:`_slide_row`, a serial chain). For integer input every sum is an
    exact integer either way (the same moments); for float input each window
    sum is now seven additions of column sums instead of a running sum whose
    rounding drifts along the row. ``var(x - y)`` (row 5) as :func:`_uniform_moments`.
    """
    if j0 < 0 or n_tile < 0:
        return
    base = np.uint64(j0)
    v0, v1, v2, v3, v4 = v[0], v[1], v[2], v[3], v[4]
    for o in range(np.uint64(n_tile)):
        j = base + o
        mu_x = _box7_f64(v0, j) * scale
        mu_y = _box7_f64(v1, j) * scale
        mo[o] = mu_x + shift
        mo[np.uint64(ACC) + o] = mu_y + shift
        var_x = cov_norm * (_box7_f64(v2, j) * scale - mu_x * mu_x)
        var_y = cov_norm * (_box7_f64(v3, j) * scale - mu_y * mu_y)
        cov = cov_norm * (_box7_f64(v4, j) * scale - mu_x * mu_y)
        mo[np.uint64(2 * ACC) + o] = var_x
        mo[np.uint64(3 * ACC) + o] = var_y
        mo[np.uint64(4 * ACC) + o] = cov
        mo[np.uint64(5 * ACC) + o] = (var_x + var_y) - 2.0 * cov


@jit()
def uniform_row(
    v: np.ndarray,
    m: np.ndarray,
    win_size: int,
    n_out: int,
    scale: float,
    shift: float,
    c1: float,
    c2: float,
    cov_norm: float,
    planes: int,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
) -> None:
    """One output row of the uniform path from the column sums ``v``, in column tiles.

    ``v`` holds the sums of the data less ``shift`` (:func:`add_row`); ``mo`` receives
    six moments per tile (:func:`_uniform_moments`), combined by
    :func:`~pipeline.kernels.cpu.combine.combine_row_m`.
    """
    if win_size != 7:
        _slide_row(win_size, v, m)
    for j0 in range(0, n_out, TILE):
        n_tile = min(TILE, n_out - j0)
        if win_size == 7:
            _tile_moments7(v, j0, n_tile, scale, cov_norm, shift, mo)
        else:
            _uniform_moments(m, j0, n_tile, scale, cov_norm, shift, mo)
        # One call site: every inlined copy of combine_row_m adds compilation time.
        combine_row_m(mo, n_tile, c1, c2, planes, out, deficit, j0)


@jit()
def _uniform_moments(
    m: np.ndarray,
    j0: int,
    n_tile: int,
    scale: float,
    cov_norm: float,
    shift: float,
    mo: np.ndarray,
) -> None:
    """float32 moments of columns ``j0 .. j0 + n_tile`` from the float64 window sums.

    The cancellation in E[x^2] - mu^2 happens here, in float64; the sums are
    of the shifted data, so ``shift`` is added back to the means. Row 5 is
    ``var(x - y) = sigma_x^2 + sigma_y^2 - 2 sigma_xy`` of the float64 moments, rounded
    once: exactly 0 for equal images (the three are the same number) and the same
    for swapped ones (the sum commutes, the sums of ``x y`` and ``y x`` are equal).
    """
    if j0 < 0 or n_tile < 0:
        return
    for j in range(n_tile):
        mu_x = m[0, j0 + j] * scale
        mu_y = m[1, j0 + j] * scale
        mo[j] = mu_x + shift
        mo[ACC + j] = mu_y + shift
        var_x = cov_norm * (m[2, j0 + j] * scale - mu_x * mu_x)
        var_y = cov_norm * (m[3, j0 + j] * scale - mu_y * mu_y)
        cov = cov_norm * (m[4, j0 + j] * scale - mu_x * mu_y)
        mo[2 * ACC + j] = var_x
        mo[3 * ACC + j] = var_y
        mo[4 * ACC + j] = cov
        mo[5 * ACC + j] = (var_x + var_y) - 2.0 * cov


# ---------------------------------------------------------------------------
# Uniform window over uint8 images: exact int32 sums
#
# uint8 pixels and their products are integers, and so are all their window
# sums: in int32 they are exact (no drift, any order of addition), and LLVM
# works on 8 lanes instead of float64's 4.
# The variance is formed from the exact integers, N S_xx - S_x^2 (exact in
# int32 while N^2 * 255^2 < 2^31, i.e. N = win_size^2 <= 181: up to 13 taps),
# then scaled in float64 and rounded once to float32, like the float64 path's
# moments (whose S_xx / N - mu^2 loses ~1e-16 of S_xx / N before that rounding).
# var(x - y)'s numerator is the sum of the exact numerators, N (S_xx + S_yy - 2 S_xy)
# - (S_x - S_y)^2 = N S_mm - S_m^2 with m = x - y in [-255, 255]: in [0, N^2 255^2],
# the same int32 bound (intermediate sums wrap, the result is exact).

# The two first sums travel as one int32, S_x + 2^16 S_y (the *packed means*): a
# window's S_x and S_y are at most INT_TAPS^2 * 255 = 43095 < 2^16, so neither half
# carries into the other, and every pass adds one row where it added two (the 7x7
# tile pass 1.37 -> 1.19 ns per pixel, one thread, Sapphire Rapids). A 13x13 window's
# packed sum can pass 2^31 and wrap: the halves are read back with masks, which
# the wrap leaves exact (sums modulo 2^32).

#: Widest uniform window whose uint8 sums and variance numerators fit int32.
INT_TAPS = 13
#: Rows of the int32 column sums: the packed means, then S_xx, S_yy, S_xy.
INT_ROWS = 4


@jit()
def _pixels(
    x: np.ndarray, y: np.ndarray, new: int, old: int, j: int
) -> tuple[np.int32, np.int32, np.int32, np.int32]:
    """Column ``j``'s uint8 pixels, as int32: ``x, y`` of row ``new``, then of row ``old``."""
    return np.int32(x[new, j]), np.int32(y[new, j]), np.int32(x[old, j]), np.int32(y[old, j])


@jit()
def _packed_step(a: np.int32, b: np.int32, p: np.int32, q: np.int32) -> np.int32:
    """The packed means' change when pixels ``(a, b)`` enter a column and ``(p, q)`` leave.

    ``(a - p) + 2^16 (b - q)``, negative steps included (two's complement: the sum
    stays ``S_x + 2^16 S_y`` of the window's rows).
    """
    return np.int32(np.int32(a - p) + np.int32(np.int32(b - q) << 16))


@jit()
def add_row_int(x: np.ndarray, y: np.ndarray, row: int, v: np.ndarray, score: bool) -> None:
    """Add one uint8 input row's moments to the int32 column sums ``v``.

    :data:`INT_ROWS` rows (the packed means, ``S_xx``, ``S_yy``, ``S_xy``), or with
    ``score`` the :data:`SCORE_INT_ROWS` of a score (the packed means, ``S_xx + S_yy``,
    ``S_mm`` with ``m = x - y``).
    """
    if row < 0:
        return
    zero = np.int32(0)
    for j in range(x.shape[1]):
        a = np.int32(x[row, j])
        b = np.int32(y[row, j])
        # numba widens integer arithmetic to int64; the int32 casts let LLVM
        # narrow it back (the sums never exceed int32, see INT_TAPS).
        v[0, j] = np.int32(v[0, j] + _packed_step(a, b, zero, zero))
        if score:
            d = np.int32(a - b)
            v[1, j] = np.int32(v[1, j] + np.int32(a * a + b * b))
            v[2, j] = np.int32(v[2, j] + d * d)
        else:
            v[1, j] = np.int32(v[1, j] + a * a)
            v[2, j] = np.int32(v[2, j] + b * b)
            v[3, j] = np.int32(v[3, j] + a * b)


@jit()
def swap_row_int(x: np.ndarray, y: np.ndarray, new: int, old: int, v: np.ndarray) -> None:
    """Add uint8 input row ``new`` to the int32 column sums and remove row ``old`` (exact)."""
    if new < 0 or old < 0:
        return
    for j in range(x.shape[1]):
        a, b, p, q = _pixels(x, y, new, old, j)
        v[0, j] = np.int32(v[0, j] + _packed_step(a, b, p, q))
        # a^2 - p^2 = (a - p)(a + p): one multiply instead of two.
        v[1, j] = np.int32(v[1, j] + np.int32(a - p) * np.int32(a + p))
        v[2, j] = np.int32(v[2, j] + np.int32(b - q) * np.int32(b + q))
        # a b - p q = ((a + p)(b - q) + (a - p)(b + q)) / 2: factors within 16 bits,
        # which LLVM multiplies in 32-bit lanes (a b in 64-bit lanes otherwise).
        cross = np.int32(a + p) * np.int32(b - q) + np.int32(a - p) * np.int32(b + q)
        v[3, j] = np.int32(v[3, j] + (np.int32(cross) >> 1))


@jit()
def _box_sums_int(
    src: np.ndarray, win_size: int, n_out: int, dst: np.ndarray, tmp: np.ndarray
) -> None:
    """``dst[j] = sum(src[j:j + win_size])`` for ``j < n_out``, vectorised, exact in int32.

    A running sum along the row is a serial chain (and its loads and stores
    through five rows ran at ~3 ns per pixel); instead sums of 2, 4, 8, ...
    neighbours are built by doubling, each one pass that LLVM vectorises, and
    ``dst`` adds those that make up ``win_size`` in binary (7 = 1 + 2 + 4).
    Integer sums are exact in any order. ``tmp`` holds two rows of ``src``'s
    length; the doubled sums live there, addressed by row number (one array
    variable bound to different arrays in a loop kept LLVM from vectorising).

    No longer on the kernel's path (the tile passes, :func:`_tile_moments_int7`
    and :func:`_tile_box_sums_int`, replaced it: 1.1-2.1x faster); kept for the
    assembly table of ``benchmarks/bench_stages.py --asm``.
    """
    width = src.shape[0]
    if win_size < 1 or n_out < 0 or width < n_out + win_size - 1:
        return
    n = np.uint64(n_out)
    first = True
    offset = np.uint64(0)
    if win_size & 1:
        for j in range(n):
            dst[j] = src[j]
        first = False
        offset = np.uint64(1)
    remaining = win_size >> 1
    if remaining == 0:
        return
    for j in range(np.uint64(width - 1)):
        tmp[0, j] = np.int32(src[j] + src[j + np.uint64(1)])
    side = 0
    length = np.uint64(2)
    while True:
        if remaining & 1:
            if first:
                for j in range(n):
                    dst[j] = tmp[side, j + offset]
                first = False
            else:
                for j in range(n):
                    dst[j] = np.int32(dst[j] + tmp[side, j + offset])
            offset += length
        remaining >>= 1
        if remaining == 0:
            return
        # Sums of 2 * length neighbours, wherever the row has them: the later
        # steps read them up to offset + length <= win_size.
        other = 1 - side
        for j in range(np.uint64(width + 1) - 2 * length):
            tmp[other, j] = np.int32(tmp[side, j] + tmp[side, j + length])
        side = other
        length *= np.uint64(2)


@jit()
def _int_moments(m: np.ndarray, j0: int, n_tile: int, n: int, mo: np.ndarray) -> None:
    """float32 window sums and variance numerators of columns ``j0 .. j0 + n_tile``.

    ``m``'s rows as the column sums' (:data:`INT_ROWS`: the packed means first), over
    windows of ``n`` pixels. Six rows, each a conversion of an exact int32, with no
    scale applied (:func:`uniform_row_int` scales the constants instead): ``S_x, S_y``
    (exact in float32, below 2^24), the numerators ``n Q_x - S_x^2``, ``n Q_y - S_y^2``
    and ``n P - S_x S_y``, and ``var(x - y)``'s, the sum of the three (each rounded
    once, from its exact value).
    """
    if j0 < 0 or n_tile < 0:
        return
    n32 = np.int32(n)
    for j in range(n_tile):
        s_x, s_y = _unpacked(m[0, j0 + j])
        var_x = np.int32(n32 * m[1, j0 + j] - s_x * s_x)
        var_y = np.int32(n32 * m[2, j0 + j] - s_y * s_y)
        cov = np.int32(n32 * m[3, j0 + j] - s_x * s_y)
        mo[j] = np.float32(s_x)
        mo[ACC + j] = np.float32(s_y)
        mo[2 * ACC + j] = np.float32(var_x)
        mo[3 * ACC + j] = np.float32(var_y)
        mo[4 * ACC + j] = np.float32(cov)
        mo[5 * ACC + j] = np.float32(np.int32(np.int32(var_x + var_y) - np.int32(2 * cov)))


@jit()
def _unpacked(packed: np.int32) -> tuple[np.int32, np.int32]:
    """``S_x, S_y`` of a packed window sum ``S_x + 2^16 S_y`` (modulo 2^32: masks, no sign)."""
    return np.int32(packed & 0xFFFF), np.int32((packed >> 16) & 0xFFFF)


@jit()
def _box7(r: np.ndarray, j: np.uint64) -> np.int32:
    """``r[j] + ... + r[j + 6]`` in int32 (exact: see :data:`INT_TAPS`), offsets constant."""
    return np.int32(
        r[j]
        + r[j + np.uint64(1)]
        + r[j + np.uint64(2)]
        + r[j + np.uint64(3)]
        + r[j + np.uint64(4)]
        + r[j + np.uint64(5)]
        + r[j + np.uint64(6)]
    )


@jit()
def _tile_moments_int7(v: np.ndarray, j0: int, n_tile: int, mo: np.ndarray) -> None:
    """:func:`_int_moments` of a 7x7 window, columns ``j0 .. j0 + n_tile``, from column sums.

    The seven-column box sums of the four column sums are formed in registers
    and turned into the six rows at once (one pass, 8 int32 lanes): the tile's
    column sums stay in L1 and no window sum is stored. The whole-row doubling
    of :func:`_box_sums_int` wrote and re-read five rows of window sums
    (~2 ns per pixel at 2048 columns, most of it out of L1).
    """
    if j0 < 0 or n_tile < 0:
        return
    n32 = np.int32(49)
    base = np.uint64(j0)
    v0, v1, v2, v3 = v[0], v[1], v[2], v[3]
    for o in range(np.uint64(n_tile)):
        j = base + o
        s_x, s_y = _unpacked(_box7(v0, j))
        var_x = np.int32(n32 * _box7(v1, j) - s_x * s_x)
        var_y = np.int32(n32 * _box7(v2, j) - s_y * s_y)
        cov = np.int32(n32 * _box7(v3, j) - s_x * s_y)
        mo[o] = np.float32(s_x)
        mo[np.uint64(ACC) + o] = np.float32(s_y)
        mo[np.uint64(2 * ACC) + o] = np.float32(var_x)
        mo[np.uint64(3 * ACC) + o] = np.float32(var_y)
        mo[np.uint64(4 * ACC) + o] = np.float32(cov)
        mo[np.uint64(5 * ACC) + o] = np.float32(
            np.int32(np.int32(var_x + var_y) - np.int32(2 * cov))
        )


@jit()
def _tile_box_sums_int(
    v: np.ndarray, rows: int, j0: int, n_tile: int, win_size: int, m: np.ndarray
) -> None:
    """Box sums of ``win_size`` columns of the int32 column sums, tile ``j0 .. j0 + n_tile``.

    The first ``rows`` rows of ``v``; the packed means' sums wrap past 2^31 under
    13 taps, which :func:`_unpacked` leaves exact.

    Into ``m[q, j0 + o]``, two taps at a time over the whole tile (each pair one
    vectorised pass; the tile's rows stay in L1). The tap count is a run-time
    value: one compiled routine for every window size.
    """
    if j0 < 0 or n_tile < 0 or win_size < 1:
        return
    base = np.uint64(j0)
    n = np.uint64(n_tile)
    for q in range(rows):
        src = v[q]
        dst = m[q]
        k = np.uint64(1)
        if win_size % 2 == 0:
            for o in range(n):
                dst[base + o] = np.int32(src[base + o] + src[base + o + k])
            k += np.uint64(1)
        else:
            for o in range(n):
                dst[base + o] = src[base + o]
        # Two taps per pass: half the loads and stores of the running window sums.
        while k < np.uint64(win_size):
            k1 = k + np.uint64(1)
            for o in range(n):
                j = base + o
                dst[j] = np.int32(dst[j] + np.int32(src[j + k] + src[j + k1]))
            k += np.uint64(2)


@jit()
def _int_constants(c1: float, c2: float, cov_norm: float, n: int) -> tuple[float, float]:
    """``C1`` and ``C2`` on the scale of the integer path's rows (window of ``n`` pixels).

    The moments are ``mu = S / n`` and ``sigma^2 = N cov_norm / n^2`` (``N`` a numerator
    of :func:`_int_moments`). In every map the means enter as squares and products
    beside ``C1``, the variances and the covariance at degree one beside ``C2`` (and
    ``C3 = C2 / 2``): ``(S_x - S_y)^2 / (S_x^2 + S_y^2 + n^2 C1)`` is the luminance
    deficit, and so on. So the rows hold ``S`` and ``N`` as they are (exact, or
    rounded once) and the constants carry the scales: no division for the means, no
    product for the variances, and the means' squares exact in the float64 step.
    """
    return c1 * (n * n), c2 * (n * n) / cov_norm


@jit()
def uniform_row_int(
    v: np.ndarray,
    m: np.ndarray,
    win_size: int,
    n_out: int,
    c1: float,
    c2: float,
    cov_norm: float,
    planes: int,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
    score: bool,
) -> None:
    """One output row of the uniform path over uint8 input, from int32 column sums ``v``.

    ``m``, ``(INT_ROWS, n_out)``, receives the window sums of windows other than 7
    taps, tile by tile. With ``score``, ``v`` holds the :data:`SCORE_INT_ROWS` sums of
    a score (:func:`add_row_int` with ``score``, :func:`swap_row_int_score`) and only
    the deficits are made (``planes`` and ``out`` are not used).
    """
    n = win_size * win_size
    c1_s, c2_s = _int_constants(c1, c2, cov_norm, n)
    rows = SCORE_INT_ROWS if score else INT_ROWS
    for j0 in range(0, n_out, TILE):
        n_tile = min(TILE, n_out - j0)
        if win_size != 7:
            _tile_box_sums_int(v, rows, j0, n_tile, win_size, m)
        if score:
            if win_size == 7:
                _tile_score_int7(v, j0, n_tile, mo)
            else:
                _int_score_moments(m, j0, n_tile, n, mo)
            combine_score_v(mo, n_tile, c1_s, c2_s, deficit, j0)
        else:
            if win_size == 7:
                _tile_moments_int7(v, j0, n_tile, mo)
            else:
                _int_moments(m, j0, n_tile, n, mo)
            # One call site: every inlined copy of combine_row_m adds compilation time.
            combine_row_m(mo, n_tile, c1_s, c2_s, planes, out, deficit, j0)


# ---------------------------------------------------------------------------
# The uniform uint8 score: three sums, not four
#
# A score needs only the deficit d = dl + dcs - dl dcs, and that reads the means,
# sigma_x^2 + sigma_y^2 and var(x - y), never sigma_x^2, sigma_y^2 and sigma_xy apart.
# So a score's column sums are three: the packed means, S_xx + S_yy and S_mm with
# m = x - y; the vertical update and the box sums carry three rows instead of four,
# and the tile pass forms two numerators instead of four.

#: Rows of the int32 column sums of a score: the packed means, S_xx + S_yy, S_mm.
SCORE_INT_ROWS = 3


@jit()
def swap_row_int_score(x: np.ndarray, y: np.ndarray, new: int, old: int, v: np.ndarray) -> None:
    """:func:`swap_row_int` for a score: row ``new`` in, row ``old`` out, three sums (exact)."""
    if new < 0 or old < 0:
        return
    for j in range(x.shape[1]):
        a, b, p, q = _pixels(x, y, new, old, j)
        v[0, j] = np.int32(v[0, j] + _packed_step(a, b, p, q))
        # a^2 - p^2 = (a - p)(a + p), and so for b and q and for m = x - y.
        step = np.int32(a - p) * np.int32(a + p) + np.int32(b - q) * np.int32(b + q)
        v[1, j] = np.int32(v[1, j] + np.int32(step))
        d_new = np.int32(a - b)
        d_old = np.int32(p - q)
        v[2, j] = np.int32(v[2, j] + np.int32(d_new - d_old) * np.int32(d_new + d_old))


@jit()
def _int_score_moments(m: np.ndarray, j0: int, n_tile: int, n: int, mo: np.ndarray) -> None:
    """float32 rows ``S_x, S_y, N_v, N_m`` of columns ``j0 .. j0 + n_tile`` (windows of ``n``).

    From the window sums of the :data:`SCORE_INT_ROWS` rows: ``N_v = n (S_xx + S_yy) -
    S_x^2 - S_y^2`` and ``N_m = n S_mm - (S_x - S_y)^2``, the numerators of
    ``sigma_x^2 + sigma_y^2`` and ``var(x - y)`` (exact int32: their values are below
    2^31 under :data:`INT_TAPS` taps, where ``n (S_xx + S_yy)`` alone can wrap).
    """
    if j0 < 0 or n_tile < 0:
        return
    n32 = np.int32(n)
    for j in range(n_tile):
        s_x, s_y = _unpacked(m[0, j0 + j])
        diff = np.int32(s_x - s_y)
        var = np.int32(np.int32(n32 * m[1, j0 + j]) - np.int32(s_x * s_x) - np.int32(s_y * s_y))
        var_m = np.int32(np.int32(n32 * m[2, j0 + j]) - diff * diff)
        mo[j] = np.float32(s_x)
        mo[ACC + j] = np.float32(s_y)
        mo[2 * ACC + j] = np.float32(var)
        mo[3 * ACC + j] = np.float32(var_m)


@jit()
def _tile_score_int7(v: np.ndarray, j0: int, n_tile: int, mo: np.ndarray) -> None:
    """:func:`_int_score_moments` of a 7x7 window, box sums in registers (as
    :func:`_tile_moments_int7`).

    ``S_x^2 + S_y^2 = ((S_x + S_y)^2 + (S_x - S_y)^2) / 2``: two products where there
    were three (exact: under 7 taps ``(S_x + S_y)^2 < 2^30``).
    """
    if j0 < 0 or n_tile < 0:
        return
    n32 = np.int32(49)
    base = np.uint64(j0)
    v0, v1, v2 = v[0], v[1], v[2]
    for o in range(np.uint64(n_tile)):
        j = base + o
        s_x, s_y = _unpacked(_box7(v0, j))
        diff = np.int32(s_x - s_y)
        total = np.int32(s_x + s_y)
        sq_diff = np.int32(diff * diff)
        squares = np.int32(np.int32(total * total + sq_diff) >> 1)
        mo[o] = np.float32(s_x)
        mo[np.uint64(ACC) + o] = np.float32(s_y)
        mo[np.uint64(2 * ACC) + o] = np.float32(np.int32(n32 * _box7(v1, j) - squares))
        mo[np.uint64(3 * ACC) + o] = np.float32(np.int32(n32 * _box7(v2, j) - sq_diff))
