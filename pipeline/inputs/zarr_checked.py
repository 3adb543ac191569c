"""Zarr reads that also say which chunks were missing or could not be read.

:func:`dask_from_zarr_checked` is :func:`pipeline.inputs.zarr_direct.dask_from_zarr`
(chunk files read straight from disk where the layout allows) whose tasks also say
which chunks (or shards) were not in the store, and so which images hold fill
values instead of data: the chunk reader knows it from the missing file, Zarr's
own read path from a store wrapper that notes every key a read did not find
(no listing of the store, no extra request). Zarr itself cannot tell a missing
chunk from a stored one. The same tasks also report the chunks that are stored
but cannot be read or decoded (truncated, overwritten, unreadable): those are
never taken for data, and only the images they hold fail. Zarr's read path
fails a whole read for one bad chunk, so a read that fails is made again one
chunk (inner chunk, for a sharded array) at a time to find the chunks at fault.
A failure of the system (an ``OSError`` with an ``errno``: EIO, EACCES, a
network file system) may pass on a retry and is reported as transient; a chunk
that was read and does not decode fails again, so it is not.

Each read task gives its region's pixels and the stored objects it lacked or could
not read (:mod:`pipeline.inputs.shared_reads`); each chunk of images gathers the
problems of every read it lies in into its statuses.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize
from zarr.storage import WrapperStore

from pipeline.inputs import zarr_direct
from pipeline.inputs.files import TRANSIENT_SUFFIX
from pipeline.inputs.shared_reads import read_part, shared_reads
from pipeline.inputs.zarr_direct import ChunkFileReader, chunk_indices, chunk_target, read_failure
from pipeline.results.schema import STATUS_OK

__all__ = ["array_location", "dask_from_zarr_checked", "read_checked"]


class _RecordingStore(WrapperStore[Any]):
    """A store that notes every key a read asked for and did not find (Zarr fills those)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.missing: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        value = await self._store.get(key, prototype, byte_range)
        if value is None:
            self.missing.append(key)
        return value

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        self.missing.extend(
            key for (key, _), value in zip(key_ranges, values, strict=True) if value is None
        )
        return list(values)


def _storage_grid(array: zarr.Array) -> tuple[int, ...]:
    """The shape of one stored object (a shard of a sharded array, else a chunk)."""
    grid = array.shards if array.shards is not None else array.chunks
    return tuple(int(c) for c in grid)


def _chunk_key(array: zarr.Array, index: tuple[int, ...]) -> str:
    key = array.metadata.encode_chunk_key(index)
    return f"{array.path}/{key}" if array.path else key


class _ChunkProblem(NamedTuple):
    """A stored object (chunk or shard) that a read lacked or could not read.

    ``box``: the ``(start, stop)`` extent per axis of the pixels it left unread;
    ``reason``: None for a missing object, else why it failed (``transient``:
    whether a retry may read it).
    """

    key: str
    box: tuple[tuple[int, int], ...]
    reason: str | None = None
    transient: bool = True


def _box(
    index: tuple[int, ...], grid: tuple[int, ...], shape: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """The extent of block ``index`` of the grid ``grid`` over an array of ``shape``."""
    return tuple(
        (i * size, min((i + 1) * size, length))
        for i, size, length in zip(index, grid, shape, strict=True)
    )


def read_checked(
    source: ChunkFileReader | zarr.Array, region: list[tuple[int, int]]
) -> tuple[np.ndarray, tuple[_ChunkProblem, ...]]:
    """One task: ``region`` of the array and the stored objects it lacked or could not read.

    The same read that gives the pixels tells which chunks were missing or broken,
    so a chunk deleted (or not yet copied) while the run reads it is never taken for
    data; the pixels of a chunk that failed are zeros.
    """
    if isinstance(source, ChunkFileReader):
        out, missing, failed = source.read(region)
        array, grid = source.array, source.chunks
        problems: list[_ChunkProblem] = [
            _ChunkProblem(_chunk_key(array, i), _box(i, grid, source.shape)) for i in missing
        ]
        problems.extend(
            _ChunkProblem(
                _chunk_key(array, i), _box(i, grid, source.shape), error.reason, error.transient
            )
            for i, error in failed
        )
        return out, tuple(problems)
    from zarr.storage import StorePath

    shape = tuple(stop - start for start, stop in region)
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=source.dtype), ()
    recorder = _RecordingStore(source.store)
    inner: Any = zarr.AsyncArray(
        source.metadata, StorePath(recorder, source.path), config=source.async_array.config
    )
    reading = zarr.Array(inner)
    broken: tuple[_ChunkProblem, ...] = ()
    try:
        out = np.asarray(reading[tuple(slice(start, stop) for start, stop in region)])
    except Exception:  # one bad chunk fails Zarr's whole read: find the chunks at fault
        out, broken = _read_chunk_by_chunk(source, reading, region)
    lacking = set(recorder.missing)
    grid, array_shape = _storage_grid(source), tuple(int(n) for n in source.shape)
    not_stored = tuple(
        _ChunkProblem(key, _box(index, grid, array_shape))
        for index in chunk_indices(region, grid)
        if (key := _chunk_key(source, index)) in lacking
    )
    return out, not_stored + broken


def _read_chunk_by_chunk(
    source: zarr.Array, inner: zarr.Array, region: list[tuple[int, int]]
) -> tuple[np.ndarray, tuple[_ChunkProblem, ...]]:
    """``region`` read one chunk (inner chunk of a shard) at a time; zeros where a read fails.

    Each failure is named by the key of the stored object (chunk or shard) that holds
    the chunk, and spans that chunk's pixels only.
    """
    failed: list[_ChunkProblem] = []
    chunks = tuple(int(c) for c in source.chunks)
    grid, shape = _storage_grid(source), tuple(int(n) for n in source.shape)
    out = np.zeros(tuple(stop - start for start, stop in region), dtype=source.dtype)
    for index in chunk_indices(region, chunks):
        target = chunk_target(index, region, chunks)
        whole = tuple(
            slice(start + part.start, start + part.stop)
            for (start, _), part in zip(region, target, strict=True)
        )
        try:
            out[target] = inner[whole]
        except Exception as error:  # whatever the codec pipeline raises: this chunk fails
            reason, transient = read_failure(error)
            stored = tuple(i * c // g for i, c, g in zip(index, chunks, grid, strict=True))
            box = _box(index, chunks, shape)
            failed.append(_ChunkProblem(_chunk_key(source, stored), box, reason, transient))
    return out, tuple(failed)


def _image_status(
    blocks: list[tuple[_ChunkProblem, ...]],
    start: int,
    size: int,
    image_axis: int | None,
    where: str,
    report_missing: bool,
) -> np.ndarray:
    """Status of images ``start .. start + size``: ``ok``, or the chunks they lie in that failed."""
    found: list[list[_ChunkProblem]] = [[] for _ in range(size)]
    for problems in blocks:
        for problem in problems:
            if problem.reason is None and not report_missing:
                continue  # missing_chunks="fill": the fill value stands for it
            if image_axis is None:
                touched = range(size)
            else:
                low, high = problem.box[image_axis]
                touched = range(max(low, start) - start, min(high, start + size) - start)
            for k in touched:
                found[k].append(problem)
    out = np.empty(size, dtype=object)
    for k, held in enumerate(found):
        out[k] = _status_text(held, where) if held else STATUS_OK
    return out


def _status_text(problems: list[_ChunkProblem], where: str) -> str:
    """One image's failure: its missing chunks, then the chunks that could not be read.

    Failures that may pass on a retry come first and the others last, so that the
    text ends with the transient suffix only when every one of them is transient.
    """
    missing = list(dict.fromkeys(p.key for p in problems if p.reason is None))
    failed = list(dict.fromkeys((p.key, p.reason, p.transient) for p in problems if p.reason))
    failed.sort(key=lambda item: not item[2])  # stable: transient first, in read order
    parts = [_missing_message(missing, where)] if missing else []
    shown = failed[:3]
    for key, reason, transient in shown:
        suffix = TRANSIENT_SUFFIX if transient else ""
        parts.append(f"Zarr chunk {key!r} of array {where} {reason}{suffix}")
    if len(failed) > len(shown):
        rest = failed[len(shown) :]
        suffix = TRANSIENT_SUFFIX if all(item[2] for item in rest) else ""
        more = f"{len(rest)} more chunk{'s' * (len(rest) > 1)}"
        parts.append(f"{more} of array {where} could not be read or decoded{suffix}")
    return "; ".join(parts)


def _missing_message(keys: list[str], where: str) -> str:
    shown = ", ".join(repr(key) for key in keys[:3])
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return (
        f"Zarr chunk {shown}{more} of array {where} is not in the store (an interrupted "
        "copy or a deleted file; set missing_chunks='fill' if the store leaves out chunks "
        f"of fill values on purpose){TRANSIENT_SUFFIX}"
    )


def array_location(array: zarr.Array) -> str:
    """Where ``array`` lives, for messages: the store's root (a path or URL) and the array path."""
    store = array.store
    root = str(getattr(store, "root", None) or getattr(store, "path", None) or store)
    protocol = getattr(getattr(store, "fs", None), "protocol", None)
    path = getattr(store, "path", None)
    if protocol is not None and isinstance(path, str):
        # A remote store (fsspec): its URL, as the user gave it.
        scheme = protocol[0] if isinstance(protocol, tuple | list) else protocol
        if scheme not in ("file", "local"):
            root = path if "://" in path else f"{scheme}://{path}"
    return f"{root.rstrip('/')}/{array.path}" if array.path else root


def dask_from_zarr_checked(
    array: zarr.Array,
    chunks: tuple[Any, ...],
    *,
    image_axis: int | None,
    report_missing: bool = True,
    room: tuple[int, ...] | None = None,
    expand: tuple[Any, ...] | None = None,
) -> tuple[da.Array, da.Array]:
    """:func:`~pipeline.inputs.zarr_direct.dask_from_zarr` and each image's status, same reads.

    Parameters
    ----------
    array : zarr.Array
        The source.
    chunks : tuple
        Dask chunks of the read.
    image_axis : int, optional
        The axis of ``array`` that numbers the images (None: the array is one image).
    report_missing : bool
        Whether a chunk that is not in the store fails the images it holds (else
        they hold the fill value, Zarr's rule, and stay ``"ok"``).
    room : tuple of int, optional
        Per axis, the halo a consumer adds around each block: direct reads leave
        room for it (:class:`~pipeline.inputs.zarr_direct.ChunkFileReader`).
    expand : tuple, optional
        An index of ``None`` and one ``Ellipsis`` applied to each block of pixels
        (new one-long axes, e.g. ``(None, ..., None)``), in the task that takes the
        pixels from the read: no task of its own for the new axes.

    Returns
    -------
    pixels : dask.array.Array
        As :func:`~pipeline.inputs.zarr_direct.dask_from_zarr` reads them (missing
        chunks hold the fill value), except that a chunk which cannot be read or
        decoded holds zeros instead of stopping the read.
    status : dask.array.Array
        ``(image,)`` strings chunked like ``image_axis``: ``"ok"``, or what failed in
        the chunks the image lies in, each named by its key and the array: chunks
        not in the store (transient: they may be copied yet), chunks that could not
        be read (transient) or decoded (not retried: the same bytes fail again).
    """
    normalized = da.core.normalize_chunks(chunks, array.shape, dtype=array.dtype)
    # Looked up at each call: a benchmark turns the direct reads off by replacing it.
    reader = zarr_direct.direct_reader(array, room)
    token = tokenize(array, normalized, image_axis, report_missing, "checked", room)
    # One read task per block gives its pixels and the stored objects it lacked or could
    # not read; each image chunk's status gathers those of every block it lies in.
    reads = shared_reads(
        reader if reader is not None else array,
        _read_block_checked,
        chunks=normalized,
        name=f"zarr-read-{token}",
    )
    if expand is None:
        pixels = read_part(
            reads,
            0,
            meta=np.empty((0,) * array.ndim, dtype=array.dtype),
            name=f"from-zarr-checked-{token}",
        )
    else:
        name = f"from-zarr-checked-{tokenize(token, expand)}"
        pixels = _expanded_pixels(reads, expand, np.dtype(array.dtype), name)
    missing = read_part(
        reads, 1, meta=np.empty((0,) * array.ndim, dtype=object), name=f"zarr-missing-{token}"
    )
    image_chunks = (1,) if image_axis is None else normalized[image_axis]
    # The images of each status chunk, numbered: the chunk's offset and size.
    images = da.arange(sum(image_chunks), chunks=(tuple(image_chunks),))
    letters = "".join(chr(ord("b") + axis) for axis in range(array.ndim))
    if image_axis is not None:
        letters = letters[:image_axis] + "a" + letters[image_axis + 1 :]
    status = da.blockwise(
        _chunk_status,
        "a",
        images,
        "a",
        missing,
        letters,
        image_axis=image_axis,
        where=array_location(array),
        report_missing=report_missing,
        concatenate=False,
        name=f"zarr-status-{token}",
        dtype=object,
        meta=np.empty((0,), dtype=object),
    )
    return pixels, status


def _expanded_pixels(
    reads: da.Array, expand: tuple[Any, ...], dtype: np.dtype, name: str
) -> da.Array:
    """The pixels of every read with the new axes of ``expand`` (None / one Ellipsis)."""
    at = expand.index(Ellipsis)
    leading, trailing = at, len(expand) - at - 1
    if any(item is not None for i, item in enumerate(expand) if i != at):
        raise ValueError(f"expand must be None and one Ellipsis (got {expand})")
    ndim = reads.ndim + leading + trailing
    new_axis = [*range(leading), *range(leading + reads.ndim, ndim)]
    chunks = ((1,),) * leading + tuple(reads.chunks) + ((1,),) * trailing
    return da.map_blocks(
        _pixels_of,
        reads,
        expand,
        chunks=chunks,
        new_axis=new_axis or None,
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        name=name,
    )


def _pixels_of(read: tuple[np.ndarray, Any], expand: tuple[Any, ...]) -> np.ndarray:
    return read[0][expand]


def _read_block_checked(
    source: ChunkFileReader | zarr.Array, key: tuple[slice, ...]
) -> tuple[np.ndarray, tuple[_ChunkProblem, ...]]:
    """The read task of block ``key``: :func:`read_checked` of its region."""
    return read_checked(source, [(k.start, k.stop) for k in key])


def _chunk_status(
    images: np.ndarray,
    blocks: Any,
    *,
    image_axis: int | None,
    where: str,
    report_missing: bool,
) -> np.ndarray:
    """The status task of one image chunk: ``images`` its image numbers, ``blocks`` the
    problems of every read block it lies in (nested lists, one level per other axis)."""
    flat: list[tuple[_ChunkProblem, ...]] = []

    def gather(item: Any) -> None:  # in block order, as the reads ran
        if isinstance(item, list):
            for inner in item:
                gather(inner)
        else:
            flat.append(item)

    gather(blocks)
    start = int(images[0]) if images.size else 0
    return _image_status(flat, start, int(images.size), image_axis, where, report_missing)
