"""Wang's box-filter-and-sample downsampling over Dask chunks, equal to the in-memory one.

:func:`pipeline.kernels.downsample.box_downsample` keeps, per axis, the samples
``j f`` of ``imfilter(img, ones(f)/f^N, 'symmetric')``: output ``j`` averages
inputs ``j f - before .. j f + after`` (``before = (f - 1) // 2``,
``after = f - 1 - before``), mirrored at both ends of the axis. That is local,
so it tiles exactly when

* every chunk starts at a multiple of ``f`` (:func:`align_chunks`): a chunk
  ``[a, b)`` then owns the outputs ``a / f .. ceil(b / f) - 1``, and no output
  straddles two chunks;
* each block borrows ``before`` samples from the chunk in front of it (the
  overlap; ``f = 2`` needs none). The samples *after* an interior chunk are never
  needed: its last anchor is ``b - f`` and ``b - f + after <= b - 1``;
* the first and last chunk of an axis get the ``'symmetric'`` extension
  themselves, which reads only samples the block holds.

Each block then sums its taps in the same order as ``box_downsample`` (one axis
after the other, tap 0 first), so the tiled result equals the in-memory one
bit for bit (NumPy blocks take the compiled form of the same arithmetic,
:func:`~pipeline.kernels.downsample.compiled_box_downsample`). Used between MS-SSIM
scales (``f = 2``, ``msssim.m``) and by the ``wang2009`` profile
(``f = max(1, round(min side / 256))``, ``ssim.m``).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import dask.array as da
import numpy as np

from pipeline.inputs.options import InputOptions
from pipeline.inputs.sources import SourcePair, open_array_checked
from pipeline.kernels.backend import array_module
from pipeline.kernels.downsample import box_offsets, compiled_box_downsample
from pipeline.tiling.chunks import batch_bounds, merge_small_chunks

__all__ = ["align_chunks", "downsample_array", "downsample_labels", "downsample_pair"]


def align_chunks(chunks: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Chunks of the same axis whose starts are all multiples of ``factor``.

    Each inner boundary moves down to the multiple of ``factor`` below it;
    boundaries that meet are merged. The axis length is unchanged.
    """
    length = int(sum(chunks))
    inner = [int(b) // factor * factor for b in np.cumsum(chunks)[:-1]]
    edges = sorted({0, length, *(b for b in inner if 0 < b < length)})
    return tuple(int(b - a) for a, b in itertools.pairwise(edges))


def _outputs(start: int, stop: int, factor: int) -> int:
    """How many outputs chunk ``[start, stop)`` (``start`` a multiple of ``factor``) owns."""
    return -(-stop // factor) - start // factor


def _reduce_axis(block: Any, axis: int, *, start: int, stop: int, length: int, factor: int) -> Any:
    """The outputs of chunk ``[start, stop)`` (``start`` a multiple of ``factor``) along ``axis``.

    ``block`` holds the chunk plus ``before`` samples in front of it unless the
    chunk is the first (then they come from the mirror, as in ``box_downsample``).
    """
    xp = array_module(block)
    before, after = box_offsets(factor)
    count = _outputs(start, stop, factor)
    last_needed = start + (count - 1) * factor + after
    pad = [(0, 0)] * block.ndim
    pad[axis] = (before if start == 0 else 0, max(0, last_needed - (length - 1)))
    padded = xp.pad(block, pad, mode="symmetric") if any(pad[axis]) else block

    def tap(k: int) -> Any:
        index = [slice(None)] * padded.ndim
        index[axis] = slice(k, k + (count - 1) * factor + 1, factor)
        return padded[tuple(index)]

    acc = tap(0).copy()
    for k in range(1, factor):
        acc += tap(k)
    return acc / factor


def downsample_array(
    array: da.Array, factor: int, axes: tuple[int, ...], dtype: Any = np.float64
) -> da.Array:
    """``box_downsample(array, factor, axes)`` as a Dask graph, chunk by chunk.

    Parameters
    ----------
    array : dask.array.Array
        Any real dtype; the result is float64 (``factor = 1`` only casts).
    factor : int
        ``f >= 1``.
    axes : tuple of int
        Axes to reduce, in the order ``box_downsample`` reduces them.
    dtype : dtype, optional
        Of the result, as ``box_downsample``'s.

    Returns
    -------
    dask.array.Array
        ``ceil(n / f)`` samples along each of ``axes``; chunk ``[a, b)`` of the
        aligned input becomes chunk ``[a / f, ceil(b / f))``.
    """
    if factor == 1:
        return array.astype(dtype)
    before, _ = box_offsets(factor)
    aligned = {
        axis: merge_small_chunks(align_chunks(array.chunks[axis], factor), before) for axis in axes
    }
    source = array.rechunk(aligned)
    lengths = {axis: int(array.shape[axis]) for axis in axes}
    bounds = {axis: batch_bounds(source.chunks[axis]) for axis in axes}
    out_chunks = list(source.chunks)
    for axis in axes:
        edges = bounds[axis]
        out_chunks[axis] = tuple(
            _outputs(int(edges[i]), int(edges[i + 1]), factor) for i in range(len(edges) - 1)
        )
    if before:
        source = da.overlap.overlap(
            source,
            depth={axis: (before if axis in axes else 0) for axis in range(array.ndim)},
            boundary="none",
            allow_rechunk=False,
        )

    def on_block(block: Any, block_info: dict[Any, Any] | None = None) -> Any:
        assert block_info is not None  # dask always passes it to a function that asks
        location = block_info[0]["chunk-location"]
        spans = {
            axis: (int(bounds[axis][location[axis]]), int(bounds[axis][location[axis] + 1]))
            for axis in axes
        }
        placement = {}
        for axis, (start, stop) in spans.items():
            # The block's first sample: the chunk's, less the overlap in front of it.
            origin = start - before if start > 0 else 0
            count = _outputs(start, stop, factor)
            placement[axis] = (start // factor, origin, lengths[axis], count)
        compiled = compiled_box_downsample(block, factor, axes, placement, dtype)
        if compiled is not None:
            return compiled
        xp = array_module(block)
        out = block.astype(xp.float64, copy=False)
        for axis, (start, stop) in spans.items():
            out = _reduce_axis(
                out, axis, start=start, stop=stop, length=lengths[axis], factor=factor
            )
        return out.astype(dtype, copy=False)

    return da.map_blocks(
        on_block,
        source,
        chunks=tuple(out_chunks),
        dtype=dtype,
        meta=np.empty((0,) * array.ndim, dtype=dtype),
    )


def downsample_pair(pair: SourcePair, factor: int) -> SourcePair:
    """Both stacks reduced by ``factor`` along their spatial axes (all but first and last).

    The native chunks shrink with the images so that later planning still tiles
    in whole (reduced) source chunks. ``factor = 1`` returns ``pair`` itself.
    """
    if factor == 1:
        return pair
    axes = tuple(range(1, pair.reference.ndim - 1))
    native = tuple(max(1, -(-int(n) // factor)) for n in pair.native_chunks)
    if len(axes) == 2:
        native = (pair.native_chunks[0], *native[1:])  # a stack's image axis is not reduced
    return dataclasses.replace(
        pair,
        reference=downsample_array(pair.reference, factor, axes),
        generated=downsample_array(pair.generated, factor, axes),
        native_chunks=(int(native[0]), int(native[1]), int(native[2])),
        # Re-reading the files in other chunks would give full-resolution stacks.
        rechunked=None,
    )


def downsample_labels(
    labels: Any, factor: int, *, volume: bool, options: InputOptions | None = None
) -> Any:
    """A label mask on the reduced grid: the label at each kept sample ``x(1:f:end, ...)``.

    A reduced pixel stands for the box anchored at input pixel ``j f``, so it
    takes that pixel's label. ``(y, x)`` and ``(image, y, x)`` masks are
    sampled along ``y`` and ``x``; a ``(z, y, x)`` label volume (``volume``)
    along all three axes.
    """
    if factor == 1 or labels is None:
        return labels
    mask, label, status = open_array_checked(labels, "labels", options=options)
    if status is not None:
        # The whole mask is read once up front anyway (the labels present): a missing or
        # broken chunk refuses the run here, before the reduced grid hides where it was.
        bad = [str(s) for s in np.asarray(status.compute()).ravel() if s != "ok"]
        if bad:
            raise ValueError(f"labels from {label} cannot be used: {bad[0]}")
    step = slice(None, None, factor)
    if mask.ndim == 3 and not volume:
        return mask[:, step, step]
    return mask[(step,) * mask.ndim]
