"""Read regions of local Zarr arrays straight from their chunk files.

Zarr's own read path hands every chunk through its asynchronous codec pipeline
(an event loop thread, buffer objects, a copy per chunk): for a fast SSIM kernel
that machinery costs a large share of the CPU that decoding the chunks needs in
the first place. For the common layout -- an unsharded array in a local
directory store, stored as plain bytes with at most one whole-chunk compressor
(Zarr's default zstd, blosc, gzip/zlib) and no filters --
:class:`ChunkFileReader` reads each chunk file, decompresses it with numcodecs
and copies the wanted part out: the same bytes, the same values, with none of
the machinery. Everything else it cannot prove it reads exactly (sharding,
filters, checksum codecs, other stores, Fortran order, non-numeric dtypes) is
read by Zarr; so is any chunk that has no file (Zarr's fill-value rules). A
chunk file that cannot be read, or does not decompress to exactly one chunk, is
a :class:`ChunkReadError` that names the file (Zarr's own error names neither
file nor array).

:func:`dask_from_zarr` is :func:`dask.array.from_zarr` with this reader where it
applies. :func:`dask_from_zarr_checked` is the same read whose tasks also say
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

One task reads its chunks one after another (Dask runs the tasks side by side):
on a local disk that is faster than Zarr's overlapped reads even for many tiny
chunks (1000 chunks of 4 KB: ~0.07 s against Zarr's ~0.5 s; splitting them over
a thread pool made it slower, the GIL being the limit), but on a file system with
a high latency per file (network storage) a task over very many small chunks
waits for each in turn, where Zarr would overlap them (not measured here).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dask.array as da
import numcodecs
import numpy as np
import zarr
from dask.base import tokenize
from zarr.storage import WrapperStore

from pipeline.inputs.formats import TRANSIENT_SUFFIX
from pipeline.inputs.shared_reads import read_part, shared_reads
from pipeline.results.schema import STATUS_OK

__all__ = [
    "ChunkFileReader",
    "ChunkReadError",
    "array_location",
    "dask_from_zarr",
    "dask_from_zarr_checked",
    "direct_reader",
]

# zarr_format 2 compressors (numcodecs ids) whose ``decode`` gives one chunk's bytes,
# each checked against Zarr's own reads in tests/inputs/test_zarr_direct.py.
_V2_COMPRESSORS = {"zstd", "blosc", "zlib", "gzip"}
# Longest text of a decoder's error kept in a status: some quote the bytes they choked on.
_ERROR_TEXT = 200


class ChunkReadError(ValueError):
    """A stored Zarr chunk that could not be read or decoded; the message names its file.

    Attributes
    ----------
    path : str
        The chunk file.
    reason : str
        What went wrong, in words fit for a ``status`` entry (``"could not be
        decoded (...)"``).
    transient : bool
        Whether a retry may succeed (the system failed to read the file, not its
        content to decode).
    """

    def __init__(self, path: str, reason: str, *, transient: bool = False) -> None:
        self.path = path
        self.reason = reason
        self.transient = transient
        suffix = TRANSIENT_SUFFIX if transient else ""
        super().__init__(f"Zarr chunk file {path!r} {reason}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps (path, reason, transient) across pickling, e.g. from a distributed worker.
        return (_rebuild_read_error, (self.path, self.reason, self.transient))


def _rebuild_read_error(path: str, reason: str, transient: bool) -> ChunkReadError:
    return ChunkReadError(path, reason, transient=transient)


def _read_failure(error: Exception) -> tuple[str, bool]:
    """``(reason, transient)`` for an exception raised reading or decoding one chunk.

    An ``OSError`` with an ``errno`` (EIO, EACCES, ...) or a lost connection is the
    system's failure, not the chunk's content: a retry may read it; so may a worker
    that ran short of memory (as for image files, :mod:`pipeline.inputs.formats`).
    Anything else (a decompressor, a checksum, a size) fails again on the same bytes.
    """
    if isinstance(error, OSError) and (
        error.errno is not None or isinstance(error, ConnectionError | TimeoutError)
    ):
        return f"could not be read ({error.strerror or error})", True
    if isinstance(error, MemoryError):
        return "could not be decoded (ran out of memory)", True
    text = str(error).strip() or type(error).__name__
    if len(text) > _ERROR_TEXT:
        text = text[:_ERROR_TEXT] + "..."
    return f"could not be decoded ({type(error).__name__}: {text})", False


class ChunkFileReader:
    """A NumPy-indexable view of a local, unsharded Zarr array that reads chunk files itself.

    Only basic indexing by slices with step 1 (what Dask's getter passes) is
    served here; anything else goes to the Zarr array.

    Parameters
    ----------
    array : zarr.Array
        The array; see :func:`direct_reader` for which arrays qualify.
    codec : numcodecs codec or None
        The chunk compressor (None: chunks stored as raw bytes).
    stored : numpy.dtype
        The dtype, with byte order, of the bytes in a chunk file.
    """

    def __init__(self, array: zarr.Array, codec: Any, stored: np.dtype) -> None:
        self.array = array
        self.codec = codec
        self.stored = stored
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        store = array.store
        if not isinstance(store, zarr.storage.LocalStore):
            raise TypeError(f"ChunkFileReader reads local stores only (got {type(store).__name__})")
        # Absolute: a worker started in another directory still finds the files.
        self.directory = Path(store.root).absolute() / array.path
        self._chunk_bytes = math.prod(self.chunks) * stored.itemsize

    def __dask_tokenize__(self) -> Any:
        return ("ChunkFileReader", tokenize(self.array))

    def __getitem__(self, key: Any) -> np.ndarray:
        """The pixels at ``key``.

        Raises
        ------
        ChunkReadError
            A chunk file of the region that cannot be read or decoded (named).
        """
        region = _plain_region(key, self.shape)
        if region is None:
            return np.asarray(self.array[key])
        out, _, failed = self.read(region)
        if failed:
            raise failed[0][1]
        return out

    def read(
        self, region: list[tuple[int, int]]
    ) -> tuple[np.ndarray, list[tuple[int, ...]], list[tuple[tuple[int, ...], ChunkReadError]]]:
        """The ``(start, stop)`` box ``region``, its chunks without a file, and those that failed.

        Chunks without a file hold the fill value in the result (Zarr's rule); a
        chunk file that cannot be read or decoded holds zeros there and comes back
        as ``(index, error)``, so that the other chunks of the region are still read.
        """
        out = np.empty(tuple(stop - start for start, stop in region), dtype=self.dtype)
        missing: list[tuple[int, ...]] = []
        failed: list[tuple[tuple[int, ...], ChunkReadError]] = []
        if out.size == 0:
            return out, missing, failed
        for index in _chunk_indices(region, self.chunks):
            try:
                if not self._copy_chunk(index, region, out):
                    missing.append(index)
            except ChunkReadError as error:
                out[_target(index, region, self.chunks)] = 0
                failed.append((index, error))
        return out, missing, failed

    def _copy_chunk(
        self, index: tuple[int, ...], region: list[tuple[int, int]], out: np.ndarray
    ) -> bool:
        """Put the part of chunk ``index`` that lies in ``region`` into ``out``.

        Returns whether the chunk has a file (False: the fill value was put there).
        """
        source, whole = [], []
        for i, (start, stop), size in zip(index, region, self.chunks, strict=True):
            low, high = max(start, i * size), min(stop, (i + 1) * size)
            source.append(slice(low - i * size, high - i * size))
            whole.append(slice(low, high))
        target = _target(index, region, self.chunks)
        chunk = self._decoded(index)
        if chunk is None:  # no chunk file: Zarr's fill-value rules
            out[target] = self.array[tuple(whole)]
            return False
        out[target] = chunk[tuple(source)]
        return True

    def _decoded(self, index: tuple[int, ...]) -> np.ndarray | None:
        """Chunk ``index`` as stored, None when it has no file.

        Raises
        ------
        ChunkReadError
            The file cannot be read (transient), does not decompress, or not to
            exactly one chunk (named).
        """
        path = self.directory / self.array.metadata.encode_chunk_key(index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:  # EACCES, EIO, ...: the disk, not the chunk's content
            reason, transient = _read_failure(error)
            raise ChunkReadError(str(path), reason, transient=transient) from error
        if self.codec is not None:
            try:
                data = self.codec.decode(data)
            except Exception as error:  # numcodecs raises RuntimeError, ValueError, ...
                reason, transient = _read_failure(error)
                raise ChunkReadError(str(path), reason, transient=transient) from error
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.nbytes != self._chunk_bytes:
            raise ChunkReadError(
                str(path),
                f"holds {raw.nbytes} bytes once decoded, not the {self._chunk_bytes} "
                f"of a {self.chunks} chunk of {self.stored}",
            )
        return raw.view(self.stored).reshape(self.chunks)


def _target(
    index: tuple[int, ...], region: list[tuple[int, int]], chunks: tuple[int, ...]
) -> tuple[slice, ...]:
    """Where the part of chunk ``index`` that lies in ``region`` goes in the region's array."""
    return tuple(
        slice(max(start, i * size) - start, min(stop, (i + 1) * size) - start)
        for i, (start, stop), size in zip(index, region, chunks, strict=True)
    )


def _chunk_indices(
    region: list[tuple[int, int]], chunks: tuple[int, ...]
) -> Iterator[tuple[int, ...]]:
    """Indices of the chunks of grid ``chunks`` that a non-empty ``region`` touches."""
    ranges = [
        range(start // size, (stop - 1) // size + 1)
        for (start, stop), size in zip(region, chunks, strict=True)
    ]
    return itertools.product(*ranges)


def _plain_region(key: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """``(start, stop)`` per axis for step-1 slices (trailing axes may be left out), else None."""
    if not isinstance(key, tuple):
        key = (key,)
    key = key + (slice(None),) * (len(shape) - len(key))  # trailing axes whole, as NumPy
    if len(key) != len(shape) or not all(isinstance(k, slice) for k in key):
        return None
    region = []
    for item, length in zip(key, shape, strict=True):
        start, stop, step = item.indices(length)
        if step != 1:
            return None
        region.append((start, max(start, stop)))
    return region


def direct_reader(array: zarr.Array) -> ChunkFileReader | None:
    """A :class:`ChunkFileReader` for ``array``, or None where Zarr must read it itself."""
    try:
        store = array.store
        if not isinstance(store, zarr.storage.LocalStore) or array.shards is not None:
            return None
        if np.dtype(array.dtype).kind not in "buif":
            return None
        metadata = array.metadata
        if metadata.zarr_format == 2:
            return _v2_reader(array, metadata)
        return _v3_reader(array, metadata)
    except Exception:  # any layout this module does not know: Zarr reads it
        return None


def _v2_reader(array: zarr.Array, metadata: Any) -> ChunkFileReader | None:
    if metadata.filters or metadata.order != "C":
        return None
    compressor = metadata.compressor
    if compressor is not None and compressor.codec_id not in _V2_COMPRESSORS:
        return None
    stored = np.dtype(metadata.dtype.to_native_dtype())
    return ChunkFileReader(array, compressor, stored)


def _v3_reader(array: zarr.Array, metadata: Any) -> ChunkFileReader | None:
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if metadata.storage_transformers:
        return None
    if type(metadata.chunk_grid).__name__ != "RegularChunkGrid":
        return None
    codecs = tuple(metadata.codecs)
    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return None
    native = np.dtype(array.dtype)
    endian = codecs[0].endian
    if native.itemsize == 1 or endian is None:
        stored = native.newbyteorder("=")
    else:
        stored = native.newbyteorder("<" if endian.value == "little" else ">")
    if len(codecs) == 1:
        return ChunkFileReader(array, None, stored)
    codec = codecs[1]
    if type(codec) is ZstdCodec:
        compressor: Any = numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    elif type(codec) is BloscCodec:
        compressor = numcodecs.Blosc()  # decoding reads its settings from each chunk
    elif type(codec) is GzipCodec:
        compressor = numcodecs.GZip(level=codec.level)
    else:
        return None
    return ChunkFileReader(array, compressor, stored)


def dask_from_zarr(array: zarr.Array, chunks: tuple[Any, ...]) -> da.Array:
    """:func:`dask.array.from_zarr` of ``array`` at ``chunks``, read directly where possible."""
    reader = direct_reader(array)
    if reader is None:
        return da.from_zarr(array, chunks=chunks)
    name = "from-zarr-direct-" + tokenize(array, chunks)
    return da.from_array(reader, chunks=chunks, name=name, asarray=False, fancy=False)


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


def _read_checked(
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
    from zarr.core.array import AsyncArray
    from zarr.storage import StorePath

    shape = tuple(stop - start for start, stop in region)
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=source.dtype), ()
    recorder = _RecordingStore(source.store)
    inner: Any = AsyncArray(
        source.metadata, StorePath(recorder, source.path), config=source._async_array.config
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
        for index in _chunk_indices(region, grid)
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
    for index in _chunk_indices(region, chunks):
        target = _target(index, region, chunks)
        whole = tuple(
            slice(start + part.start, start + part.stop)
            for (start, _), part in zip(region, target, strict=True)
        )
        try:
            out[target] = inner[whole]
        except Exception as error:  # whatever the codec pipeline raises: this chunk fails
            reason, transient = _read_failure(error)
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
    return f"{root.rstrip('/')}/{array.path}" if array.path else root


def dask_from_zarr_checked(
    array: zarr.Array,
    chunks: tuple[Any, ...],
    *,
    image_axis: int | None,
    report_missing: bool = True,
) -> tuple[da.Array, da.Array]:
    """:func:`dask_from_zarr`, plus each image's status from the same read tasks.

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

    Returns
    -------
    pixels : dask.array.Array
        As :func:`dask_from_zarr` reads them (missing chunks hold the fill value),
        except that a chunk which cannot be read or decoded holds zeros instead of
        stopping the read.
    status : dask.array.Array
        ``(image,)`` strings chunked like ``image_axis``: ``"ok"``, or what failed in
        the chunks the image lies in, each named by its key and the array: chunks
        not in the store (transient: they may be copied yet), chunks that could not
        be read (transient) or decoded (not retried: the same bytes fail again).
    """
    normalized = da.core.normalize_chunks(chunks, array.shape, dtype=array.dtype)
    reader = direct_reader(array)
    token = tokenize(array, normalized, image_axis, report_missing, "checked")
    # One read task per block gives its pixels and the stored objects it lacked or could
    # not read; each image chunk's status gathers those of every block it lies in.
    reads = shared_reads(
        reader if reader is not None else array,
        _read_block_checked,
        chunks=normalized,
        name=f"zarr-read-{token}",
    )
    pixels = read_part(
        reads,
        0,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
        name=f"from-zarr-checked-{token}",
    )
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


def _read_block_checked(
    source: ChunkFileReader | zarr.Array, key: tuple[slice, ...]
) -> tuple[np.ndarray, tuple[_ChunkProblem, ...]]:
    """The read task of block ``key``: :func:`_read_checked` of its region."""
    return _read_checked(source, [(k.start, k.stop) for k in key])


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
