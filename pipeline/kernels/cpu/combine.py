"""What the fused CPU kernels share: compilation options, buffer layout, the comparison step.

The Gaussian (:mod:`pipeline.kernels.cpu.gaussian`) and uniform
(:mod:`pipeline.kernels.cpu.uniform`) paths both turn an output row into
float32 local moments ``mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy``, one tile
of columns at a time, in the flat buffer layout below; :func:`combine_row`
turns each tile into the comparison maps (Wang et al. 2004, eqs. 6-13).
:mod:`pipeline.kernels.cpu.chunk` and :mod:`pipeline.kernels.cpu.colour`
compile their row loops with the same :func:`jit` options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["ACC", "COL", "CONTRACT", "MAX_TAPS", "TILE", "combine_row", "float32_holds", "jit"]

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
TILE = 256
# Row strides (float32 elements) of the flat per-tile buffers; not powers of
# two, so that the rows do not map to the same L1 cache sets. COL bounds the
# window: with win_size <= MAX_TAPS a tile still has at least 9 columns.
ACC = TILE + 8
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


# ---------------------------------------------------------------------------
# Moments -> comparison maps


@jit()
def combine_row(
    mo: np.ndarray,
    n_out: int,
    c1: float,
    c2: float,
    components: bool,
    out: np.ndarray,
    o0: int,
) -> None:
    """Luminance, contrast, structure, cs and SSIM (eqs. 6-13) from local moments.

    ``mo[q * ACC + j]`` for ``j < n_out`` holds float32 ``mu_x, mu_y,
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
            mu_y = mo[ACC + j]
            luminance = (two * mu_x * mu_y + c1_32) / (mu_x * mu_x + mu_y * mu_y + c1_32)
            cs = (two * mo[4 * ACC + j] + c2_32) / (mo[2 * ACC + j] + mo[3 * ACC + j] + c2_32)
            out[0, o0 + j] = luminance * cs
            out[1, o0 + j] = cs
        return
    for j in range(n_out):
        mu_x = mo[j]
        mu_y = mo[ACC + j]
        sigma_x_sq = mo[2 * ACC + j]
        sigma_y_sq = mo[3 * ACC + j]
        sigma_xy = mo[4 * ACC + j]
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
