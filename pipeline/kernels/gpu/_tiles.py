"""What the CUDA kernels of this package share: types, tile sizes, the centred moments.

The evaluation kernel (:mod:`pipeline.kernels.gpu.fused`) and the loss kernels
(:mod:`pipeline.kernels.gpu.loss`) make the five local moments of a tile of
output positions the same way, in the compute type ``F`` (float32, or float64
for the loss's float64 variant). :data:`MOMENTS` is that device code as CUDA C
text; each kernel's source includes it and names the input type ``T``, ``F``,
the window's ``TAPS`` and the tile's ``TILE_ROWS`` by the substitutions of
:func:`fill`.

Precision. A float32 ``E[x^2] - mu^2`` loses the float32 epsilon *relative to
mu^2*: 1e-4 of ``cs`` for flat 255 beside an edge, 6e-4 for uint16 near
60000. A shift per tile (its first pixel) does not help a tile that holds an
edge. So, as the fused CPU kernel does (:mod:`pipeline.kernels.cpu.gaussian`),
every (co)variance is formed around the window's own centre sample and the
separable passes are joined by the law of total variance. With ``w(i, j) =
a_i b_j``, the vertical pass gives per column ``j`` of a window

    d_j = sum_i a_i (x_ij - s_j),  V_j = sum_i a_i (x_ij - s_j)^2 - d_j^2

around the column's centre sample ``s_j`` (so its mean is ``m_j = s_j + d_j``),
and the horizontal pass, around the centre column ``c``,

    e_j = (s_j - s_c) + (d_j - d_c),   mu = s_c + (d_c + sum_j b_j e_j),
    sigma_x^2 = sum_j b_j V_j + (sum_j b_j e_j^2 - (sum_j b_j e_j)^2)

(likewise the covariance with the products of the x and y parts). A weighted
variance is at least ``a_c (s - m)^2`` (``a_c``, the centre tap), so each
subtraction loses a bounded factor ``1 + 1 / a_c`` times the epsilon
*relative to the variance itself*, whatever the data's offset; a flat window
gives exactly 0. The input tile is also shifted by the tile's first pixel
when it is loaded (exactly, for every integer type float32 holds; rounded once
relative to the in-tile difference for float64 and 32/64-bit integers), so that
float data far from zero keeps its small differences.

Symmetry: every cross term is ``a * (u * v)``, a product of one x and one y
factor, so ``x`` and ``y`` go through the same instructions, FMA contraction
included, and ``ssim(x, x) == 1`` exactly. The luminance uses
``__fmul_rn``/``__fadd_rn`` (never contracted) for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "C_TYPES",
    "MOMENTS",
    "SHARED_BYTES",
    "THREADS",
    "TILE_COLS",
    "WIDE_TYPES",
    "fill",
    "pick_tile_rows",
]

TILE_COLS = 32  # one warp across a tile row: coalesced loads and stores
THREADS = 256
SHARED_BYTES = 46 * 1024  # under the 48 KiB of static shared memory per block

C_TYPES = {
    "uint8": "unsigned char",
    "int8": "signed char",
    "uint16": "unsigned short",
    "int16": "short",
    "uint32": "unsigned int",
    "int32": "int",
    "uint64": "unsigned long long",
    "int64": "long long",
    "float32": "float",
    "float64": "double",
}
# Input types that float32 does not hold exactly: their tile shift is taken in float64.
WIDE_TYPES = ("uint32", "int32", "uint64", "int64", "float64")

# Type-generic spellings of the rounding intrinsics and math functions.
_FLOAT_OPS = {
    "__MUL__": "__fmul_rn",
    "__ADD__": "__fadd_rn",
    "__SQRT__": "sqrtf",
    "__FMAX__": "fmaxf",
}
_DOUBLE_OPS = {
    "__MUL__": "__dmul_rn",
    "__ADD__": "__dadd_rn",
    "__SQRT__": "sqrt",
    "__FMAX__": "fmax",
}

# The device code both kernels include. Shared arrays are declared by the kernel
# (``xs``, ``ys``: the shifted input tile, ``HEIGHT x WIDTH``; ``vs``: the five
# column statistics ``d_x, d_y, V_x, V_y, C``, ``TILE_ROWS x WIDTH``) and passed in.
MOMENTS = r"""
#define TAPS __TAPS__
#define CENTRE (TAPS / 2)
#define TILE_COLS __TILE_COLS__
#define TILE_ROWS __TILE_ROWS__
#define WIDTH (TILE_COLS + TAPS - 1)
#define HEIGHT (TILE_ROWS + TAPS - 1)
#define THREADS __THREADS__
typedef __CTYPE__ T;
typedef __FTYPE__ F;
#define SHIFTED(v, s) __SHIFTED__

// 1. The input tile, minus its shift, into shared memory (zeros past the image's edge).
__device__ void load_tile(const T* __restrict__ x, const T* __restrict__ y,
                          const int in_rows, const int in_cols, const int row0, const int col0,
                          const T shift_x, const T shift_y, F (*xs)[WIDTH], F (*ys)[WIDTH],
                          const int tid)
{
    for (int idx = tid; idx < HEIGHT * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int c = idx - r * WIDTH;
        if (row0 + r < in_rows && col0 + c < in_cols) {
            const long long k = (long long)(row0 + r) * in_cols + (col0 + c);
            xs[r][c] = SHIFTED(x[k], shift_x);
            ys[r][c] = SHIFTED(y[k], shift_y);
        } else {
            xs[r][c] = (F)0;
            ys[r][c] = (F)0;
        }
    }
}

// 2. Vertical pass: per tile row and input column, d, V around the column's centre sample.
__device__ void vertical_pass(const F* __restrict__ a, F (*xs)[WIDTH], F (*ys)[WIDTH],
                              F (*vs)[TILE_ROWS][WIDTH], const int tid)
{
    for (int idx = tid; idx < TILE_ROWS * WIDTH; idx += THREADS) {
        const int r = idx / WIDTH;
        const int c = idx - r * WIDTH;
        const F sx = xs[r + CENTRE][c];
        const F sy = ys[r + CENTRE][c];
        F dx = 0, dy = 0, vx = 0, vy = 0, cxy = 0;
        for (int k = 0; k < TAPS; ++k) {
            const F u = xs[r + k][c] - sx;
            const F v = ys[r + k][c] - sy;
            dx += a[k] * u;
            dy += a[k] * v;
            vx += a[k] * (u * u);
            vy += a[k] * (v * v);
            cxy += a[k] * (u * v);
        }
        vs[0][r][c] = dx;
        vs[1][r][c] = dy;
        vs[2][r][c] = vx - dx * dx;
        vs[3][r][c] = vy - dy * dy;
        vs[4][r][c] = cxy - dx * dy;
    }
}

// 3. Horizontal pass for output (r, c) of the tile: the means relative to the tile's
// shift (mx, my) and to the window's centre sample (dx, dy), the (co)variances joined
// by the law of total variance.
struct Moments { F mx, my, dx, dy, var_x, var_y, cov_xy; };

__device__ Moments horizontal_pass(const F* __restrict__ b, F (*xs)[WIDTH], F (*ys)[WIDTH],
                                   F (*vs)[TILE_ROWS][WIDTH], const int r, const int c,
                                   const F cov_norm)
{
    const F cx = xs[r + CENTRE][c + CENTRE];
    const F cy = ys[r + CENTRE][c + CENTRE];
    const F dcx = vs[0][r][c + CENTRE];
    const F dcy = vs[1][r][c + CENTRE];
    F ex = 0, ey = 0, exx = 0, eyy = 0, exy = 0, sv_x = 0, sv_y = 0, sc = 0;
    for (int k = 0; k < TAPS; ++k) {
        const F e = (xs[r + CENTRE][c + k] - cx) + (vs[0][r][c + k] - dcx);
        const F f = (ys[r + CENTRE][c + k] - cy) + (vs[1][r][c + k] - dcy);
        ex += b[k] * e;
        ey += b[k] * f;
        exx += b[k] * (e * e);
        eyy += b[k] * (f * f);
        exy += b[k] * (e * f);
        sv_x += b[k] * vs[2][r][c + k];
        sv_y += b[k] * vs[3][r][c + k];
        sc += b[k] * vs[4][r][c + k];
    }
    Moments m;
    m.dx = dcx + ex;
    m.dy = dcy + ey;
    m.mx = cx + m.dx;
    m.my = cy + m.dy;
    m.var_x = cov_norm * (sv_x + (exx - ex * ex));
    m.var_y = cov_norm * (sv_y + (eyy - ey * ey));
    m.cov_xy = cov_norm * (sc + (exy - ex * ey));
    return m;
}
"""


def pick_tile_rows(shared_bytes_of: Callable[[int], int]) -> int:
    """The most output rows per tile (of 32, 16, 8, 4) whose shared memory fits.

    ``shared_bytes_of`` maps a number of tile rows to the bytes of shared memory
    the kernel declares for it.
    """
    for rows in (32, 16, 8, 4):
        if shared_bytes_of(rows) <= SHARED_BYTES:
            return rows
    raise ValueError("the window is too wide for the fused GPU kernels' shared memory")


def fill(source: str, *, dtype: str, compute: str, taps: int, tile_rows: int, **names: str) -> str:
    """``source`` (which may include :data:`MOMENTS`) with every placeholder substituted.

    ``compute`` is ``"float32"`` or ``"float64"``; ``names`` are further
    ``__KEY__`` replacements (kernel names, flags).
    """
    # Narrow types (and anything under float64 arithmetic): both operands are exact in F,
    # and the one subtraction rounds relative to the difference.
    wide = dtype in WIDE_TYPES and compute == "float32"
    shifted = "((F)((double)(v) - (double)(s)))" if wide else "((F)(v) - (F)(s))"
    replacements = {
        "__SHIFTED__": shifted,
        "__TAPS__": str(taps),
        "__TILE_COLS__": str(TILE_COLS),
        "__TILE_ROWS__": str(tile_rows),
        "__THREADS__": str(THREADS),
        "__CTYPE__": C_TYPES[dtype],
        "__FTYPE__": "float" if compute == "float32" else "double",
        **(_FLOAT_OPS if compute == "float32" else _DOUBLE_OPS),
        **{f"__{key.upper()}__": value for key, value in names.items()},
    }
    for key, value in replacements.items():
        source = source.replace(key, value)
    return source
