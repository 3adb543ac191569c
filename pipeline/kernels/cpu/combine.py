"""What the fused CPU kernels share: compilation options, buffer layout, the comparison step.

The Gaussian (:mod:`pipeline.kernels.cpu.gaussian`) and uniform
(:mod:`pipeline.kernels.cpu.uniform`) paths both turn an output row into
float32 local moments ``mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy``, one tile
of columns at a time, in the flat buffer layout below; :func:`combine_row`
turns each tile into the comparison maps (Wang et al. 2004, eqs. 6-13) and the
deficits ``1 - ssim`` that every mean is summed from (its "Precision");
:func:`combine_row_m` does so from six moments, ``var(x - y)`` added (the
Gaussian path's odd windows of up to 11 taps, and the uniform window). The
score alone under an odd Gaussian window of up to 11 taps takes another basis
and its own float64 comparison step
(:func:`pipeline.kernels.cpu.gaussian.gaussian_score_row`).
:mod:`pipeline.kernels.cpu.chunk` and :mod:`pipeline.kernels.cpu.colour`
compile their row loops with the same :func:`jit` options, and pass the arrays of
those loops' calls as :func:`borrowed` views, which count no references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

__all__ = [
    "ACC",
    "COL",
    "CONTRACT",
    "MAX_TAPS",
    "SWEEP_TILE",
    "TILE",
    "borrowed",
    "combine_row",
    "combine_row_m",
    "combine_row_sd",
    "combine_score_v",
    "float32_holds",
    "jit",
]

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
# contracting ``mu_x^2 + mu_y^2`` into ``fma(mu_x, mu_x, mu_y^2)`` rounds one
# square and not the other, which would break the exact symmetry. Each loop
# touches few distinct arrays (buffers are (quantity, column) rows) so that
# LLVM's runtime alias checks stay within its budget.

# Output columns per tile of the uniform window and of the Gaussian five-moment
# path (even windows, or more than 11 taps): the tile's column statistics (7 x
# ~266 float32), accumulators (8 x 256) and moments (5 x 256) take ~20 KB, which a
# 32 KB L1 data cache holds; the tile's input rows read beside them (~23 KB for 11
# rows of two images) then come partly from L2 on a 32 KB core.
TILE = 256
# Output columns per tile of the Gaussian one-sweep paths (odd windows of up to 11
# taps: the score's sum/difference path, its ssim and cs maps, and the six-moment
# maps and statistics). Each call of a vertical sweep cost ~100 ns before its first
# column (LLVM's runtime checks that the 22 input rows and the column buffer do not
# overlap, and ~27 ns of reference counts that borrowed views now spare): 0.4 ns per
# output pixel at 256 columns, 0.1 at 1024. The tile's column
# statistics and moments then take 33-57 KB, beside L1 rather than in it; measured on
# a 48 KB L1 (Sapphire Rapids), the score 0.88x and the statistics 0.93x the time of
# 256-column tiles.
SWEEP_TILE = 1024
# Row strides (float32 elements) of the flat per-tile buffers; not powers of
# two, so that the rows do not map to the same L1 cache sets. COL bounds the
# window: with win_size <= MAX_TAPS a tile still has at least 9 columns.
ACC = SWEEP_TILE + 8
COL = 1048
MAX_TAPS = COL - 8

CONTRACT = {"contract"}

# Where float32 arithmetic holds SSIM. Moments are formed about the window's centre
# sample, so with |pixel| <= M every term is at most 8 M^2 + C (|x - s| <= 2M, two
# variances and C2); M <= 2^59 and C <= 2^120 keep that below 2^122, far from the
# float32 limit 2^128. C >= 2^-100 keeps C1, C2 normal float32 numbers (a flat
# window is then C / C = 1, as in float64, not 0 / 0).
_FLOAT32_MAX_PIXEL = 2.0**59
_FLOAT32_CONSTANTS = (2.0**-100, 2.0**120)


def float32_holds(c1: float, c2: float, magnitude: float) -> bool:
    """Whether the float32 kernels (fused CPU, GPU) give the float64 reference's numbers.

    ``magnitude`` bounds ``|pixel|`` of both images. Beyond these bounds float32
    moments or constants overflow to Inf or vanish to 0 and SSIM comes out NaN or
    wrong; callers then use the float64 reference engine (same numbers, slower).
    """
    low, high = _FLOAT32_CONSTANTS
    return low <= min(c1, c2) and max(c1, c2) <= high and magnitude <= _FLOAT32_MAX_PIXEL


def jit(*, parallel: bool = False, fastmath: bool | set[str] = False) -> Any:
    """numba's ``njit`` with the fused kernels' options (cached, GIL released, numpy errors)."""
    return njit(cache=True, nogil=True, error_model="numpy", parallel=parallel, fastmath=fastmath)


@intrinsic
def _borrowed(typingctx: Any, array: Any) -> Any:
    """``array`` (or None) as an array that counts no references: for the calls of a row loop.

    A compiled function counts a reference to each array argument on entry and
    releases it on return, and so does each view it takes (``ring[k]``): an atomic
    add on the array's shared count, which also waits for the stores before it.
    The row loops call a dozen such functions per output row, each with several
    arrays: ~160 ns a row of 502 pixels (at 1.7-1.9 us), measured by calling
    :func:`~pipeline.kernels.cpu.gaussian.gaussian_score_row` in a compiled loop.
    An array without an owner (a null ``meminfo``, as ``numba.carray`` makes) is
    counted by nothing, and neither are its views.

    The caller keeps ``array`` itself alive for as long as the result is used: an
    argument of the calling function (the Python caller holds it), or a variable
    used again after the call the result is passed to.
    """
    if isinstance(array, types.NoneType):
        return array(array), lambda context, builder, signature, args: args[0]
    if not isinstance(array, types.Array):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        source = make_array(array)(context, builder, value=args[0])
        view = make_array(array)(context, builder)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(view, field, getattr(source, field))
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return array(array), codegen


# The name the kernels call; numba passes the typing context to an intrinsic itself, so
# mypy sees it with one argument.
borrowed = cast("Callable[[Any], Any]", _borrowed)


# ---------------------------------------------------------------------------
# Moments -> comparison maps


@jit()
def combine_row(
    mo: np.ndarray,
    n_out: int,
    c1: float,
    c2: float,
    planes: int,
    out: np.ndarray,
    deficit: np.ndarray,
    o0: int,
) -> None:
    """Luminance, contrast, structure, cs and SSIM (eqs. 6-13) from local moments.

    ``mo[q * ACC + j]`` for ``j < n_out`` holds float32 ``mu_x, mu_y,
    sigma_x^2, sigma_y^2, sigma_xy`` (q = 0..4; row 5 is written here). ``deficit[o0:o0 + n_out]``
    receives ``d = 1 - ssim`` (below), always; the first ``planes`` rows of
    ``out[:, o0:o0 + n_out]`` receive ssim, cs, luminance, contrast, structure:
    ``planes`` is 5, 2 (ssim and cs) or 0 (a score needs only ``d``). ``out`` is
    passed whole with explicit extents: a column slice of a 2-D array is
    non-contiguous to numba, and that stops vectorisation.

    Precision: the deficit form. SSIM, cs and luminance are made from their
    deficits, which keep float32's *relative* precision near 1::

        dl  = (mu_x - mu_y)^2 / (mu_x^2 + mu_y^2 + C1)     luminance = 1 - dl
        dcs = (v - 2 sigma_xy) / (v + C2)                   cs = 1 - dcs
        d   = dl + dcs - dl dcs                             ssim = (1 - dl)(1 - dcs) = 1 - d

    with ``v = sigma_x^2 + sigma_y^2`` (the numerators are eqs. 6 and 13's
    denominators less their numerators). For
    non-negative data ``dl`` is in [0, 1] and ``dcs`` in [0, 2], so ``d = dl + dcs
    (1 - dl)`` has no cancellation. ``dl``, ``dcs`` and ``d`` are made in float64
    from the float32 moments (:func:`combine_row_m`): the map ``1 - d`` in float32
    rounds to a multiple of 2^-24 (up to 3e-8 near 1, the same way on every pixel of
    a flat pair), and so would a float32 ``d`` near 1 (SSIM near 0): means are
    summed from the float64 ``d`` instead (:mod:`pipeline.kernels.cpu.chunk`,
    :mod:`pipeline.kernels.cpu.partials`). Here ``v - 2 sigma_xy`` is formed in
    float32 from the five moments into ``mo``'s sixth row, which
    :func:`combine_row_m` reads. Identical inputs give ``dl = dcs = d = 0``
    exactly (``v - 2 sigma_xy`` of equal moments is 0), so ssim, cs and luminance
    are exactly 1; ``(a - b)^2 == (b - a)^2`` and commutative sums keep the maps
    exactly symmetric in x and y. Contrast and structure (eqs. 9-10) are formed
    directly.
    """
    # A proof for LLVM that the indices below are non-negative: without it
    # numba's negative-index wraparound adds a select per access and the loop
    # is not vectorised.
    if o0 < 0 or n_out < 0:
        return
    two = np.float32(2.0)
    for j in range(n_out):
        mo[5 * ACC + j] = (mo[2 * ACC + j] + mo[3 * ACC + j]) - two * mo[4 * ACC + j]
    combine_row_m(mo, n_out, c1, c2, planes, out, deficit, o0)


@jit()
def _quotients(
    num_l: float, sum_l: float, num_c: float, sum_c: float, c1: float, c2: float
) -> tuple[float, float, float]:
    """``dl = num_l / D_l``, ``dcs = num_c / D_c`` and ``1 / D_c`` with one float64 division.

    ``D_l = sum_l + C1`` and ``D_c = sum_c + C2``; ``r = 1 / (D_l D_c)``, then
    ``dl = num_l D_c r``, ``dcs = num_c D_l r`` and ``1 / D_c = D_l r``: a few float64
    roundings (~1e-16 relative) against one. Both products stay within float64's range
    for every pair that :func:`float32_holds` admits. The comparison steps' loops call
    it per pixel; it is inlined and vectorised with them.
    """
    den_l = sum_l + c1
    den_c = sum_c + c2
    r = 1.0 / (den_l * den_c)
    inv_c = den_l * r
    return num_l * (den_c * r), num_c * inv_c, inv_c


# sigma_x sigma_y as one float32 square root of the product of the variances, not
# the product of two roots, where neither can overflow or matter if it underflows:
# every variance of the tile at most 2^63 (its float32 bits at most those of 2^63),
# so the product stays below 2^126; and C2 >= 2^-40, so a product that underflows
# (an absolute error of at most 2^-150, 2^-75 after the root) moves contrast and
# structure by at most 2^-35 of C2 / D_c. One root instead of two takes a third of
# the comparison step's divider time (1.94 -> 1.62 ns per pixel, one thread,
# Sapphire Rapids) and rounds no worse: sqrt(x * x) == |x| exactly, where
# sqrt(x) * sqrt(x) can be one ulp off.
_ONE_ROOT_C2 = 2.0**-40
_ONE_ROOT_BITS = int(np.float32(2.0**63).view(np.int32))


@jit()
def _largest_variance_bits(mo: np.ndarray, n_out: int) -> np.int32:
    """The largest float32 bits of ``sigma_x^2`` and ``sigma_y^2`` over the tile's ``n_out``.

    Read as int32, non-negative floats order as their bits do; a negative variance
    (a rounding hair below 0) reads as negative and a NaN as larger than any
    finite value, so the test against :data:`_ONE_ROOT_BITS` stays safe. Integer
    max vectorises, a float max does not.
    """
    bits = mo.view(np.int32)
    high = np.int32(0)
    if n_out < 0:
        return high
    for j in range(n_out):
        high = max(high, max(bits[2 * ACC + j], bits[3 * ACC + j]))
    return high


@jit()
def combine_row_m(
    mo: np.ndarray,
    n_out: int,
    c1: float,
    c2: float,
    planes: int,
    out: np.ndarray,
    deficit: np.ndarray,
    o0: int,
) -> None:
    """:func:`combine_row` from six moments: the five and ``var(x - y)``.

    ``mo[q * ACC + j]`` rows q = 0..5: float32 ``mu_x, mu_y, sigma_x^2, sigma_y^2,
    sigma_xy, var(m)`` with ``m = x - y``
    (:func:`pipeline.kernels.cpu.gaussian.gaussian_row_m`, the uniform window's
    :func:`pipeline.kernels.cpu.uniform.uniform_row`, or :func:`combine_row` from
    five); ``planes``, ``out``,
    ``deficit`` and ``o0`` as :func:`combine_row`, and the same deficit form, but
    ``dcs = var(m) / (v + C2)``: the numerator ``sigma_x^2 + sigma_y^2 - 2 sigma_xy``
    formed directly, not from the rounded moments, where it cancels for
    near-identical high-contrast textures (1e-7 of the mean on a uint8 checkerboard
    128+-50 against 128+-48). ``dl``, ``dcs`` and ``d`` are made in float64 from the
    float32 moments and rounded once: the float32 chain's roundings left a bias of
    ~5e-8 of ``d`` on salt and pepper under a 7-tap window (1.3e-8 of the mean),
    half of which is gone. ``var(m)`` is exactly 0 for equal images (``m = 0``)
    and the same for swapped ones (``m -> -m`` exactly), so identity and symmetry
    stay exact.

    One float64 division per pixel (:func:`_quotients`, with ``D_l = mu_x^2 + mu_y^2
    + C1`` and ``D_c = v + C2``): contrast ``(2 sigma_x sigma_y + C2) / D_c`` shares its
    ``1 / D_c``; structure ``(sigma_xy + C3) / (sigma_x sigma_y + C3)`` is one float32
    division. The divider bounds this step: two float64 and two float32 divisions per
    pixel took 1.94 ns against 1.50 ns for these (one thread, zmm).
    """
    if o0 < 0 or n_out < 0:
        return
    c3_32 = np.float32(c2 / 2)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if planes == 0:
        for j in range(n_out):
            mu_x = np.float64(mo[j])
            mu_y = np.float64(mo[ACC + j])
            diff = mu_x - mu_y
            v = np.float64(mo[2 * ACC + j]) + np.float64(mo[3 * ACC + j])
            dl, dcs, _ = _quotients(
                diff * diff, mu_x * mu_x + mu_y * mu_y, np.float64(mo[5 * ACC + j]), v, c1, c2
            )
            deficit[o0 + j] = dl + dcs - dl * dcs
        return
    if planes < 5:
        for j in range(n_out):
            mu_x = np.float64(mo[j])
            mu_y = np.float64(mo[ACC + j])
            diff = mu_x - mu_y
            v = np.float64(mo[2 * ACC + j]) + np.float64(mo[3 * ACC + j])
            dl, dcs, _ = _quotients(
                diff * diff, mu_x * mu_x + mu_y * mu_y, np.float64(mo[5 * ACC + j]), v, c1, c2
            )
            d64 = dl + dcs - dl * dcs
            out[0, o0 + j] = one - np.float32(d64)
            out[1, o0 + j] = one - np.float32(dcs)
            deficit[o0 + j] = d64
        return
    one_root = c2 >= _ONE_ROOT_C2 and _largest_variance_bits(mo, n_out) <= _ONE_ROOT_BITS
    for j in range(n_out):
        mu_x = np.float64(mo[j])
        mu_y = np.float64(mo[ACC + j])
        sigma_x_sq = mo[2 * ACC + j]
        sigma_y_sq = mo[3 * ACC + j]
        diff = mu_x - mu_y
        v = np.float64(sigma_x_sq) + np.float64(sigma_y_sq)
        dl, dcs, r_c = _quotients(
            diff * diff, mu_x * mu_x + mu_y * mu_y, np.float64(mo[5 * ACC + j]), v, c1, c2
        )
        d64 = dl + dcs - dl * dcs
        # Rounding can leave a variance a hair below zero; the square root needs >= 0.
        if one_root:
            sigma_x_sigma_y = np.sqrt(max(sigma_x_sq * sigma_y_sq, zero))
        else:
            sigma_x_sigma_y = np.sqrt(max(sigma_x_sq, zero)) * np.sqrt(max(sigma_y_sq, zero))
        out[0, o0 + j] = one - np.float32(d64)
        out[1, o0 + j] = one - np.float32(dcs)
        out[2, o0 + j] = one - np.float32(dl)
        out[3, o0 + j] = np.float32((2.0 * np.float64(sigma_x_sigma_y) + c2) * r_c)
        out[4, o0 + j] = (mo[4 * ACC + j] + c3_32) / (sigma_x_sigma_y + c3_32)
        deficit[o0 + j] = d64


@jit()
def combine_row_sd(
    mo: np.ndarray,
    n_out: int,
    c1: float,
    c2: float,
    planes: int,
    out: np.ndarray,
    deficit: np.ndarray,
    o0: int,
) -> None:
    """ssim and cs maps (``planes`` 2) or the deficits alone (0) from four moments.

    ``mo[q * ACC + j]`` rows q = 0..3: float32 ``mu_p, mu_m, var(p), var(m)`` of
    ``p = x + y`` and ``m = x - y``
    (:func:`pipeline.kernels.cpu.gaussian.gaussian_sd_row`). The deficit form of
    :func:`combine_row_m`, in float64, with ``mu_x - mu_y = mu_m``,
    ``mu_x^2 + mu_y^2 = (mu_p^2 + mu_m^2) / 2``, ``v = (var(p) + var(m)) / 2`` and
    ``v - 2 sigma_xy = var(m)``; only squares of ``mu_m`` and ``var(m)`` enter, so
    swapping x and y changes nothing and ``m = 0`` gives ``d = 0``; one float64
    division (:func:`_quotients`), as there. Contrast and structure need the moments apart: no
    ``planes`` 5 here.
    """
    if o0 < 0 or n_out < 0:
        return
    one = np.float32(1.0)
    if planes == 0:
        for j in range(n_out):
            mu_p = np.float64(mo[j])
            mu_m = np.float64(mo[ACC + j])
            sq_m = mu_m * mu_m
            var_m = np.float64(mo[3 * ACC + j])
            v = 0.5 * (np.float64(mo[2 * ACC + j]) + var_m)
            dl, dcs, _ = _quotients(sq_m, 0.5 * (mu_p * mu_p + sq_m), var_m, v, c1, c2)
            deficit[o0 + j] = dl + dcs - dl * dcs
        return
    for j in range(n_out):
        mu_p = np.float64(mo[j])
        mu_m = np.float64(mo[ACC + j])
        sq_m = mu_m * mu_m
        var_m = np.float64(mo[3 * ACC + j])
        v = 0.5 * (np.float64(mo[2 * ACC + j]) + var_m)
        dl, dcs, _ = _quotients(sq_m, 0.5 * (mu_p * mu_p + sq_m), var_m, v, c1, c2)
        d64 = dl + dcs - dl * dcs
        d = np.float32(d64)
        out[0, o0 + j] = one - d
        out[1, o0 + j] = one - np.float32(dcs)
        deficit[o0 + j] = d64


@jit()
def combine_score_v(
    mo: np.ndarray, n_out: int, c1: float, c2: float, deficit: np.ndarray, o0: int
) -> None:
    """float64 deficits ``1 - ssim`` from four rows: ``mu_x, mu_y, v, var(m)``.

    ``v = sigma_x^2 + sigma_y^2`` and ``var(m)``, ``m = x - y``, as
    :func:`combine_row_m` uses them, on any scale that ``C1`` and ``C2`` share
    (the uniform uint8 score: :func:`pipeline.kernels.cpu.uniform.uniform_row_int` with ``score``).
    The same float64 step and one division (:func:`_quotients`), for a score: no maps.
    """
    if o0 < 0 or n_out < 0:
        return
    for j in range(n_out):
        mu_x = np.float64(mo[j])
        mu_y = np.float64(mo[ACC + j])
        diff = mu_x - mu_y
        dl, dcs, _ = _quotients(
            diff * diff,
            mu_x * mu_x + mu_y * mu_y,
            np.float64(mo[3 * ACC + j]),
            np.float64(mo[2 * ACC + j]),
            c1,
            c2,
        )
        deficit[o0 + j] = dl + dcs - dl * dcs
