"""Chunk planning and the overlapping-block graph whose blocks give 'valid' SSIM maps.

Arrays arrive as ``(image, y, x, channel)``. The spatial axes get an overlap
of ``depth = win_size // 2`` (the window radius) with ``boundary="none"``: a
block then carries exactly the pixels its windows need, so its 'valid' map is
the piece of the whole image's valid map centred in the block (kernels/reference.py).

The overlapped blocks are assembled in the task that uses them
(:func:`pipeline.tiling.halo.map_overlapping`: the same blocks as Dask's
``map_overlap(boundary="none")``, in two tasks per block instead of about ten,
with less memory held; figures in that module).
Chunks smaller than the depth cannot lend a full overlap to their
neighbours; Dask's ``map_overlap(allow_rechunk=True)`` would rechunk them behind
our back, so :func:`merge_small_chunks` merges them here, explicitly and
deterministically, and smaller chunks are refused.
Small images are batched several per chunk along ``image`` so that 100,000
images are not 100,000 tasks; large images are tiled in multiples of the
source's own chunks (one Zarr chunk or shard is never split across reads).
Commit batches are planned by task count and capped by the bytes of the packed
statistics they hold (:data:`BATCH_STATISTICS_BYTES`), so a batch's memory is
bounded whatever the number of pairs and of regions and bins per pair.

Each block is handed to a callback together with the image coordinates of the
window centres its valid map covers (and, when asked, of the pixels it owns:
its chunk without the halo, for statistics of the pixels themselves such as
MSE); the callback returns small partial statistics, so whole maps are never
held (see reductions.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.task_spec import Task, TaskRef

from pipeline.kernels.statistics import FIELDS, merge_statistics
from pipeline.tiling.halo import map_overlapping
from pipeline.tiling.trees import reduction_tree

__all__ = [
    "BATCH_STATISTICS_BYTES",
    "MERGE_EVERY",
    "TASKS_PER_BATCH",
    "TASK_MULTIPLE",
    "OwnPixels",
    "batch_bounds",
    "block_centres",
    "map_valid_blocks",
    "map_valid_blocks_nd",
    "merge_block_statistics",
    "merge_small_chunks",
    "overlap_depth",
    "own_pixels",
    "plan_chunks",
    "statistics_bytes_per_image",
    "valid_map_array",
]

Chunks = tuple[tuple[int, ...], ...]

# Tasks per commit batch: enough to keep every worker of a machine busy between two
# commits, few enough to commit often.
TASKS_PER_BATCH = 32

# The most a planned batch's packed partial statistics may weigh. A batch holds them,
# the per-block partials they merge from and its finalized results (each about as
# large) at once, and they grow with regions x (fields + histogram bins): batched by
# task count alone, 131,072 images of 32x32 with 4x4 regions held ~2 GB per batch.
# 64 MiB keeps a batch a few hundred MB at most and still thousands of small images.
BATCH_STATISTICS_BYTES = 64 * 2**20

# Small images per task: a batch's task count is rounded up to a multiple of this
# (where every task still gets a source chunk), its images spread evenly, so that 1, 2
# or 4 workers finish a batch together instead of one running its last task alone.
# A constant, not the worker count: the plan, and with it the order of every float64
# sum (the mean maps' included), is the same on every scheduler and machine.
TASK_MULTIPLE = 4
# A batch capped by BATCH_STATISTICS_BYTES keeps whole source chunks per task as long
# as it still has this many tasks (a few per worker of a small machine); below that,
# tasks split source chunks (each read decodes its chunk) so that every worker has one.
_MIN_ALIGNED_TASKS = 8


def overlap_depth(win_size: int) -> int:
    """Pixels each block borrows from each neighbour: the window radius."""
    return win_size // 2


def merge_small_chunks(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Merge neighbouring chunks until every chunk has at least ``minimum`` pixels.

    Left to right, a chunk below ``minimum`` absorbs its right neighbours; a
    short last chunk joins the one before it. The axis length is unchanged.
    """
    if minimum <= 1 or all(c >= minimum for c in chunks):
        return tuple(chunks)
    merged: list[int] = []
    for size in chunks:
        if merged and merged[-1] < minimum:
            merged[-1] += size
        else:
            merged.append(size)
    if len(merged) > 1 and merged[-1] < minimum:
        last = merged.pop()
        merged[-1] += last
    return tuple(merged)


def _split(length: int, size: int) -> tuple[int, ...]:
    size = max(1, min(size, length))
    full, rest = divmod(length, size)
    return (size,) * full + ((rest,) if rest else ())


def statistics_bytes_per_image(n_regions: int, bins: int) -> int:
    """Bytes of one image's packed partial statistics: ``n_regions`` x (fields + ``bins``) floats.

    Examples
    --------
    >>> statistics_bytes_per_image(17, 100)  # 4x4 regions and "all", 11 fields + 100 bins
    15096
    """
    return n_regions * (len(FIELDS) + bins) * np.dtype(np.float64).itemsize


def plan_chunks(
    shape: tuple[int, int, int, int],
    *,
    depth: int,
    native: tuple[int, int, int],
    chunk_pixels: int,
    requested: str | tuple[int, int, int] = "auto",
    input_chunks: Chunks | None = None,
    batch_images: int | None = None,
    statistics_bytes: int | None = None,
    mean_maps: bool = False,
) -> tuple[Chunks, tuple[tuple[int, int], ...]]:
    """Chunks for a ``(image, y, x, channel)`` array and the commit batches along ``image``.

    Parameters
    ----------
    shape : tuple
        ``(images, H, W, channels)``.
    depth : int
        Overlap depth; every spatial chunk ends up at least this long.
    native : tuple
        The source's read chunks ``(images, y, x)``.
    chunk_pixels : int
        Target pixels (times channels) read by one task.
    requested : str or tuple
        ``"auto"``, ``"input"`` (keep ``input_chunks``) or ``(images, y, x)``.
    batch_images : int, optional
        Images per commit batch; image chunks never straddle a batch. Given, it is
        used as it is; else a batch has about :data:`TASKS_PER_BATCH` tasks.
    statistics_bytes : int, optional
        Bytes of one image's packed statistics (:func:`statistics_bytes_per_image`).
        Given, a planned batch holds at most :data:`BATCH_STATISTICS_BYTES` of them:
        fewer images per batch, and with ``requested="auto"`` fewer per task, so that
        a smaller batch still has tasks for every worker. Requested image chunks are
        kept whole (a batch holds at least one).
    mean_maps : bool
        The run accumulates mean maps. Each task then sums its images' maps into its
        own float64 ``(component, y, x)`` array (40 bytes per map pixel, allocated,
        filled, returned and added up in a tree, whatever the task's images), so with
        ``requested="auto"`` a task of images that fit it (pixels times channels, as
        without) holds ``chunk_pixels`` map pixels (``H x W``) of them, not times the
        channels: 16 RGB 512x512 pairs a task, as for grey ones, instead of 4
        (``evaluate`` of 64 such pairs in memory, two threads: 0.25 against 0.30 s;
        without the mean maps 0.21 against 0.22).

    With ``requested="auto"`` a batch's images are split evenly, in whole source
    chunks, into a multiple of :data:`TASK_MULTIPLE` tasks where each still gets a
    source chunk: 64 images of at most 5 a task are 16 tasks of
    4, not 13 whose last runs alone on a two-core machine.

    Returns
    -------
    chunks, batches
        Dask chunks for the array, and ``(start, stop)`` image ranges, in order,
        covering every image once.
    """
    n, height, width, channels = shape
    if requested == "input" and input_chunks is not None:
        image_size = max(input_chunks[0])
        y_chunks, x_chunks = tuple(input_chunks[1]), tuple(input_chunks[2])
    elif isinstance(requested, tuple):
        image_size = requested[0]
        y_chunks, x_chunks = _split(height, requested[1]), _split(width, requested[2])
    else:
        image_size, tile_y, tile_x = _auto_tiles(shape, native, chunk_pixels, per_channel=mean_maps)
        y_chunks, x_chunks = _split(height, tile_y), _split(width, tile_x)
    y_chunks = merge_small_chunks(y_chunks, depth)
    x_chunks = merge_small_chunks(x_chunks, depth)
    tasks_per_image_chunk = len(y_chunks) * len(x_chunks)
    if batch_images is None:
        image_chunks_per_batch = max(1, math.ceil(TASKS_PER_BATCH / tasks_per_image_chunk))
        batch_images = image_size * image_chunks_per_batch
        most = max(1, BATCH_STATISTICS_BYTES // statistics_bytes) if statistics_bytes else n
        if min(batch_images, n) > most:
            if requested == "auto":
                image_size = _capped_image_chunk(
                    image_size,
                    most,
                    chunks_wanted=image_chunks_per_batch,
                    tasks_per_image_chunk=tasks_per_image_chunk,
                    native=max(1, native[0]),
                )
            batch_images = image_size * max(1, most // image_size)
    batch_images = max(1, min(batch_images, n))
    image_size = min(image_size, batch_images)
    batches = tuple((start, min(start + batch_images, n)) for start in range(0, n, batch_images))
    if requested == "auto":
        unit = max(1, min(native[0], image_size))
        image_chunks = tuple(
            size
            for start, stop in batches
            for size in _balanced(stop - start, image_size, unit, TASK_MULTIPLE)
        )
    else:
        image_chunks = tuple(
            size for start, stop in batches for size in _split(stop - start, image_size)
        )
    return (image_chunks, y_chunks, x_chunks, (channels,)), batches


def _balanced(length: int, size: int, unit: int, multiple: int) -> tuple[int, ...]:
    """``length`` images in tasks of at most ``size``, whole ``unit``s, sizes evened out.

    The task count is rounded up to a multiple of ``multiple`` when that leaves
    each task at least one unit (else it is kept), and the units are spread so that
    task sizes differ by at most one unit.

    Examples
    --------
    >>> _balanced(64, 5, 1, 4)
    (4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4)
    >>> _balanced(10, 5, 1, 4)
    (3, 3, 2, 2)
    >>> _balanced(3, 5, 1, 4)
    (3,)
    >>> _balanced(30, 12, 4, 4)
    (8, 8, 8, 6)
    """
    units = math.ceil(length / unit)
    per_task = max(1, size // unit)
    tasks = math.ceil(units / per_task)
    rounded = math.ceil(tasks / multiple) * multiple
    if rounded <= units:
        tasks = rounded
    base, extra = divmod(units, tasks)
    counts = [base + 1] * extra + [base] * (tasks - extra)
    sizes = [count * unit for count in counts]
    sizes[-1] -= units * unit - length  # the last unit may be short
    return tuple(sizes)


def _capped_image_chunk(
    image_size: int,
    most: int,
    *,
    chunks_wanted: int,
    tasks_per_image_chunk: int,
    native: int,
) -> int:
    """Images per task when a batch may hold at most ``most`` images.

    As many as give a full batch ``chunks_wanted`` tasks, in whole source chunks of
    ``native`` images where that leaves enough tasks, else whole source chunks as
    long as the batch keeps ``_MIN_ALIGNED_TASKS`` tasks, else split source chunks.
    """
    target = max(1, most // chunks_wanted)
    if native <= target:
        return min(image_size, (target // native) * native)
    if (most // native) * tasks_per_image_chunk >= _MIN_ALIGNED_TASKS:
        return min(image_size, native)
    return min(image_size, target)


def _auto_tiles(
    shape: tuple[int, int, int, int],
    native: tuple[int, int, int],
    chunk_pixels: int,
    *,
    per_channel: bool = False,
) -> tuple[int, int, int]:
    n, height, width, channels = shape
    per_image = height * width * channels

    def aligned(target: int, unit: int, length: int) -> int:
        # Whole multiples of the source chunk: no source chunk is decoded by two tasks.
        unit = max(1, min(unit, length))
        return min(length, max(unit, (target // unit) * unit))

    if per_image <= chunk_pixels:
        # Images that fit a task share it, counted in pixels times channels, or with
        # ``per_channel`` in map pixels (the mean maps' sums: see plan_chunks).
        per_task = height * width if per_channel else per_image
        return aligned(chunk_pixels // per_task, native[0], n), height, width
    # Large images: as many per task as one source chunk holds (usually one), tiled
    # spatially so that a task still reads about chunk_pixels.
    images = max(1, min(native[0], n))
    side = max(1, int(math.sqrt(chunk_pixels / (channels * images))))
    return images, aligned(side, native[1], height), aligned(side, native[2], width)


def batch_bounds(chunks: tuple[int, ...]) -> np.ndarray:
    """Start offsets of the chunks along one axis, plus the end."""
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def block_centres(bounds: np.ndarray, index: int, depth: int, length: int) -> tuple[int, int]:
    """Image coordinates ``[start, stop)`` of the window centres of block ``index``'s valid map.

    The block owns pixels ``[a, b)``; its valid map covers centres in
    ``[max(a, depth), min(b, length - depth))`` (empty when the block lies in
    the border band). Needs every chunk to be at least ``depth`` long.
    """
    a, b = int(bounds[index]), int(bounds[index + 1])
    start, stop = max(a, depth), min(b, length - depth)
    return start, max(start, stop)


class OwnPixels(NamedTuple):
    """The pixels a block owns: its chunk, without the halo lent by its neighbours.

    ``rows``/``cols`` are image coordinates ``[start, stop)``; ``local`` the same
    pixels as slices ``(y, x)`` of the overlapped block.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    local: tuple[slice, slice]


def own_pixels(
    y_bounds: np.ndarray, x_bounds: np.ndarray, iy: int, ix: int, depth: int
) -> OwnPixels:
    """:class:`OwnPixels` of block ``(iy, ix)``: ``depth`` of halo precede it unless it is first."""
    rows, row_slice = _own_axis(y_bounds, iy, depth)
    cols, col_slice = _own_axis(x_bounds, ix, depth)
    return OwnPixels(rows, cols, (row_slice, col_slice))


def _own_axis(bounds: np.ndarray, index: int, depth: int) -> tuple[tuple[int, int], slice]:
    """Chunk ``index`` of one axis: its ``[start, stop)`` and its slice of the overlapped block."""
    a, b = int(bounds[index]), int(bounds[index + 1])
    before = min(a, depth)  # the halo lent by the previous chunk, absent for the first
    return (a, b), slice(before, before + b - a)


def map_valid_blocks(
    block_fn: Callable[..., np.ndarray],
    arrays: list[da.Array],
    *,
    depth: int,
    out_tail: tuple[int, ...],
    own: bool = False,
) -> da.Array:
    """Apply ``block_fn`` to overlapping blocks; one small result per block.

    Parameters
    ----------
    block_fn : callable
        ``block_fn(*blocks, rows=(start, stop), cols=(start, stop))`` with each block
        overlapped by ``depth`` on the spatial axes, ``rows``/``cols`` the image
        coordinates of the centres of its valid map. Returns an array shaped
        ``(images_in_block, *out_tail)``.
    arrays : list of dask.array.Array
        ``(image, y, x, last)`` arrays of equal shape and chunks (the last axis a
        single chunk); spatial chunks at least ``depth`` long.
    depth : int
        Overlap on the ``y`` and ``x`` axes.
    out_tail : tuple of int
        Trailing shape of each block's result.
    own : bool
        Also pass ``own=`` the :class:`OwnPixels` of the block (each image pixel is
        owned by exactly one block).

    Returns
    -------
    dask.array.Array
        Shaped ``(image, blocks_y, blocks_x, *out_tail)``, one entry per block.
    """
    first = arrays[0]
    for array in arrays[1:]:
        if array.chunks[:3] != first.chunks[:3]:
            raise ValueError(
                f"arrays must share their chunks (got {first.chunks[:3]} and {array.chunks[:3]})"
            )
    for axis in (1, 2):
        if min(first.chunks[axis]) < depth:
            raise ValueError(
                f"chunks along axis {axis} must be at least the overlap depth {depth} "
                f"(got {first.chunks[axis]}); plan them with merge_small_chunks"
            )
    _, height, width = (int(s) for s in first.shape[:3])
    y_bounds, x_bounds = batch_bounds(first.chunks[1]), batch_bounds(first.chunks[2])

    def on_block(*blocks: Any, location: tuple[int, ...]) -> np.ndarray:
        _, iy, ix = location
        rows = block_centres(y_bounds, iy, depth, height)
        cols = block_centres(x_bounds, ix, depth, width)
        if own:
            owned = own_pixels(y_bounds, x_bounds, iy, ix, depth)
            result = block_fn(*blocks, rows=rows, cols=cols, own=owned)
        else:
            result = block_fn(*blocks, rows=rows, cols=cols)
        return result[:, None, None]

    out_chunks = (
        first.chunks[0],
        (1,) * len(first.chunks[1]),
        (1,) * len(first.chunks[2]),
        *((size,) for size in out_tail),
    )
    return map_overlapping(
        on_block,
        arrays,
        depth=depth,
        axes=(1, 2),
        chunks=out_chunks,
        meta=np.empty((0,) * (3 + len(out_tail)), dtype=np.float64),
        name="valid-blocks",
    )


def valid_map_array(
    map_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: da.Array,
    y: da.Array,
    *,
    depth: int,
    n_maps: int,
) -> da.Array:
    """Valid maps ``(image, H - 2 depth, W - 2 depth, map)`` as a Dask array, for saving maps.

    ``map_fn(x_block, y_block)`` returns the ``n_maps`` valid maps of two overlapped
    ``(images, h, w, channels)`` blocks stacked last; each output chunk is the part
    of the valid maps centred in the matching input chunk (empty in the border band).
    """
    _, height, width = (int(s) for s in x.shape[:3])
    valid_chunks = []
    for axis, length in ((1, height), (2, width)):
        bounds = batch_bounds(x.chunks[axis])
        sizes = []
        for i in range(len(x.chunks[axis])):
            start, stop = block_centres(bounds, i, depth, length)
            sizes.append(stop - start)
        valid_chunks.append(tuple(sizes))
    return map_overlapping(
        lambda xb, yb, location: map_fn(xb, yb),
        [x, y],
        depth=depth,
        axes=(1, 2),
        chunks=(x.chunks[0], *valid_chunks, (n_maps,)),
        meta=np.empty((0, 0, 0, 0), dtype=np.float64),
        name="valid-maps",
    )


def map_valid_blocks_nd(
    block_fn: Callable[..., np.ndarray],
    arrays: list[da.Array],
    *,
    depth: int,
    axes: tuple[int, ...],
    out_tail: tuple[int, ...],
    own: bool = False,
) -> da.Array:
    """:func:`map_valid_blocks` for any number of spatial axes (volumes, MS-SSIM scales).

    Parameters
    ----------
    block_fn : callable
        ``block_fn(*blocks, centres=((start, stop), ...))`` with each block
        overlapped by ``depth`` along ``axes`` (``boundary="none"``) and
        ``centres`` the image coordinates of the window centres of its valid map,
        one range per axis in ``axes``. Returns ``(images_in_block, *out_tail)``.
    arrays : list of dask.array.Array
        ``(image, *spatial, last)`` arrays with equal chunks on every axis but the
        last, which is a single chunk; chunks along ``axes`` at least ``depth`` long.
    depth : int
        Overlap along each of ``axes``.
    axes : tuple of int
        The spatial axes, ``1 .. ndim - 2``.
    out_tail : tuple of int
        Trailing shape of each block's result (at least one axis).
    own : bool
        Also pass ``own=`` the pixels the block owns, per axis in ``axes``: a tuple of
        ``((start, stop), slice)``, image coordinates and the slice of the block.

    Returns
    -------
    dask.array.Array
        Shaped ``(image, *blocks_per_axis, *out_tail)``, one entry per block.
    """
    first = arrays[0]
    ndim = first.ndim
    if tuple(axes) != tuple(range(1, ndim - 1)) or not out_tail:
        raise ValueError(
            f"axes must be the spatial axes {tuple(range(1, ndim - 1))} and out_tail "
            f"non-empty (got axes={axes}, out_tail={out_tail})"
        )
    for array in arrays[1:]:
        if array.chunks[:-1] != first.chunks[:-1]:
            raise ValueError(
                f"arrays must share their chunks (got {first.chunks[:-1]} and {array.chunks[:-1]})"
            )
    for axis in axes:
        if min(first.chunks[axis]) < depth:
            raise ValueError(
                f"chunks along axis {axis} must be at least the overlap depth {depth} "
                f"(got {first.chunks[axis]}); plan them with merge_small_chunks"
            )
    lengths = {axis: int(first.shape[axis]) for axis in axes}
    bounds = {axis: batch_bounds(first.chunks[axis]) for axis in axes}

    def on_block(*blocks: Any, location: tuple[int, ...]) -> np.ndarray:
        centres = tuple(
            block_centres(bounds[axis], location[axis], depth, lengths[axis]) for axis in axes
        )
        if own:
            owned = tuple(_own_axis(bounds[axis], location[axis], depth) for axis in axes)
            result = block_fn(*blocks, centres=centres, own=owned)
        else:
            result = block_fn(*blocks, centres=centres)
        return result.reshape(result.shape[:1] + (1,) * len(axes) + result.shape[1:])

    out_chunks = (
        first.chunks[0],
        *((1,) * len(first.chunks[axis]) for axis in axes),
        *((size,) for size in out_tail),
    )
    return map_overlapping(
        on_block,
        arrays,
        depth=depth,
        axes=tuple(axes),
        chunks=out_chunks,
        meta=np.empty((0,) * (ndim + len(out_tail) - 1), dtype=np.float64),
        name="valid-blocks-nd",
    )


def merge_block_statistics(per_block: da.Array, axis: tuple[int, ...]) -> da.Array:
    """Packed per-block statistics merged over the block ``axis`` in a tree, 8 at a time.

    Each block already holds its partial statistics (:mod:`pipeline.reductions.statistics`),
    which merge exactly in any order. The blocks are merged in runs of
    :data:`MERGE_EVERY` consecutive blocks in row-major order, the runs' partials in
    runs again, down to one per image chunk (:func:`pipeline.tiling.trees.reduction_tree`):
    one task per run, straight on the block tasks' results (``dask.array.reduction``
    adds a task per block before its tree: a 10 x 10 grid of tiles merges in 16 tasks
    here, in 138 there).

    Parameters
    ----------
    per_block : dask.array.Array
        ``(image, *blocks, *tail)`` packed statistics, one block per chunk along the
        block axes; the trailing axes in one chunk each.
    axis : tuple of int
        The block axes, ``1 .. len(axis)``.

    Returns
    -------
    dask.array.Array
        ``(image, *tail)``, chunked like ``per_block`` along ``image``.
    """
    axes = tuple(axis)
    if axes != tuple(range(1, len(axes) + 1)):
        raise ValueError(f"axis must be the block axes 1 .. n (got {axis})")
    tail_chunks = per_block.chunks[1 + len(axes) :]
    if any(len(c) != 1 for c in tail_chunks):
        raise ValueError(f"the trailing axes must be one chunk each (got {tail_chunks})")
    grid = [range(per_block.numblocks[a]) for a in axes]
    zeros = (0,) * len(tail_chunks)
    name = "merge-blocks-" + tokenize(per_block.name, axes, MERGE_EVERY)
    graph: dict[Any, Task] = {}
    for image_chunk in range(per_block.numblocks[0]):
        blocks = [
            TaskRef((per_block.name, image_chunk, *(int(b) for b in block), *zeros))
            for block in itertools.product(*grid)
        ]
        reduction_tree(
            graph,
            blocks,
            _merge_run,
            fan_in=MERGE_EVERY,
            prefix=name,
            index=(image_chunk,),
            args=(len(tail_chunks),),
            root=(name, image_chunk, *zeros),
        )
    depends: list[Any] = [per_block]
    layer = HighLevelGraph.from_collections(name, graph, dependencies=depends)
    return da.Array(
        layer,
        name,
        chunks=(per_block.chunks[0], *tail_chunks),
        meta=np.empty((0,) * (1 + len(tail_chunks)), dtype=np.float64),
    )


# Partial statistics merged by one task of merge_block_statistics.
MERGE_EVERY = 8


def _merge_run(tail_axes: int, *parts: np.ndarray) -> np.ndarray:
    """``(images, *tail)`` merge of ``parts``: blocks (one-long block axes) or merges.

    Each part is ``(images, ..., *tail)``, ``tail_axes`` trailing axes: a block's
    one-long block axes between are dropped (a reshape, no copy).
    """
    stacked = np.stack(
        [part.reshape(part.shape[:1] + part.shape[part.ndim - tail_axes :]) for part in parts],
        axis=1,
    )
    return np.asarray(merge_statistics(stacked, axis=1))
