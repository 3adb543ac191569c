"""Where the fused CPU kernel's time goes: ns per output pixel of each stage, one thread.

The Gaussian 11x11 (sigma 1.5) float32 path of ``pipeline.ssim``'s fused CPU
kernel (:mod:`pipeline.kernels.cpu.gaussian`, :mod:`pipeline.kernels.cpu.combine`,
statistics by :mod:`pipeline.kernels.cpu.partials` and
:mod:`pipeline.kernels.cpu.histogram`) is driven by a small numba loop, the
same as :func:`pipeline.kernels.cpu.chunk.maps_chunks` makes, over a 2048x2048
uint8 pair. The loop stops after a given stage (``upto``), so each stage's time
is the difference between two cumulative variants:

0. load: each input row converted into the float32 ring (once per row);
1. vertical pass (:func:`~pipeline.kernels.cpu.gaussian._vertical_sweep_m`: the five
   moments and ``var(x - y)``, the maps path of odd windows of up to 11 taps);
2. horizontal pass (:func:`~pipeline.kernels.cpu.gaussian._horizontal_sweep_m`);
3. combination into SSIM, cs, l, c, s and the deficits ``1 - ssim``
   (:func:`~pipeline.kernels.cpu.combine.combine_row_m`);
4. the row's four float64 sums (SSIM, l, c, s; ``_segment_sums`` of
   :mod:`pipeline.kernels.cpu.partials`);
5. its squared deviations about the row mean (``_segment_m2``, the second pass);
6. its extremes (``_extremes`` of :mod:`pipeline.kernels.cpu.histogram`);
7. its histogram bin indices (``_indices``);
8. the whole :func:`~pipeline.kernels.cpu.partials.add_row_partial` (100 bins):
   what it costs beyond stage 7 is counting the indices into the bins
   (``_count``) and the bookkeeping (Chan's merge of M2).

One more variant is a score from the maps' passes: stages 0-2, then the
comparison step with the deficits only and their float64 row sum (``_row_sum``
of :mod:`pipeline.kernels.cpu.chunk`); its time less stage 2's is printed as
"score: combine (deficits) + row sum", and its total as the score's.

A second table times the path ``pipeline.ssim`` takes for a score
(:func:`~pipeline.kernels.cpu.gaussian.gaussian_score_row`: four moments of
``p = x + y`` and ``m = x - y``) the same way: each input row into the ring of
``p`` and ``m`` rows (``load_rows_sd``), the vertical and horizontal sweeps
(``_vertical_sweep_sd``, ``_horizontal_sweep_sd``, each column mean one float32
number), and the float64 deficits with their row sum
(``_combine_score``, ``_row_sum``); its total is checked against ``fused_score``.

The real entry point (``maps_chunks`` with packed statistics, one chunk) is
timed too, as a check that the stages add up. Variants are interleaved round by
round and the best of ``--repeat`` is kept. The arithmetic limit is the
minimal FMA count per output pixel (printed with its derivation) against one
core's peak: 2 FMA units x the float32 lanes of their datapath x the clock the
core runs at. The datapath is 16 lanes with AVX-512 and 8 without, except on AMD
before Zen 5 (family 25 and older), whose AVX-512 (Zen 4) runs each 512-bit
operation as two 256-bit halves: 8 lanes there. The clock is measured: a chain of
dependent float64 FMAs, each waiting for the last (4 cycles on Zen 2-4 and on
Intel cores since Skylake), timed on this thread. /proc/cpuinfo's ``cpu MHz`` is
printed beside it; on a virtual machine it is often the nominal clock, not the
boosted one the core runs at (2.596 against 3.67 GHz measured on a Zen 4
machine), and a peak from it is too low.

``--asm`` also counts, in the assembly numba made for the gaussian, uniform
(float64 and int32), combine and histogram-index routines (compiled again from
their Python source, same options, no cache), the FMA instructions and the
register width (xmm/ymm/zmm) they use. Times are the thread's CPU time
(``time.thread_time``): other processes on a shared machine then cost less.

``--loops`` prints, for the six routines that make the two tables' sweeps and comparison
steps, the busiest innermost loop numba made of each (the labelled block of its assembly
that jumps back to itself, with the most ymm/zmm instructions): the columns one
iteration makes, its instructions, loads (memory operands), stores, the operations of
the FMA/multiply and add/compare pipes (a zmm operation counts twice where the datapath
is 256 bits wide) and the cycles of its divisions and square roots, by the divider's
throughput timed here; then the cycles one iteration took by the stage times (ns per
output pixel x columns per output pixel x columns per iteration x the measured clock)
and the instructions retired per cycle. A loop well above every bound it counts is
bound by something the counts do not show: latency, cache lines (a 64-byte read that
does not start a line touches two) or the front end.

    python benchmarks/bench_stages.py [--size 2048] [--repeat 11] [--asm] [--loops]

Stages that take well under 1 ns per pixel are within the noise of a shared
machine (their difference can even come out negative); compare the large ones.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numba
import numpy as np

from pipeline.kernels.cpu import combine, gaussian, histogram, uniform
from pipeline.kernels.cpu.chunk import _row_sum, maps_chunks
from pipeline.kernels.cpu.combine import ACC, COL, SWEEP_TILE, combine_row_m
from pipeline.kernels.cpu.fused import fused_score
from pipeline.kernels.cpu.gaussian import (
    _PAIRS,
    _combine_score,
    _horizontal_sweep_m,
    _horizontal_sweep_sd,
    _sd_limit,
    _vertical_sweep_m,
    _vertical_sweep_sd,
    load_row,
    load_rows_sd,
)
from pipeline.kernels.cpu.histogram import _extremes, _indices
from pipeline.kernels.cpu.launch import aligned_empty, ring_width
from pipeline.kernels.cpu.partials import _segment_m2, _segment_sums, add_row_partial
from pipeline.kernels.statistics import HIST
from pipeline.kernels.windows import gaussian_window

WIN, SIGMA, BINS = 11, 1.5, 100
K1, K2, DATA_RANGE = 0.01, 0.03, 255.0
STAGES = ("load rows", "vertical pass", "horizontal pass", "combine (SSIM, cs, l, c, s)")
STAGES += ("statistics: four float64 sums", "statistics: M2 (second pass)")
STAGES += ("statistics: extremes", "statistics: histogram bin indices")
STAGES += ("statistics: histogram counts, merge",)

# Minimal FMA count per output pixel of the 11x11 separable Gaussian over the maps'
# six moments (x, y, x^2, y^2, xy, (x - y)^2): the four products once per input
# pixel, then one multiply-add per tap and moment in each 1-D pass, and the few
# products of the combination. Divisions, square roots and the statistics are not FMAs.
FMA_PER_STAGE = {
    "vertical pass": 4 + 6 * WIN,
    "horizontal pass": 6 * WIN,
    "combine (SSIM, cs, l, c, s)": 2,
}
# The score's path: two products (p^2, m^2) per input pixel, four moments (p, m,
# p^2, m^2) per tap in each pass, two in the comparison step.
SCORE_STAGES = ("load rows (p, m)", "vertical pass", "horizontal pass")
SCORE_STAGES += ("combine (deficits) + row sum",)
SCORE_FMA = {"vertical pass": 2 + 4 * WIN, "horizontal pass": 4 * WIN}
SCORE_FMA["combine (deficits) + row sum"] = 2
# Cycles of one dependent FMA (Zen 2-4; Intel since Skylake).
FMA_LATENCY = 4


@numba.njit(fastmath={"contract"})
def _fma_chain(n: int, a: float, b: float) -> float:  # pragma: no cover - compiled
    """``n`` times four dependent ``x * a + b`` (one FMA each: contraction allowed)."""
    x = 0.5
    for _ in range(n):
        x = x * a + b
        x = x * a + b
        x = x * a + b
        x = x * a + b
    return x


def measured_clock_ghz(repeat: int = 5) -> float:
    """The clock this thread runs at, GHz: FMA_LATENCY over the time of one chained FMA."""
    n = 5_000_000
    _fma_chain(10, 0.9, 0.1)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        _fma_chain(n, 0.9, 0.1)
        best = min(best, time.perf_counter() - start)
    return FMA_LATENCY / (1e9 * best / (4 * n))


@numba.njit(nogil=True, error_model="numpy")
def _drive_score(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    upto: int,
    c1: float,
    c2: float,
    cov_norm: float,
    rp: np.ndarray,
    rm: np.ndarray,
    col: np.ndarray,
    mo: np.ndarray,
    deficit: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """``gaussian_score_row``'s path over uint8 pixels (one chunk), up to stage ``upto``.

    Returns the sum of SSIM over the outputs (``_row_sum``, stage 3), or of one
    value per row (earlier stages, so that nothing is elided).
    """
    win = g.shape[0]
    half = win // 2
    n_out = x.shape[1] - win + 1
    n_rows = x.shape[0] - win + 1
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    view = col[_PAIRS - half :]
    limit = _sd_limit(c2)
    total = 0.0
    for r in range(win - 1):
        load_rows_sd(x, y, r, rp, rm, r % win, True)
    for i in range(n_rows):
        last = i + win - 1
        load_rows_sd(x, y, last, rp, rm, last % win, True)
        if upto < 1:
            total += rp[last % win, i % x.shape[1]]
            continue
        for j0 in range(0, n_out, tile):
            n_tile = min(tile, n_out - j0)
            width = n_tile + win - 1
            if _vertical_sweep_sd(rp, rm, g, i, j0, width, view, None, limit):
                raise ValueError("the benchmark pair left the one-part sweep")
            if upto >= 2:
                _horizontal_sweep_sd(col, g, n_tile, cov_norm, None, mo, 0)
            if upto >= 3:
                _combine_score(mo, n_tile, c1, c2, deficit, j0)
        if upto >= 3:
            total += _row_sum(deficit, n_out)
        else:
            total += col[i % COL] + mo[i % ACC]
    return total


@numba.njit(nogil=True, error_model="numpy")
def _drive(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    upto: int,
    c1: float,
    c2: float,
    cov_norm: float,
    rx: np.ndarray,
    ry: np.ndarray,
    col: np.ndarray,
    mo: np.ndarray,
    out: np.ndarray,
    deficit: np.ndarray,
    packed: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The Gaussian path of ``maps_chunks`` (one chunk, maps in ``out``), up to stage ``upto``.

    ``upto`` 9 is the score's path: the passes, the deficits alone and their row sum.
    """
    win = g.shape[0]
    n_out = x.shape[1] - win + 1
    n_rows = x.shape[0] - win + 1
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    # A smaller window's columns are written _PAIRS - win // 2 in (gaussian_row_m).
    view = col[_PAIRS - win // 2 :]
    bins = packed.shape[0] - HIST
    index = np.empty(n_out, dtype=np.int32)
    for r in range(win - 1):
        load_row(x, r, rx, r % win)
        load_row(y, r, ry, r % win)
    for i in range(n_rows):
        last = i + win - 1
        load_row(x, last, rx, last % win)
        load_row(y, last, ry, last % win)
        if upto >= 1:
            for j0 in range(0, n_out, tile):
                n_tile = min(tile, n_out - j0)
                _vertical_sweep_m(rx, ry, g, i, j0, n_tile + win - 1, view)
                if upto >= 2:
                    _horizontal_sweep_m(col, g, n_tile, cov_norm, mo)
                if upto == 9:
                    combine_row_m(mo, n_tile, c1, c2, 0, out, deficit, j0)
                elif upto >= 3:
                    combine_row_m(mo, n_tile, c1, c2, 5, out, deficit, j0)
        if upto == 9:
            packed[1] += _row_sum(deficit, n_out)
        if 4 <= upto <= 7:
            # The passes of add_row_partial alone (their results kept, so not elided).
            total, sum_l, sum_c, sum_s = _segment_sums(deficit, out[2], out[3], out[4])
            packed[1] += total + sum_l + sum_c + sum_s
            if upto >= 5:
                packed[2] += _segment_m2(deficit, total / n_out)
            if upto >= 6:
                low, high = _extremes(out[0])
                packed[6] = min(packed[6], low)
                packed[7] = max(packed[7], high)
            if upto >= 7:
                _indices(out[0], bins, index)
                packed[8] += index[n_out // 2]
        if upto == 8:
            add_row_partial(out[0], deficit, out[2], out[3], out[4], n_out, packed)


def make_pair(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture with edges and a noisy copy (uint8), seeded."""
    rng = np.random.default_rng(2004)
    coarse = rng.uniform(0, 255, (side // 16 + 2, side // 16 + 2))
    x = np.kron(coarse, np.ones((16, 16)))[:side, :side]
    x = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    y = np.clip(x + rng.normal(0, 12, x.shape), 0, 255)
    return x.astype(np.uint8), y.astype(np.uint8)


def cpuinfo_field(name: str) -> str | None:
    """The value of field ``name`` of the first CPU in /proc/cpuinfo; None where absent."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def cpu_clock_ghz() -> float:
    """The clock of the first CPU in /proc/cpuinfo (``cpu MHz``), GHz; NaN where absent."""
    mhz = cpuinfo_field("cpu MHz")
    return float("nan") if mhz is None else float(mhz) / 1000


def cpu_flags() -> set[str]:
    return set((cpuinfo_field("flags") or "").split())


def fma_lanes(flags: set[str]) -> int:
    """float32 lanes of one FMA unit's datapath (see the module docstring)."""
    family = cpuinfo_field("cpu family")
    amd = cpuinfo_field("vendor_id") == "AuthenticAMD"
    if amd and family is not None and family.isdigit() and int(family) <= 25:
        return 8
    return 16 if "avx512f" in flags else 8


def cpu_model() -> str:
    return cpuinfo_field("model name") or "unknown"


def time_stages(side: int, repeat: int) -> tuple[list[float], float, float, int]:
    """Best seconds of the cumulative variants (``upto`` 0..8), the score's, ``maps_chunks``'.

    And the number of output pixels.
    """
    numba.set_num_threads(1)
    x, y = make_pair(side)
    g = gaussian_window(WIN, SIGMA).astype(np.float32)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    cov_norm = WIN * WIN / (WIN * WIN - 1.0)
    n_out = side - WIN + 1
    rings = aligned_empty((1, 2, WIN, ring_width(side, 4)), np.float32)
    col = np.zeros(8 * COL, np.float32)
    mo = np.empty(6 * ACC, np.float32)
    out = np.empty((5, n_out), np.float32)
    deficit = np.empty(n_out, np.float64)
    packed = np.zeros((1, HIST + BINS))
    bounds = np.array([0, n_out], np.int64)

    def variant(upto: int) -> None:
        packed[:] = 0.0
        _drive(x, y, g, upto, c1, c2, cov_norm, rings[0, 0], rings[0, 1], col, mo, out,
               deficit, packed[0])  # fmt: skip

    def entry() -> None:
        packed[:] = 0.0
        # score_rows, sd_maps and five None: the six-moment maps path; packed statistics.
        maps_chunks(x, y, g.astype(np.float64), bounds, c1, c2, cov_norm, True, 0.0, rings,
                    None, None, None, False, None, None, None, None, None, packed, None,
                    np.zeros(1, np.int64))  # fmt: skip

    calls = [lambda k=k: variant(k) for k in range(len(STAGES))] + [lambda: variant(9), entry]
    calls[len(STAGES) - 1]()  # compile / load and warm up, and check the driver
    driven = packed.copy()
    entry()
    if not np.allclose(driven, packed, rtol=1e-12, atol=0):
        raise AssertionError(
            "the stage driver's statistics differ from maps_chunks':"
            f" {driven[0, :HIST]} vs {packed[0, :HIST]}"
        )
    for call in calls:
        call()
    best = [float("inf")] * len(calls)
    for _ in range(repeat):
        for k, call in enumerate(calls):
            start = time.thread_time()
            call()
            best[k] = min(best[k], time.thread_time() - start)
    return best[:-2], best[-2], best[-1], n_out * n_out


def time_score_stages(side: int, repeat: int) -> tuple[list[float], float, int]:
    """Best seconds of the score path's cumulative variants (``upto`` 0..3), ``fused_score``'s.

    And the number of output pixels. The driver's score is checked against
    ``fused_score``'s (one thread) first.
    """
    numba.set_num_threads(1)
    x, y = make_pair(side)
    g = gaussian_window(WIN, SIGMA).astype(np.float32)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    cov_norm = WIN * WIN / (WIN * WIN - 1.0)
    n_out = side - WIN + 1
    rings = aligned_empty((2, WIN, ring_width(side, 4)), np.float32)
    col = np.zeros(8 * COL, np.float32)
    mo = np.empty(6 * ACC, np.float32)
    deficit = np.empty(n_out, np.float64)
    params = dict(weights=g.astype(np.float64), uniform=False, c1=c1, c2=c2, cov_norm=cov_norm)

    def variant(upto: int) -> float:
        return float(_drive_score(x, y, g, upto, c1, c2, cov_norm, rings[0], rings[1], col, mo,
                                  deficit))  # fmt: skip

    def entry() -> float:
        return float(fused_score(x, y, threads=1, **params))

    driven = variant(len(SCORE_STAGES) - 1) / (n_out * n_out)
    if not np.isclose(driven, entry(), rtol=1e-12, atol=0):
        raise AssertionError(f"the score driver's SSIM {driven} differs from fused_score's")
    calls = [lambda k=k: variant(k) for k in range(len(SCORE_STAGES))] + [entry]
    best = [float("inf")] * len(calls)
    for _ in range(repeat):
        for k, call in enumerate(calls):
            start = time.thread_time()
            call()
            best[k] = min(best[k], time.thread_time() - start)
    return best[:-1], best[-1], n_out * n_out


def print_stages(
    names: tuple[str, ...], fma: dict[str, int], best: list[float], pixels: int, peak: float
) -> dict[str, float]:
    """A stage table: each stage's time (the difference of cumulative variants) and share.

    Returns each stage's ns per output pixel.
    """
    print("| stage | ns per pixel | share | FMA per pixel | fraction of one core's FMA peak |")
    print("|---|---|---|---|---|")
    stage_ns = [1e9 * best[0]] + [1e9 * (best[k] - best[k - 1]) for k in range(1, len(best))]
    stage_ns = [ns / pixels for ns in stage_ns]
    total = 1e9 * best[-1] / pixels
    for name, ns in zip(names, stage_ns, strict=True):
        count = fma.get(name)
        fraction = "-" if count is None or ns <= 0 else f"{100 * count / peak / ns:.1f} %"
        print(f"| {name} | {ns:.2f} | {100 * ns / total:.0f} % | {count or '-'} | {fraction} |")
    total_fma = sum(fma.values())
    overall = 100 * total_fma / peak / total
    print(f"| all stages | {total:.2f} | 100 % | {total_fma} | {overall:.1f} % |")
    return dict(zip(names, stage_ns, strict=True))


def print_table(
    best: list[float], score: float, entry: float, pixels: int, repeat: int, clock: float
) -> tuple[float, dict[str, float]]:
    """The maps path's table; returns one core's FMA peak (GFMA/s) and the stages' ns per pixel."""
    flags = cpu_flags()
    avx512 = "avx512f" in flags
    lanes = fma_lanes(flags)
    core_peak = 2 * lanes * clock  # GFMA/s of one core: 2 FMA units
    total_fma = sum(FMA_PER_STAGE.values())
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, clock {clock:.3f} GHz measured"
        f" ({FMA_LATENCY} cycles per dependent FMA; /proc/cpuinfo: {cpu_clock_ghz():.3f} GHz)"
    )
    print(
        f"flags: avx2={'avx2' in flags} fma={'fma' in flags} avx512f={avx512}"
        f" -> FMA datapath {32 * lanes} bits, {lanes} float32 lanes"
    )
    print("Arithmetic limit (FMA-equivalents per output pixel, 11x11 Gaussian, six moments:")
    print("x, y, x^2, y^2, xy and (x - y)^2, as the maps path computes them):")
    print(f"  vertical: 4 products + 6 moments x {WIN} taps = {FMA_PER_STAGE['vertical pass']}")
    print(f"  horizontal: 6 moments x {WIN} taps = {FMA_PER_STAGE['horizontal pass']}")
    print("  combine: 2 (its divisions and square roots are not FMAs)")
    print(f"  total: {total_fma} FMA per output pixel")
    print(
        f"  peak of one core: 2 FMA units x {lanes} lanes x {clock:.3f} GHz"
        f" = {core_peak:.1f} GFMA/s"
        f" -> {total_fma / core_peak:.2f} ns per pixel"
    )
    print(
        f"  peak of the machine: {os.cpu_count()} cores x {core_peak:.1f} ="
        f" {(os.cpu_count() or 1) * core_peak:.1f} GFMA/s"
        f" -> {total_fma / ((os.cpu_count() or 1) * core_peak):.2f} ns per pixel"
    )
    print(f"\n{pixels} output pixels ({WIN}x{WIN}, sigma {SIGMA}), one thread, best of {repeat}")
    stage_ns = print_stages(STAGES, FMA_PER_STAGE, best, pixels, core_peak)
    print(f"| check: maps_chunks (packed statistics) | {1e9 * entry / pixels:.2f} | | | |")
    score_ns = 1e9 * (score - best[2]) / pixels
    print(f"| score: combine (deficits) + row sum | {score_ns:.2f} | | | |")
    score_total = 1e9 * score / pixels
    score_fma = FMA_PER_STAGE["vertical pass"] + FMA_PER_STAGE["horizontal pass"]
    print(f"| score: all stages | {score_total:.2f} | | {score_fma} | "
          f"{100 * score_fma / core_peak / score_total:.1f} % |")  # fmt: skip
    return core_peak, stage_ns


def print_score_table(
    best: list[float], entry: float, pixels: int, core_peak: float
) -> dict[str, float]:
    """The score path's stages (sum/difference basis) against the same core peak.

    Returns the stages' ns per output pixel.
    """
    total_fma = sum(SCORE_FMA.values())
    print("\nThe score as pipeline.ssim computes it (sum/difference basis, four moments:")
    print(f"p, m, p^2, m^2; {total_fma} FMA per output pixel: vertical 2 products + 4 x {WIN}")
    print(f"taps, horizontal 4 x {WIN}, combine 2), one thread:")
    stage_ns = print_stages(SCORE_STAGES, SCORE_FMA, best, pixels, core_peak)
    print(f"| check: fused_score (threads=1) | {1e9 * entry / pixels:.2f} | | | |")
    return stage_ns


# ---------------------------------------------------------------------------
# Assembly


def _recompiled(dispatcher: Any) -> Any:
    """The dispatcher's function compiled again from its source with its options, no cache."""
    skip = ("cache", "nopython")
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in skip}
    return numba.njit(**options)(dispatcher.py_func)


_INSTRUCTION = re.compile(r"^\s+(v[a-z0-9]+)\s+(.*)$")
_ARITHMETIC = ("vadd", "vsub", "vmul", "vfm", "vfnm", "vdiv", "vsqrt", "vmin", "vmax")
_FMA = ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub")
_DIVIDE = ("vdiv", "vsqrt")
_REGISTER_BITS = {"zmm": 512, "ymm": 256, "xmm": 128}


def _register(args: str) -> str:
    """The widest vector register an instruction's operands name ("" for none)."""
    return next((name for name in _REGISTER_BITS if name in args), "")


KEYS = ("vector loops", "vector type", "fma ymm", "fma zmm", "fma xmm", "fma scalar")
KEYS += ("packed ymm", "packed zmm", "packed xmm", "scalar", "div/sqrt packed", "div/sqrt scalar")
KEYS += ("int->fp scalar",)


def count_asm(asm: str, llvm: str) -> dict[str, Any]:
    """Loops LLVM vectorised, FMAs by width, float arithmetic (packed/scalar) by register."""
    counts: dict[str, Any] = dict.fromkeys(KEYS, 0)
    counts["vector loops"] = len(re.findall(r"^vector\.body[0-9]*:", llvm, re.M))
    types = {(int(n), t) for n, t in re.findall(r"<(\d+) x (float|double)>", llvm)}
    counts["vector type"] = " ".join(f"<{n} x {t}>" for n, t in sorted(types)) or "-"
    for line in asm.splitlines():
        match = _INSTRUCTION.match(line)
        if match is None:
            continue
        op, args = match.groups()
        width = _register(args) or "xmm"
        if op.startswith("vcvtsi2"):  # scalar integer -> float (no packed int64 form in AVX2)
            counts["int->fp scalar"] += 1
        scalar = op.endswith(("ss", "sd"))
        packed = op.endswith(("ps", "pd"))
        if not (scalar or packed) or not op.startswith(_ARITHMETIC):
            continue
        if op.startswith(_FMA):
            counts["fma scalar" if scalar else f"fma {width}"] += 1
        if op.startswith(_DIVIDE):
            counts["div/sqrt scalar" if scalar else "div/sqrt packed"] += 1
        counts["scalar" if scalar else f"packed {width}"] += 1
    return counts


def asm_report() -> None:
    """Compile the routines again (same options, no cache) on real arguments and count."""
    x, y = make_pair(256)
    g = gaussian_window(WIN, SIGMA).astype(np.float32)
    n_out = x.shape[1] - WIN + 1
    rx = np.zeros((WIN, x.shape[1]), np.float32)
    ry = np.zeros((WIN, x.shape[1]), np.float32)
    col = np.zeros(8 * COL, np.float32)
    acc = np.zeros(8 * ACC, np.float32)
    mo = np.ones(6 * ACC, np.float32)
    out = np.empty((5, n_out), np.float32)
    v = np.zeros((5, x.shape[1]), np.float64)
    m = np.zeros((5, n_out), np.float64)
    iv = np.zeros((uniform.INT_ROWS, x.shape[1]), np.int32)
    im = np.zeros((uniform.INT_ROWS, n_out + 4), np.int32)
    itmp = np.zeros((2, x.shape[1]), np.int32)
    out[:] = np.linspace(-1, 1, n_out, dtype=np.float32)
    d64 = np.zeros(n_out)
    index = np.empty(n_out, np.int32)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    cases: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("gaussian.load_row", gaussian.load_row, (x, 0, rx, 0)),
        ("gaussian._vertical_pass", gaussian._vertical_pass, (rx, ry, g, 0, 0, 100, col)),
        ("gaussian._horizontal_pass", gaussian._horizontal_pass, (col, g, 90, 1.0, acc, mo)),
        ("combine.combine_row", combine.combine_row, (mo, 90, c1, c2, 5, out, d64, 0)),
        ("histogram._indices", histogram._indices, (out[0], BINS, index)),
        ("gaussian._vertical_sweep_m", gaussian._vertical_sweep_m, (rx, ry, g, 0, 0, 100, col)),
        ("gaussian._horizontal_sweep_m", gaussian._horizontal_sweep_m, (col, g, 90, 1.0, mo)),
        ("combine.combine_row_m", combine.combine_row_m, (mo, 90, c1, c2, 5, out, d64, 0)),
        ("uniform.swap_row", uniform.swap_row, (x, y, 20, 5, 0.0, v)),
        ("uniform._slide_row", uniform._slide_row, (7, v, m)),
        ("uniform._uniform_moments", uniform._uniform_moments, (m, 0, 90, 1 / 49, 1.0, 0.0, mo)),
        ("uniform.swap_row_int", uniform.swap_row_int, (x, y, 20, 5, iv)),
        ("uniform._box_sums_int", uniform._box_sums_int, (iv[0], 7, n_out + 4, im[0], itmp)),
        ("uniform._int_moments", uniform._int_moments, (im, 0, 90, 49, mo)),
    ]
    print(f"\nCompiled routines (numba {numba.__version__}): loops LLVM vectorised")
    print("('vector.body' blocks of the LLVM IR), vector types, and static counts of the")
    print("float instructions in the assembly (vector bodies and their scalar remainder loops):")
    print("| routine | fastmath | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for name, dispatcher, args in cases:
        clone = _recompiled(dispatcher)
        clone(*args)
        (signature,) = clone.signatures
        counts = count_asm(clone.inspect_asm(signature), clone.inspect_llvm(signature))
        fastmath = dispatcher.targetoptions.get("fastmath", False)
        fm = ",".join(sorted(fastmath)) if isinstance(fastmath, set) else str(bool(fastmath))
        print(f"| {name} | {fm} | " + " | ".join(str(counts[k]) for k in KEYS) + " |")


# ---------------------------------------------------------------------------
# Hot loops: what bounds the sweeps and the comparison steps

_ANY_INSTRUCTION = re.compile(r"^\s+([a-z][a-z0-9]*)\b\s*([^#]*)")
_INDEX_REGISTER = re.compile(r"\(%\w+,%(\w+),\d\)")
_FMA_PIPE = (*_FMA, "vmul")
_ADD_PIPE = ("vadd", "vsub", "vmin", "vmax", "vcmp")
# Divider instructions timed on their own (an independent one per element).
DIVIDER_KINDS = ("vdivpd", "vdivps", "vsqrtps", "vsqrtpd")


@numba.njit(nogil=True, error_model="numpy")
def _divider_loop(kind: int, a: np.ndarray, b: np.ndarray, out: np.ndarray, reps: int) -> None:
    for _ in range(reps):  # pragma: no cover - compiled
        for j in range(a.shape[0]):
            if kind == 0:
                out[j] = a[j] / b[j]
            else:
                out[j] = np.sqrt(a[j])


def divider_cycles(clock: float, repeat: int = 5) -> dict[str, float]:
    """Cycles per element of each divider instruction kind, independent ones back to back."""
    cycles = {}
    for kind, dtype in zip(
        DIVIDER_KINDS, (np.float64, np.float32, np.float32, np.float64), strict=True
    ):
        a = np.random.default_rng(0).uniform(1, 2, 4096).astype(dtype)
        b = a[::-1].copy()
        out = np.empty_like(a)
        code = 0 if kind.startswith("vdiv") else 1
        _divider_loop(code, a, b, out, 1)
        reps = 500
        best = float("inf")
        for _ in range(repeat):
            start = time.thread_time()
            _divider_loop(code, a, b, out, reps)
            best = min(best, time.thread_time() - start)
        cycles[kind] = best / reps / a.size * 1e9 * clock
    return cycles


def hot_loop(asm: str) -> list[tuple[str, str]]:
    """``(mnemonic, operands)`` of a routine's busiest innermost loop in its assembly.

    The innermost loops are the labelled blocks that jump back to their own label
    (up to that jump); the busiest has the most ymm/zmm instructions (the vector
    body, not its scalar remainder). Empty where there is none.
    """
    best: list[tuple[str, str]] = []
    best_vector = 0
    for block in re.split(r"\n(?=\.LBB)", asm):
        lines = block.splitlines()
        head = re.match(r"(\.LBB\S+):", lines[0]) if lines else None
        if head is None:
            continue
        body = [
            (m.group(1), m.group(2).strip()) for m in map(_ANY_INSTRUCTION.match, lines[1:]) if m
        ]
        back = [k for k, (op, args) in enumerate(body) if op[0] == "j" and args == head.group(1)]
        if not back:
            continue
        # The loop ends at its jump back; what follows without a label is its exit.
        body = body[: back[0] + 1]
        vector = sum("ymm" in ops or "zmm" in ops for _, ops in body)
        if vector > best_vector:
            best, best_vector = body, vector
    return best


def loop_counts(body: list[tuple[str, str]], datapath_bits: int) -> dict[str, Any]:
    """What one iteration of ``body`` issues, by kind.

    ``fma pipe`` and ``add pipe`` count each operation once per ``datapath_bits`` of
    its register (a zmm operation is two on a 256-bit datapath); ``step`` is the
    columns one iteration makes (the increment of the index register that scales
    its memory operands, else the widest float vector's lanes); ``divider`` lists
    the divide and square-root instructions with their lanes.
    """
    counts: dict[str, Any] = {"instructions": len(body), "fma pipe": 0.0, "add pipe": 0.0}
    counts.update({"loads": 0, "stores": 0, "divider": [], "lanes": 0, "step": 0})
    index_registers = set()
    for op, args in body:
        width = _REGISTER_BITS.get(_register(args), 0)
        if "(" in args:
            # AT&T syntax: a move whose last operand is memory stores; any other reads.
            store = op.startswith(("mov", "vmov")) and args.endswith(")")
            counts["stores" if store else "loads"] += 1
            index_registers.update(_INDEX_REGISTER.findall(args))
        packed = op.endswith(("ps", "pd"))
        if not (packed or op.endswith(("ss", "sd"))) or not op.startswith("v") or not width:
            continue
        element = 64 if op.endswith(("pd", "sd")) else 32
        lanes = width // element if packed else 1
        if packed:
            counts["lanes"] = max(counts["lanes"], lanes)
        share = max(1.0, width / datapath_bits)
        if op.startswith(_FMA_PIPE):
            counts["fma pipe"] += share
        elif op.startswith(_ADD_PIPE):
            counts["add pipe"] += share
        elif op.startswith(_DIVIDE):
            counts["divider"].append((op, lanes))
    for op, args in body:
        match = re.fullmatch(r"\$(\d+), %(\w+)", args)
        if op in ("addq", "incq") and match and match.group(2) in index_registers:
            counts["step"] = int(match.group(1))
    counts["step"] = counts["step"] or counts["lanes"]
    return counts


def loop_report(
    maps_ns: dict[str, float], score_ns: dict[str, float], side: int, clock: float
) -> None:
    """Each sweep's and comparison step's hot loop against its measured stage time."""
    g = gaussian_window(WIN, SIGMA).astype(np.float32)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    limit = _sd_limit(c2)
    rx = np.zeros((WIN, 300), np.float32)
    ry = np.zeros((WIN, 300), np.float32)
    col = np.zeros(8 * COL, np.float32)
    mo = np.ones(8 * ACC, np.float32)
    out = np.empty((5, 256), np.float32)
    d64 = np.zeros(256)
    # Columns a vertical sweep makes per output pixel: each tile's window overhang.
    n_out = side - WIN + 1
    tile = min(SWEEP_TILE, COL - 2 * _PAIRS)
    overhang = (n_out + -(-n_out // tile) * (WIN - 1)) / n_out
    cases: list[tuple[str, str, float, Any, tuple[Any, ...]]] = [
        ("score", "vertical pass", overhang, _vertical_sweep_sd,
         (rx, ry, g, 0, 0, 100, col, None, limit)),
        ("score", "horizontal pass", 1.0, _horizontal_sweep_sd, (col, g, 90, 1.0, None, mo, 0)),
        ("score", "combine (deficits) + row sum", 1.0, _combine_score, (mo, 90, c1, c2, d64, 0)),
        ("maps", "vertical pass", overhang, _vertical_sweep_m, (rx, ry, g, 0, 0, 100, col)),
        ("maps", "horizontal pass", 1.0, _horizontal_sweep_m, (col, g, 90, 1.0, mo)),
        ("maps", "combine (SSIM, cs, l, c, s)", 1.0, combine_row_m,
         (mo, 90, c1, c2, 5, out, d64, 0)),
    ]  # fmt: skip
    datapath = 32 * fma_lanes(cpu_flags())
    divider = divider_cycles(clock)
    print(f"\nDivider, cycles per element at {clock:.3f} GHz (independent operations, one thread):")
    print("| " + " | ".join(DIVIDER_KINDS) + " |")
    print("|" + "---|" * len(DIVIDER_KINDS))
    print("| " + " | ".join(f"{divider[k]:.2f}" for k in DIVIDER_KINDS) + " |")
    print(f"\nHot loops (the busiest innermost loop of each routine; {datapath}-bit FMA datapath):")
    print("one iteration's instructions, loads (memory operands), stores, operations of the")
    print("FMA/multiply and add/compare pipes (a zmm operation counts twice on a 256-bit")
    print("datapath) and the divider's cycles; then the cycles one iteration takes by the stage")
    print("times above (ns per pixel x columns per pixel x columns per iteration x clock) and")
    print("the instructions retired per cycle.")
    head = "| path | routine (stage) | columns per iteration | instructions | loads | stores |"
    head += " FMA/mul pipe | add/cmp pipe | divider cycles | measured cycles | IPC |"
    print(head)
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path, stage, columns, dispatcher, args in cases:
        clone = _recompiled(dispatcher)
        clone(*args)
        (signature,) = clone.signatures
        counts = loop_counts(hot_loop(clone.inspect_asm(signature)), datapath)
        div_cycles = sum(divider.get(op, 0.0) * lanes for op, lanes in counts["divider"])
        ns = (maps_ns if path == "maps" else score_ns)[stage]
        cycles = ns * columns * counts["step"] * clock
        ipc = counts["instructions"] / cycles if cycles > 0 else float("nan")
        name = dispatcher.py_func.__name__
        print(
            f"| {path} | {name} ({stage}) | {counts['step']} | {counts['instructions']} |"
            f" {counts['loads']} | {counts['stores']} | {counts['fma pipe']:g} |"
            f" {counts['add pipe']:g} | {div_cycles:.1f} | {cycles:.1f} | {ipc:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the square pair")
    parser.add_argument("--repeat", type=int, default=11, help="best of this many rounds")
    parser.add_argument("--asm", action="store_true", help="also count FMA/vector instructions")
    parser.add_argument(
        "--loops",
        action="store_true",
        help="also the sweeps' and comparison steps' hot loops: instructions per iteration, "
        "cycles per iteration at the measured clock, and the divider's share",
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    clock = measured_clock_ghz()
    best, score, entry, pixels = time_stages(args.size, args.repeat)
    score_best, score_entry, _ = time_score_stages(args.size, args.repeat)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    core_peak, maps_ns = print_table(best, score, entry, pixels, args.repeat, clock)
    score_ns = print_score_table(score_best, score_entry, pixels, core_peak)
    if args.asm:
        asm_report()
    if args.loops:
        loop_report(maps_ns, score_ns, args.size, clock)


if __name__ == "__main__":
    main()
