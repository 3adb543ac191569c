"""Fused, compiled SSIM maps of a 2-D block on the CPU (numba).

Same numbers as :func:`pipeline.kernels.reference.ssim_maps` (within 1e-5 per
pixel, usually ~1e-7; means within 1e-8 of the exact value), without its five
full-size float64 moment images: each output
row is made from a small row buffer, so the working memory is O(width) per
thread and the only large arrays are the maps that are returned.

The data flow, one module per step:

* :mod:`pipeline.kernels.cpu.launch`: the checks, the dtype the images are
  read as, how many threads and which chunks of output rows; then
  :func:`_launch` (this module, under the public entry points) allocates the
  outputs and row buffers and starts the kernel.
* :mod:`pipeline.kernels.cpu.chunk`: the compiled entry point, which walks
  chunks of output rows (all of them on the calling thread, or one chunk per
  call from a pool of threads).
* The local moments ``mu_x, mu_y, sigma_x^2, sigma_y^2, sigma_xy`` of output
  row ``i`` (and ``var(x - y)`` under a uniform window and an odd Gaussian window of
  up to 11 taps),
  tile by tile (``SWEEP_TILE`` columns for the Gaussian one-sweep paths, ``TILE`` for
  the others):
  :mod:`pipeline.kernels.cpu.gaussian` for a Gaussian window (separable,
  Wang et al. 2004 sec. III-C: a ring of ``win_size`` converted input rows, a
  vertical then a horizontal 1-D pass, joined by the law of total variance);
  :mod:`pipeline.kernels.cpu.uniform` for a uniform window (running sums, so
  the cost per pixel does not depend on ``win_size``; each chunk of rows
  restarts them, which bounds rounding drift for float input).
* :mod:`pipeline.kernels.cpu.combine`: moments to luminance, contrast,
  structure, cs and SSIM (eqs. 6-13), with the compilation options and buffer
  layout that every kernel shares.

Precision. Plain float32 ``E[x^2] - mu^2`` cancels catastrophically for data
far from zero (1e-4 of ``cs`` for flat 255 beside an edge, 6e-4 for uint16 near
60000, with or without a per-block offset). The Gaussian path therefore forms
every (co)variance around the window's own centre sample, which bounds the
float32 rounding error relative to the variance itself (derived in
:mod:`pipeline.kernels.cpu.gaussian`); it computes in float32 throughout and
stays within ~5e-7 of the float64 reference on uint8, uint16 near 65535,
float32 and float64 data offset by 1e4 (tests/kernels/cpu/test_fused.py). Running
sums cannot be re-centred per window, so the uniform path accumulates in
float64 (float pixels less one shift near the data per block), or, for uint8
input, in exact int32 integers (windows of up to ``INT_TAPS`` taps;
:mod:`pipeline.kernels.cpu.uniform`). The comparison step is float32 in the
deficit form (:func:`~pipeline.kernels.cpu.combine.combine_row`): it forms
``d = 1 - ssim`` to float32's relative precision, and every mean the kernels
return (:func:`fused_score`, the ``SUM`` and ``M2`` of :func:`fused_packed_stats`
and of the colour kernel) is summed from ``d`` in float64, not from the float32
map, whose values near 1 round by up to 3e-8, the same way on every pixel of a
flat pair. From the five moments ``1 - cs = (v - 2 sigma_xy) / (v + C2)``
cancels on near-identical high-contrast textures (1e-7 of the mean of a uint8
checkerboard 128+-50 against 128+-48): under an odd Gaussian window of up to 11
taps the maps path therefore carries a sixth moment, ``var(x - y)``, formed
directly (:mod:`pipeline.kernels.cpu.gaussian`), and makes ``d`` from it in
float64 (:func:`~pipeline.kernels.cpu.combine.combine_row_m`; ~1.2x the moment
arithmetic of the five); maps without components (ssim and cs) take the score's
sum/difference passes instead (below). Measured against an extended-precision oracle, the
means stay within 1e-8 on the adversarial pairs (flat regions beside edges, flat
255 vs 254, uint16 near 65535, float data offset by 1e4, salt and pepper,
near-identical checkerboards; <= 7e-9 observed, benchmarks/README-kernels.md);
what remains is float32 rounding of the moments. ``d`` is kept in float64 for the
sums: where SSIM is near 0 (flat pairs far apart) it is near 1, and float32 would
round it by up to 3e-8 alike on every pixel of a flat region
(``benchmarks/accuracy_oracle.py``). The uniform window forms ``var(x - y)`` too,
from its float64 or exact integer moments before they are rounded (``sigma_x^2 +
sigma_y^2 - 2 sigma_xy`` there; :mod:`pipeline.kernels.cpu.uniform`), and takes the
same float64 comparison step (the checkerboards within 1.2e-10, 8e-8 before). Even or wider Gaussian
windows keep the five moments. ``ssim(x, x) == 1`` and ``ssim(x, y) == ssim(y,
x)`` hold exactly (x and y go through the same instructions, ``x - y`` is
negated exactly). Maps are returned as float32; a mean of a stored map (NumPy's)
keeps their rounding, up to 3e-8. ``fused_maps(..., deficit=True)`` also returns
the deficits as a float64 map (float32 would round them by up to 3e-8 where SSIM is
near 0, alike on every pixel of a flat region), from which
:func:`pipeline.kernels.cpu.partials.whole_image_statistics` and
:func:`~pipeline.kernels.cpu.partials.region_statistics` take ``SUM`` and ``M2``
(the packed path's numbers).

Threads: the compiled kernel releases the GIL, so many Dask worker threads
may call it at once (``threads=1``: all chunks on the calling thread); with
more threads the chunks are shared out over a pool of Python threads (as many
as numba's thread count allows), each calling the same serial kernel. No
``parallel=True`` kernel is compiled: that would be a second copy of the
whole kernel to compile on a first run. Choose through :func:`fused_maps`'s
``threads`` argument.

Statistics without maps: :func:`fused_packed_stats` reduces each output row
while it is in L1 into the packed region-``all`` row of
:mod:`pipeline.kernels.statistics` (by :mod:`pipeline.kernels.cpu.partials`:
row-wise two-pass M2, Chan-merged), which is what the streaming engine needs
for a whole image; :func:`fused_score` only the mean SSIM (no components, one
vectorised sum per row), the path of ``pipeline.ssim``'s score.

The score alone under an odd Gaussian window of up to 11 taps
(:func:`~pipeline.kernels.cpu.gaussian.gaussian_score_row`) is made in the
sum/difference basis: the moments of ``x + y`` and ``x - y``, two second moments
instead of three, ``sigma_x^2 + sigma_y^2 - 2 sigma_xy`` formed directly as the
variance of ``x - y`` (exactly 0 for equal images, no cancellation for
near-identical ones) and the deficit as one float64 quotient. Its means are
within 4e-9 of the extended-precision oracle on the adversarial pairs and on
near-identical checkerboards. Maps without components (``ssim`` and ``cs``,
MS-SSIM's scales) take the same passes
(:func:`~pipeline.kernels.cpu.gaussian.gaussian_sd_row`). The maps with components
need the variances and the covariance apart (contrast, structure) and carry
``var(x - y)`` as a sixth moment, so
:func:`fused_maps_and_score`'s mean (of the maps path's deficits) and
:func:`fused_score`'s are two computations of one number, within 5e-9 of each
other on the tested pairs (3e-10 on the checkerboards), not the same bits. The
uniform window's score takes its maps' path (six moments; the same number as with
maps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.cpu.chunk import maps_chunks
from pipeline.kernels.cpu.gaussian import five_moment_marker
from pipeline.kernels.cpu.launch import (
    FUSED_DTYPES,
    aligned_empty,
    check_bins,
    check_map_sums,
    plan_threads,
    prepare_pair,
    ring_width,
    row_bounds,
    run_kernel,
)
from pipeline.kernels.cpu.uniform import INT_ROWS, INT_TAPS, data_shift
from pipeline.kernels.statistics import empty_statistics, merge_statistics

__all__ = [
    "FUSED_DTYPES",
    "fused_maps",
    "fused_maps_and_score",
    "fused_packed_stats",
    "fused_score",
]

# ---------------------------------------------------------------------------
# Python entry points


def _launch(
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    threads: int | None,
    output: str,
    bins: int = 0,
    map_sums: np.ndarray | None = None,
    scores: list[np.ndarray] | None = None,
    deficits: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Run the kernel for one ``output`` and return it.

    ``"maps"``: the float32 ``(row, plane, column)`` maps (with ``deficits``, a list,
    the float64 ``(row, column)`` map of the deficits ``1 - ssim`` is appended to
    it); ``"score"``: ``(count,
    ssim_sum)`` per row chunk; ``"packed"``: the packed statistics of ``bins``
    bins per row chunk. The kernel is given only that output (None for the
    others), so only its path is compiled; ``map_sums`` (with ``"packed"``) also
    receives the four valid maps, added in float64; ``scores`` (with ``"maps"``)
    receives the ``"score"`` output of the same pass, appended.
    """
    win_size = g.shape[0]
    n_threads = plan_threads(threads, x.shape[:2], win_size, uniform=uniform)
    n_rows = x.shape[0] - win_size + 1
    n_cols = x.shape[1] - win_size + 1
    bounds = row_bounds(n_rows, n_threads, win_size, uniform)
    n_chunks = bounds.shape[0] - 1
    if output == "maps":
        # Without components only ssim and cs are stored. Row-major over (row,
        # plane, column): one output row of every plane is a contiguous 2-D
        # block, which the combine loop needs to vectorise; each returned map is
        # a view with contiguous rows.
        result = np.empty((n_rows, 5 if components else 2, n_cols), dtype=np.float32)
    elif output == "packed":
        # One partial row per chunk, merged by the caller.
        result = empty_statistics(n_chunks, 1, bins)[:, 0]
    else:
        result = np.zeros((n_chunks, 2))
    # Even Gaussian windows and those wider than SCORE_TAPS keep the five moments: a
    # marker, so that a kernel compiles the one of the two paths it runs. The score
    # alone under the other (odd, small) Gaussian windows takes the sum/difference
    # path: its ring holds x + y and x - y rows, and each chunk one float64 row of
    # deficits.
    five = five_moment_marker(uniform, win_size)
    odd_small = not uniform and five is None
    # Maps without components (ssim and cs, MS-SSIM's scales) need no more than the
    # score: the same ring and passes (a marker array selects them, so that other
    # runs do not compile them); with components, the maps carry six moments.
    sd_maps = np.empty(0) if odd_small and output == "maps" and not components else None
    sum_difference = odd_small and (output == "score" or sd_maps is not None)
    # Each chunk's state of its window's path. Gaussian: a ring of win_size
    # (x, y) input rows, float32 (which holds uint8, uint16 and float32 pixels
    # exactly) or float64 for float64 input, so that x - s is formed before
    # rounding; the sum/difference path's ring holds x + y and x - y (exact in
    # float32 for uint8 and uint16, nearly so in float64), except for float32
    # pixels (x and y as above: their sum would need a float64 ring, slower).
    # Uniform: five float64 running column sums.
    summed = sum_difference and x.dtype != np.float32
    ring_dtype = np.float64 if x.dtype == np.float64 else np.float32
    stride = ring_width(x.shape[1], np.dtype(ring_dtype).itemsize)
    rings = None if uniform else aligned_empty((n_chunks, 2, win_size, stride), ring_dtype)
    # uint8 input under a uniform window of at most INT_TAPS taps: exact int32 sums
    # (a score's three, uniform.SCORE_INT_ROWS, in the first rows).
    exact = uniform and x.dtype == np.uint8 and win_size <= INT_TAPS
    # The score's deficit rows, and its marker: the sum/difference path of a Gaussian
    # window, the three sums of the exact uniform path.
    score_path = (sum_difference and sd_maps is None) or (exact and output == "score")
    score_rows = np.empty((n_chunks, n_cols)) if score_path else None
    sums = np.empty((n_chunks, 5, x.shape[1])) if uniform and not exact else None
    shift = data_shift(x, y) if sums is not None else 0.0
    isums = np.empty((n_chunks, INT_ROWS, x.shape[1]), dtype=np.int32) if exact else None
    outputs = {name: result if name == output else None for name in ("maps", "score", "packed")}
    if scores is not None and output == "maps":
        chunk_scores = np.zeros((n_chunks, 2))
        outputs["score"] = chunk_scores
        scores.append(chunk_scores)
    # float64: where SSIM is near 0 the deficit is near 1, and float32 would round it by
    # up to 3e-8, alike on every pixel of a flat region.
    deficit_map = None
    if deficits is not None and output == "maps":
        deficit_map = np.empty((n_rows, n_cols))
        deficits.append(deficit_map)
    args = (
        x, y, g, bounds, float(c1), float(c2), float(cov_norm), bool(components), shift, rings,
        score_rows, sd_maps, five, bool(summed),
        sums, isums, outputs["maps"], deficit_map, outputs["score"], outputs["packed"], map_sums,
    )  # fmt: skip
    run_kernel(maps_chunks, n_threads, n_chunks, args)
    return result


def _named_maps(
    maps: np.ndarray, components: bool, deficits: list[np.ndarray] | None
) -> dict[str, np.ndarray]:
    """The ``(row, plane, column)`` output of ``"maps"`` as named views, and the deficits."""
    names = ("ssim", "cs", "luminance", "contrast", "structure")[: 5 if components else 2]
    named = {name: maps[:, k] for k, name in enumerate(names)}
    if deficits:
        named["deficit"] = deficits[0]
    return named


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
    deficit: bool = False,
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
        ``None``: as many threads as numba's thread count (in-memory calls).
        ``1``: the kernel on the calling thread, GIL released, safe to call
        from many threads at once (Dask workers). ``n > 1``: ``n`` threads
        (capped at numba's thread count), the calling one and a pool's.
    deficit : bool
        Also return ``deficit``, the float32 ``1 - ssim`` that the comparison step
        forms before it rounds ``ssim`` (:func:`~pipeline.kernels.cpu.combine.combine_row`):
        statistics reduced later from stored maps take their ``SUM`` and ``M2``
        from it (:func:`~pipeline.kernels.cpu.partials.whole_image_statistics`),
        as the packed path does, free of the map's rounding near 1. One float32
        map more (a sixth of the memory with components, a third more without).

    Returns
    -------
    dict of numpy.ndarray
        float32 maps ``ssim`` and ``cs`` (and the components, and ``deficit``), shape
        ``(rows - win_size + 1, cols - win_size + 1)``.

    Notes
    -----
    Only 2-D blocks; other dimensionalities use the reference path.
    Launches over several threads from several callers take turns (a lock)
    instead of oversubscribing the cores.
    """
    x, y, g = prepare_pair(x, y, weights)
    deficits: list[np.ndarray] | None = [] if deficit else None
    maps = _launch(
        x, y, g, uniform, c1, c2, cov_norm, components, threads, "maps", deficits=deficits
    )
    return _named_maps(maps, components, deficits)


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

    Same arguments as :func:`fused_maps`. Only the deficits ``1 - ssim`` and
    their float64 sum are computed (no map, no components, no other
    statistics): the cheapest path, the one :func:`pipeline.ssim` takes for a
    score. The mean is ``1 - sum(d) / n``, free of the float32 rounding of the
    map. Under an odd Gaussian window of up to 11 taps the deficits come from the
    sum/difference basis (module docstring), in float64: this is then not the
    same number as :func:`fused_maps_and_score`'s score (the maps path, float32
    deficits), but within 5e-9 of it on the tested pairs, and within 4e-9 of the
    exact mean on the tested adversarial pairs and near-identical checkerboards; it
    differs from the mean of :func:`fused_maps`' ``ssim`` by that map's rounding (up
    to 3e-8) and the maps path's own error. ``ssim(x, x) == 1`` and ``ssim(x, y) ==
    ssim(y, x)`` hold exactly on every path.
    """
    x, y, g = prepare_pair(x, y, weights)
    scores = _launch(x, y, g, uniform, c1, c2, cov_norm, False, threads, "score")
    return _score_of(scores)


def _score_of(scores: np.ndarray) -> float:
    """The mean SSIM from the ``(count, ssim_sum)`` of each row chunk."""
    return float(scores[:, 1].sum() / scores[:, 0].sum())


def fused_maps_and_score(
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
    deficit: bool = False,
) -> tuple[dict[str, np.ndarray], float]:
    """:func:`fused_maps` and the mean of their deficits, in one pass.

    Same arguments as :func:`fused_maps` (``deficit`` included). The score is the
    float64 mean of this pass's deficits ``1 - ssim`` (the maps path), not the mean
    of the returned float32 ``ssim`` map, which keeps the map's rounding (up to 3e-8
    near 1, the same on every pixel of a flat pair). Under a uniform window it is
    :func:`fused_score`'s number; under an odd Gaussian window of up to 11 taps
    :func:`fused_score` takes the sum/difference basis instead and the maps carry
    ``var(x - y)`` as a sixth moment: the two agree within 5e-9 on the tested pairs,
    near-identical high-contrast textures included (module docstring).
    """
    x, y, g = prepare_pair(x, y, weights)
    found: list[np.ndarray] = []
    deficits: list[np.ndarray] | None = [] if deficit else None
    maps = _launch(
        x, y, g, uniform, c1, c2, cov_norm, components, threads, "maps", scores=found,
        deficits=deficits,
    )  # fmt: skip
    return _named_maps(maps, components, deficits), _score_of(found[0])


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
    map_sums: np.ndarray | None = None,
) -> np.ndarray:
    """Packed region-``all`` statistics of a block's 'valid' SSIM map, without storing maps.

    Same arguments as :func:`fused_maps`, plus ``bins`` (histogram bins over
    [-1, 1]). Returns the row that :func:`pipeline.reductions.statistics.block_statistics`
    gives for region ``all`` of the float32 maps (shape ``(len(FIELDS) + bins,)``: count,
    sums of ssim/luminance/contrast/structure, M2, min, max, histogram; the pixel-error
    fields are zero, filled by the block task from the pixels), except that the SSIM
    ``SUM`` and ``M2`` come from the float64 deficits ``1 - ssim`` and not from the
    float32 map (they differ from the map's by its rounding, <= 3e-8 a pixel). Each
    output row is
    reduced while it is in cache; ``M2`` joins row by row by
    Chan's update, so it matches the two-pass value to ~1e-12 relative.
    Several threads give one partial per row chunk, merged by
    :func:`pipeline.kernels.statistics.merge_statistics`.

    ``map_sums`` (optional, ``(k >= 4, rows - win_size + 1, cols - win_size + 1)``
    float64, C-contiguous) receives the ``ssim``, ``luminance``, ``contrast`` and
    ``structure`` maps in its first four components, added in place in the same
    pass: called once per image of a block, it holds the sum of their maps (the
    mean maps of a run) and no map is stored.
    """
    check_bins(bins)
    x, y, g = prepare_pair(x, y, weights)
    win_size = g.shape[0]
    check_map_sums(map_sums, (x.shape[0] - win_size + 1, x.shape[1] - win_size + 1))
    packed = _launch(
        x, y, g, uniform, c1, c2, cov_norm, True, threads, "packed", int(bins), map_sums
    )
    if packed.shape[0] == 1:
        return packed[0]
    return np.asarray(merge_statistics(packed, axis=0))
