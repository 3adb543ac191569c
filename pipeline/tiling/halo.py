"""Overlapping blocks assembled in the task that consumes them.

``dask.array.overlap(boundary="none")`` gives every block its neighbours' edges
through one slicing task per neighbour (eight in 2-D) and a task that
concatenates them, before the task that uses the block: about twenty tasks per
tile of a pair, which the scheduler optimises, orders and runs one by one while
holding the GIL (a 20000 x 20000 pair in 2000 x 2000 tiles: 2,507 tasks after
optimisation, 1,039 with this module).

:func:`map_overlapping` builds the same blocks with two tasks per block and
input instead: one copies out the edges each neighbour needs (contiguous
copies, ``depth`` wide, so a distributed worker ships kilobytes, not the
tile, and the tile itself is not kept alive by its neighbours), and the
consuming task copies its own block and those edges into one array and calls
the block function on it (where the block's read kept room around it, the
edges are written there instead and the block is not copied:
:mod:`pipeline.inputs.padded`). The block a function sees is exactly the one of
``dask.array.overlap`` with ``boundary="none"``: the chunk extended by
``depth`` along each overlapped axis, clipped at the array's edges.

Measured against ``dask.array.map_overlap(boundary="none", trim=False)`` as the
overlapped-block step of :mod:`pipeline.tiling.chunks` (same blocks, same SSIM to
the last digit): ``pipeline.evaluate`` of a 20000 x 20000 uint8 Zarr pair in
1000 x 1000 chunks (the streaming benchmark, ``benchmarks/bench_memory.py``),
one run per process, the two alternated, on 2 shared cores (load 5 to 7):

* map_overlap: 22.1, 20.3, 16.8 s; peak RSS 692, 761, 682 MB;
* halo: 15.5, 22.9, 15.8, 23.4 s; peak RSS 498, 542, 512, 540 MB.

Wall time is a tie within the noise of the shared machine; the peak memory is
about 190 MB (a third) lower here, so this module stays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

# Task objects are dask's documented task specification (the module dask.task_spec,
# public since 2025.1, the oldest dask this package allows); tuple tasks are deprecated.
from dask.task_spec import Task, TaskRef

from pipeline.inputs.padded import room_around

__all__ = ["map_overlapping"]

Offset = tuple[int, ...]


def _edge_index(ndim: int, axes: tuple[int, ...], offset: Offset, depth: int) -> tuple[slice, ...]:
    """What a block at ``offset`` from its consumer lends it: ``depth`` facing elements per axis."""
    index = [slice(None)] * ndim
    for axis, step in zip(axes, offset, strict=True):
        if step < 0:
            index[axis] = slice(-depth, None)  # the block lies before its consumer
        elif step > 0:
            index[axis] = slice(0, depth)
    return tuple(index)


def _lend_edges(block: Any, axes: tuple[int, ...], depth: int, offsets: tuple[Offset, ...]) -> dict:
    """The edges of ``block`` its neighbours need, keyed by the block's offset from each."""
    return {
        offset: block[_edge_index(block.ndim, axes, offset, depth)].copy() for offset in offsets
    }


def _assemble(
    block: Any,
    axes: tuple[int, ...],
    depth: int,
    before: tuple[bool, ...],
    after: tuple[bool, ...],
    offsets: tuple[Offset, ...],
    edges: tuple[dict, ...],
) -> Any:
    """``block`` extended by ``depth`` where it has neighbours, from their lent edges."""
    if not offsets:
        return block
    shape = list(block.shape)
    start = [0] * block.ndim
    for k, axis in enumerate(axes):
        shape[axis] += depth * (before[k] + after[k])
        start[axis] = depth * before[k]
    interior = tuple(slice(s, s + n) for s, n in zip(start, block.shape, strict=True))
    out = _room_around(block, tuple(shape), interior)
    if out is None:
        out = np.empty_like(block, shape=tuple(shape), order="C")
        out[interior] = block
    for offset, lent in zip(offsets, edges, strict=True):
        index = [slice(None)] * block.ndim
        for axis, step in zip(axes, offset, strict=True):
            if step < 0:
                index[axis] = slice(0, depth)
            elif step > 0:
                index[axis] = slice(shape[axis] - depth, shape[axis])
            else:
                index[axis] = slice(start[axis], start[axis] + block.shape[axis])
        out[tuple(index)] = lent[offset]
    return out


def _room_around(block: Any, shape: tuple[int, ...], interior: tuple[slice, ...]) -> Any:
    """The C-ordered ``shape`` array whose ``interior`` is ``block``, where its read made one.

    A read that kept room around its block (:meth:`pipeline.inputs.padded.BufferPool.padded_empty`)
    lets the halo be written around the block where it lies; anything else (another
    source, a block the room does not fit exactly) is None, and the block is copied.
    """
    owner = room_around(block)
    if owner is None or owner.size != math.prod(shape) or not owner.flags.c_contiguous:
        return None
    out = owner.reshape(shape)
    inside = out[interior]
    # Strides of axes of one element never move a pointer: a new axis has stride 0.
    if (
        inside.shape != block.shape
        or any(
            a != b
            for a, b, n in zip(inside.strides, block.strides, block.shape, strict=True)
            if n > 1
        )
        or inside.__array_interface__["data"][0] != block.__array_interface__["data"][0]
    ):
        return None
    return out


def _run_block(
    block_fn: Callable[..., Any],
    location: tuple[int, ...],
    layout: tuple[Any, ...],
    n_arrays: int,
    *parts: Any,
) -> Any:
    """Assemble every input's overlapped block from ``parts`` and call ``block_fn``."""
    axes, depth, before, after, offsets = layout
    per_array = len(parts) // n_arrays
    blocks = [
        _assemble(
            parts[i * per_array],
            axes,
            depth,
            before,
            after,
            offsets,
            parts[i * per_array + 1 : (i + 1) * per_array],
        )
        for i in range(n_arrays)
    ]
    return block_fn(*blocks, location=location)


def map_overlapping(
    block_fn: Callable[..., Any],
    arrays: list[da.Array],
    *,
    depth: int,
    axes: tuple[int, ...],
    chunks: tuple[tuple[int, ...], ...],
    meta: Any,
    name: str = "overlapping",
) -> da.Array:
    """Call ``block_fn`` on every block overlapped by ``depth`` along ``axes``.

    Parameters
    ----------
    block_fn : callable
        ``block_fn(*blocks, location=index)``: one overlapped block per input
        (``boundary="none"``) and the index of the block along every axis but the
        last; returns the output block.
    arrays : list of dask.array.Array
        Inputs of equal chunks; the last axis a single chunk; chunks along
        ``axes`` at least ``depth`` long (a neighbour lends ``depth`` elements).
    depth : int
        Overlap along each of ``axes``.
    axes : tuple of int
        The overlapped axes (never the last).
    chunks : tuple of tuple of int
        Chunks of the output: as many blocks as the inputs along every axis but
        the inputs' last, then single-chunk trailing axes.
    meta : array
        An empty array of the output's type and dimensionality.
    name : str
        Prefix of the output's key names.

    Returns
    -------
    dask.array.Array
        One output block per input block.

    Raises
    ------
    ValueError
        Inputs of different chunks, a chunked last axis, or chunks below ``depth``.
    """
    first = arrays[0]
    for array in arrays:
        if array.numblocks[-1] != 1 or array.chunks[:-1] != first.chunks[:-1]:
            raise ValueError(
                "arrays must share their chunks and have a single chunk along the last axis "
                f"(got {first.chunks} and {array.chunks})"
            )
    grid = first.numblocks[:-1]
    axes = tuple(axes) if depth else ()
    for axis in axes:
        if min(first.chunks[axis]) < depth:
            # A neighbour narrower than the depth cannot lend a whole edge.
            raise ValueError(
                f"chunks along axis {axis} must be at least the overlap depth {depth} "
                f"(got {first.chunks[axis]})"
            )
    # Offsets of a lending block from its consumer: every neighbour along ``axes``.
    steps = [(-1, 0, 1) if axis in axes else (0,) for axis in range(len(grid))]
    # The function by name and identity, not by content: Dask would pickle a closure
    # (and every closure it holds) to hash it, a few ms a graph. It is alive as long
    # as the graph that calls it, so its identity names it uniquely meanwhile.
    function = (getattr(block_fn, "__module__", None), getattr(block_fn, "__qualname__", None))
    token = tokenize(*function, id(block_fn), [a.name for a in arrays], depth, axes, chunks)
    halo_name, out_name = f"{name}-edges-{token}", f"{name}-{token}"
    zeros = (0,) * (len(chunks) - len(grid))
    halo: dict[Any, Task] = {}
    out: dict[Any, Task] = {}
    for location in itertools.product(*(range(n) for n in grid)):
        # Neighbours of this block, as offsets along ``axes`` (the others are zero).
        offsets = []
        for step in itertools.product(*steps):
            neighbour = tuple(i + s for i, s in zip(location, step, strict=True))
            if any(step) and all(0 <= i < n for i, n in zip(neighbour, grid, strict=True)):
                offsets.append(tuple(step[axis] for axis in axes))
        # What this block lends: the same offsets seen from the other side.
        lent = tuple(tuple(-s for s in offset) for offset in offsets)
        for array in arrays if lent else ():
            halo[(f"{halo_name}-{array.name}", *location)] = Task(
                (f"{halo_name}-{array.name}", *location),
                _lend_edges,
                TaskRef((array.name, *location, 0)),
                axes,
                depth,
                lent,
            )
        before = tuple(location[axis] > 0 for axis in axes)
        after = tuple(location[axis] < grid[axis] - 1 for axis in axes)
        parts: list[TaskRef] = []
        for array in arrays:
            parts.append(TaskRef((array.name, *location, 0)))
            for offset in offsets:
                source = list(location)
                for axis, shift in zip(axes, offset, strict=True):
                    source[axis] += shift
                parts.append(TaskRef((f"{halo_name}-{array.name}", *source)))
        key = (out_name, *location, *zeros)
        layout = (axes, depth, before, after, tuple(offsets))
        out[key] = Task(key, _run_block, block_fn, location, layout, len(arrays), *parts)
    # One layer of both steps over the inputs' graphs (HighLevelGraph.from_collections).
    inputs: list[Any] = list(arrays)
    graph = HighLevelGraph.from_collections(out_name, {**halo, **out}, dependencies=inputs)
    return da.Array(graph, out_name, chunks=chunks, meta=meta)
