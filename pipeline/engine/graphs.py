"""The lazy graphs of a plan: partial statistics per image and region, and their checks.

What :func:`pipeline.engine.plan.plan_run` builds once per size group and joins:
the 2-D statistics graph (sources -> tiling -> kernels -> reductions, tree-combined
over blocks), the per-image status that fails pairs whose statistics are not a
score, and the placement of one group's regions on the run's region axis. Volume
and MS-SSIM graphs are built by :mod:`pipeline.engine.volumes` and
:mod:`pipeline.engine.multiscale`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any, NamedTuple

import dask.array as da
import numpy as np

from pipeline.inputs.sources import SourcePair
from pipeline.kernels.statistics import FIELDS, empty_statistics
from pipeline.metrics.checks import FLOAT64_PIXEL_LIMIT
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.mean_maps import COMPONENTS, add_maps, add_reference, block_sums
from pipeline.reductions.nonfinite import masked_block_statistics, screen_block
from pipeline.reductions.regions import RegionPlan, region_ids
from pipeline.reductions.squared_error import add_squared_error
from pipeline.reductions.statistics import block_statistics, unscored_reasons
from pipeline.results.schema import STATUS_OK
from pipeline.tiling.chunks import (
    batch_bounds,
    block_centres,
    merge_block_statistics,
    own_pixels,
)
from pipeline.tiling.halo import map_overlapping

__all__ = [
    "StatisticsGraphs",
    "mean_map_graph",
    "statistics_graphs",
    "widen_regions",
    "with_statistics_check",
]


class StatisticsGraphs(NamedTuple):
    """The lazy graphs of one size group's block statistics (:func:`statistics_graphs`).

    Attributes
    ----------
    statistics : dask.array.Array
        ``(image, region, field)`` partial statistics, tree-combined over blocks.
    map_sums : dask.array.Array, optional
        ``(image chunk, y, x, component)`` sums of the valid maps over the images of
        each image chunk (see :func:`mean_map_graph`), from the same block tasks as
        ``statistics``; None when mean maps are off.
    """

    statistics: da.Array
    map_sums: da.Array | None


def statistics_graphs(
    pair: SourcePair,
    regions: RegionPlan,
    spec: KernelSpec,
    chunks: tuple[tuple[int, ...], ...],
    bins: int,
    *,
    nan_policy: str = "fail",
    mean_maps: bool = False,
    skip_rows: Collection[int] = (),
) -> StatisticsGraphs:
    """Lazy ``(image, region, field)`` partial statistics, tree-combined over blocks.

    Non-finite pixels never reach a statistic (:mod:`pipeline.reductions.nonfinite`).
    Each block also adds the squared differences of the pixels it owns (MSE, PSNR:
    :mod:`pipeline.reductions.squared_error`).

    With ``mean_maps`` every block task also returns the sum over its images of
    their valid ``ssim``, ``luminance``, ``contrast`` and ``structure`` maps (and
    of the reference pixels at the window centres), made in the same kernel pass
    as the statistics: the fused kernels add each map row in float64 while it is
    in cache (:meth:`pipeline.reductions.kernel_spec.KernelSpec.whole_statistics`),
    the other paths sum the maps they already computed. No map is stored, no
    block is read or computed twice. The images of rows ``skip_rows`` (pairs known
    to fail before any read) are left out of the sums.
    """
    arrays = list(pair.chunked(chunks))
    if regions.labels is not None:
        mask = regions.labels[..., None]
        if mask.shape[0] == 1:
            # One mask for every image: broadcast views, never copies per image.
            mask = da.broadcast_to(
                mask.rechunk((1, *chunks[1:3], 1)),
                (*arrays[0].shape[:3], 1),
                chunks=(*chunks[:3], (1,)),
            )
        arrays.append(mask.rechunk((*chunks[:3], (1,))))
    n_regions = len(regions.names)
    floats = pair.reference.dtype.kind == "f" or pair.generated.dtype.kind == "f"
    first = arrays[0]
    _, height, width = (int(s) for s in first.shape[:3])
    y_bounds, x_bounds = batch_bounds(first.chunks[1]), batch_bounds(first.chunks[2])
    image_bounds = batch_bounds(first.chunks[0])
    skipped = frozenset(int(i) for i in skip_rows)

    def on_block(*blocks: np.ndarray, location: tuple[int, ...]) -> Any:
        x, y, *rest = blocks
        labels = rest[0] if rest else None
        _, iy, ix = location
        rows = block_centres(y_bounds, iy, spec.depth, height)
        cols = block_centres(x_bounds, ix, spec.depth, width)
        own = own_pixels(y_bounds, x_bounds, iy, ix, spec.depth)
        sums = None
        summed = None
        if mean_maps:
            sums = np.zeros((len(COMPONENTS), rows[1] - rows[0], cols[1] - cols[0]))
            a, b = int(image_bounds[location[0]]), int(image_bounds[location[0] + 1])
            if any(a <= i < b for i in skipped):
                summed = np.asarray([i not in skipped for i in range(a, b)])
        # MSE over every pixel the block owns, from the pixels as read (before screening).
        oy, ox = own.local
        own_labels = None if labels is None else labels[:, oy, ox, 0]
        own_ids = region_ids(regions, own.rows, own.cols, x.shape[0], own_labels)
        packed = ssim_statistics(x, y, labels, rows=rows, cols=cols, sums=sums, summed=summed)
        packed = add_squared_error(
            packed,
            x,
            y,
            own_ids,
            peak_squared=spec.peak_squared,
            window=own.local,
            skip_unusable=floats and nan_policy == "mask",
            limit=FLOAT64_PIXEL_LIMIT if x.dtype == np.float64 or y.dtype == np.float64 else None,
        )[:, None, None]
        if sums is None:
            return packed
        add_reference(sums, x if summed is None else x[summed], spec.depth)
        return packed, sums

    def ssim_statistics(
        x: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray | None,
        *,
        rows: tuple[int, int],
        cols: tuple[int, int],
        sums: np.ndarray | None,
        summed: np.ndarray | None,
    ) -> np.ndarray:
        keep = None
        if floats:
            x, y, keep = screen_block(x, y, spec.depth, mask=nan_policy == "mask")
        if n_regions == 1 and keep is None:
            # Region "all" only: the fused kernel reduces each map row in cache (and
            # adds it to the map sums).
            whole = spec.whole_statistics(x, y, bins, sums, summed)
            if whole is not None:
                return whole
        # With the fused kernel's deficits: SUM and M2 as the packed path makes them.
        maps = spec.maps(x, y, deficit=True)
        n = x.shape[0]
        if maps["ssim"].size == 0:
            return empty_statistics(n, n_regions, bins)
        if sums is not None:
            add_maps(sums, maps if summed is None else {k: v[summed] for k, v in maps.items()})
        label_block = None
        if labels is not None:
            # Valid-map pixel (i, j) is the window centred on block pixel (i + depth, j + depth).
            d = spec.depth
            h, w = maps["ssim"].shape[1:]
            label_block = labels[:, d : d + h, d : d + w, 0]
        ids = region_ids(regions, rows, cols, n, label_block)
        if keep is not None:
            return masked_block_statistics(maps, ids, keep, n_regions, bins)
        return block_statistics(maps, ids, n_regions, bins)

    for axis in (1, 2):
        if min(first.chunks[axis]) < spec.depth:
            raise ValueError(
                f"chunks along axis {axis} must be at least the overlap depth {spec.depth} "
                f"(got {first.chunks[axis]}); plan them with merge_small_chunks"
            )
    tail = (n_regions, len(FIELDS) + bins)
    block_chunks = (
        first.chunks[0],
        (1,) * len(first.chunks[1]),
        (1,) * len(first.chunks[2]),
        *((size,) for size in tail),
    )
    blocks = map_overlapping(
        on_block,
        arrays,
        depth=spec.depth,
        axes=(1, 2),
        chunks=block_chunks,
        meta=np.empty((0,) * 5, dtype=np.float64),
        name="valid-blocks" if not mean_maps else "valid-blocks-maps",
    )
    if not mean_maps:
        return StatisticsGraphs(merge_block_statistics(blocks, axis=(1, 2)), None)
    # Each block task returned (statistics, map sums): two views of the same tasks,
    # computed once when both are asked for in one dask.compute.
    per_block = da.map_blocks(
        _first, blocks, chunks=blocks.chunks, dtype=np.float64, meta=blocks._meta
    )
    map_sums = da.map_blocks(
        _second,
        blocks,
        chunks=((1,) * len(first.chunks[0]), *_valid_chunks(first, spec.depth), (1,), (5,)),
        dtype=np.float64,
        meta=np.empty((0,) * 5, dtype=np.float64),
    )[:, :, :, 0, :]
    return StatisticsGraphs(merge_block_statistics(per_block, axis=(1, 2)), map_sums)


def _first(block: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return block[0]


def _second(block: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    # (component, y, x) sums as a (1, y, x, 1, component) view: no copy is made.
    return np.moveaxis(block[1], 0, -1)[None, :, :, None, :]


def _valid_chunks(x: da.Array, depth: int) -> list[tuple[int, ...]]:
    """Chunks of the valid map along ``y`` and ``x``: the centres each input chunk owns."""
    out = []
    for axis in (1, 2):
        length = int(x.shape[axis])
        bounds = batch_bounds(x.chunks[axis])
        centres = [block_centres(bounds, i, depth, length) for i in range(len(x.chunks[axis]))]
        out.append(tuple(stop - start for start, stop in centres))
    return out


def with_statistics_check(
    pair: SourcePair,
    statistics: da.Array,
    ms: da.Array | None,
    chunks: tuple[tuple[int, ...], ...],
) -> SourcePair:
    """``pair`` whose ``read_status`` also fails pairs whose statistics are not a score.

    A pair is ``ok`` only with a finite score
    (:func:`pipeline.reductions.statistics.unscored_reasons`): NaN or Inf sums
    (arithmetic that overflowed) or no window at all fail it with the reason. The
    check reads the merged statistics of the same graph, so the engine computes them
    once for both.
    """
    prior = pair.read_status
    if prior is None:
        prior = da.full(pair.n_images, STATUS_OK, dtype=object, chunks=(chunks[0],))

    extra: list[Any] = [] if ms is None else [ms, "i"]
    status = da.blockwise(
        _describe,
        "i",
        prior,
        "i",
        statistics,
        "ijk",
        *extra,
        dtype=object,
        concatenate=True,
        meta=np.empty((0,), dtype=object),
    )
    return replace(pair, read_status=status)


def _describe(status: np.ndarray, packed: np.ndarray, *ms_values: np.ndarray) -> np.ndarray:
    """``status`` with each ``ok`` pair whose statistics are not a score given the reason.

    A module-level function: Dask hashes it by name (a closure it would pickle).
    """
    out = np.asarray(status, dtype=object).copy()
    reasons = unscored_reasons(packed, ms_values[0] if ms_values else None)
    for i, reason in enumerate(reasons):
        if out[i] == STATUS_OK and reason is not None:
            out[i] = reason
    return out


def widen_regions(
    statistics: da.Array, have: tuple[str, ...], names: tuple[str, ...], bins: int
) -> da.Array:
    """Packed ``(image, region, field)`` statistics of regions ``have`` placed on ``names``.

    A region the images do not have gets ``count`` 0 and NaN statistics.
    """
    if tuple(have) == tuple(names):
        return statistics
    index = [names.index(name) for name in have]

    def place(block: np.ndarray) -> np.ndarray:
        out = empty_statistics(block.shape[0], len(names), bins)
        out[:, index] = block
        return out

    return da.map_blocks(
        place,
        statistics,
        chunks=(statistics.chunks[0], (len(names),), statistics.chunks[2]),
        dtype=np.float64,
        meta=np.empty((0, 0, 0), dtype=np.float64),
    )


def mean_map_graph(
    pair: SourcePair,
    spec: KernelSpec,
    chunks: tuple[tuple[int, ...], ...],
    rows: np.ndarray | None = None,
) -> da.Array:
    """Lazy ``(image chunk, y, x, component)`` sums of one size group's valid maps.

    Entry ``k`` is the sum over the images of chunk ``k`` along ``image`` (of the
    images ``rows`` only, when given: the group's rows to add, e.g. its ``ok``
    pairs). Each output block is the part of the valid maps centred in the
    matching input chunk, computed from that chunk overlapped by the window's
    half-width (the chunks' own valid pixels, as
    :func:`pipeline.tiling.chunks.valid_map_array`), so a chunked image's map is
    its whole-image map. Components are
    :data:`pipeline.reductions.mean_maps.COMPONENTS`: the kernels' ``ssim``,
    ``luminance``, ``contrast`` and ``structure`` maps (channel mean) and the
    reference pixels at the window centres. No per-pair map outlives its task.
    """
    x, y = pair.chunked(chunks)
    if rows is not None:
        x, y = x[rows], y[rows]
    valid = _valid_chunks(x, spec.depth)

    def summed(xb: np.ndarray, yb: np.ndarray, location: tuple[int, ...]) -> np.ndarray:
        return block_sums(spec.maps(xb, yb), xb, spec.depth)

    return map_overlapping(
        summed,
        [x, y],
        depth=spec.depth,
        axes=(1, 2),
        chunks=((1,) * len(x.chunks[0]), *valid, (len(COMPONENTS),)),
        meta=np.empty((0, 0, 0, 0), dtype=np.float64),
        name="mean-map-sums",
    )
