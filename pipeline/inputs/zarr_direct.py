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
applies; :mod:`pipeline.inputs.zarr_checked` builds on it the reads that also
report missing and broken chunks.

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
from typing import Any

import dask.array as da
import numcodecs
import numpy as np
import zarr
from dask.base import tokenize

from pipeline.inputs.files import TRANSIENT_SUFFIX
from pipeline.inputs.padded import BufferPool

__all__ = [
    "ChunkFileReader",
    "ChunkReadError",
    "chunk_indices",
    "chunk_target",
    "dask_from_zarr",
    "direct_reader",
    "read_failure",
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


def read_failure(error: Exception) -> tuple[str, bool]:
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
    room : tuple of int, optional
        Per axis, the halo a consumer adds to a region on each side where the array
        goes on: each region is read into the interior of an array that large
        (:meth:`pipeline.inputs.padded.BufferPool.padded_empty`), so the halo is added around
        it in place instead of copying the region into a larger array. Those
        arrays' memory is reused once nothing views them (a
        :class:`~pipeline.inputs.padded.BufferPool` that lives with the reader).
    """

    def __init__(
        self, array: zarr.Array, codec: Any, stored: np.dtype, room: tuple[int, ...] | None = None
    ) -> None:
        self.array = array
        self.codec = codec
        self.stored = stored
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.room = tuple(int(r) for r in room) if room is not None else (0,) * self.ndim
        if len(self.room) != self.ndim or min(self.room, default=0) < 0:
            raise ValueError(
                f"room must give a non-negative halo per axis of the {self.ndim}-D array "
                f"(got {room})"
            )
        store = array.store
        if not isinstance(store, zarr.storage.LocalStore):
            raise TypeError(f"ChunkFileReader reads local stores only (got {type(store).__name__})")
        # Absolute: a worker started in another directory still finds the files.
        self.directory = Path(store.root).absolute() / array.path
        self._chunk_bytes = math.prod(self.chunks) * stored.itemsize
        self._pool = BufferPool()
        # Each decoded chunk, copied out before the next read.
        self._scratch = BufferPool()

    def __dask_tokenize__(self) -> Any:
        return ("ChunkFileReader", tokenize(self.array), self.room)

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
        shape = tuple(stop - start for start, stop in region)
        if any(self.room) and all(shape):
            # Room where the array goes on: its neighbours lend the halo there.
            before = tuple(
                r if start > 0 else 0 for r, (start, _) in zip(self.room, region, strict=True)
            )
            after = tuple(
                r if stop < n else 0
                for r, (_, stop), n in zip(self.room, region, self.shape, strict=True)
            )
            out = self._pool.padded_empty(shape, self.dtype, before, after)
        else:
            out = np.empty(shape, dtype=self.dtype)
        missing: list[tuple[int, ...]] = []
        failed: list[tuple[tuple[int, ...], ChunkReadError]] = []
        if out.size == 0:
            return out, missing, failed
        for index in chunk_indices(region, self.chunks):
            try:
                if not self._copy_chunk(index, region, out):
                    missing.append(index)
            except ChunkReadError as error:
                out[chunk_target(index, region, self.chunks)] = 0
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
        target = chunk_target(index, region, self.chunks)
        chunk = self._decoded(index)
        if chunk is None:  # no chunk file: Zarr's fill-value rules
            out[target] = self.array[tuple(whole)]
            return False
        out[target] = chunk[tuple(source)]
        return True

    def _decoded(self, index: tuple[int, ...]) -> np.ndarray | None:
        """Chunk ``index`` as stored, None when it has no file.

        Where the codec says how large a chunk it holds before decoding it (zstd,
        blosc), the chunk is decoded into a buffer of the reader's pool, reused by
        the next chunk once this one is copied out. (Reading the file's bytes into
        a pooled buffer too was slower with two threads: 1.5 ms a 1 MB chunk
        against 1.3.)

        Raises
        ------
        ChunkReadError
            The file cannot be read (transient), does not decompress, or not to
            exactly one chunk (named).
        """
        path = self.directory / self.array.metadata.encode_chunk_key(index)
        try:
            data: Any = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:  # EACCES, EIO, ...: the disk, not the chunk's content
            reason, transient = read_failure(error)
            raise ChunkReadError(str(path), reason, transient=transient) from error
        if self.codec is not None:
            declared = _declared_size(self.codec, data)
            if declared is not None and declared != self._chunk_bytes:
                raise self._size_error(path, declared)
            try:
                if declared is None:
                    data = self.codec.decode(data)
                else:
                    target = self._scratch.buffer(self._chunk_bytes)[: self._chunk_bytes]
                    self.codec.decode(data, out=target)
                    data = target
            except Exception as error:  # numcodecs raises RuntimeError, ValueError, ...
                reason, transient = read_failure(error)
                raise ChunkReadError(str(path), reason, transient=transient) from error
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.nbytes != self._chunk_bytes:
            raise self._size_error(path, raw.nbytes)
        return raw.view(self.stored).reshape(self.chunks)

    def _size_error(self, path: Path, nbytes: int) -> ChunkReadError:
        return ChunkReadError(
            str(path),
            f"holds {nbytes} bytes once decoded, not the {self._chunk_bytes} "
            f"of a {self.chunks} chunk of {self.stored}",
        )


def _declared_size(codec: Any, data: Any) -> int | None:
    """The bytes a compressed chunk says it decodes to, where its codec records them."""
    if isinstance(codec, numcodecs.Zstd):
        return _zstd_content_size(bytes(data[:_ZSTD_HEADER_MAX]))
    if isinstance(codec, numcodecs.Blosc):
        try:
            return int(numcodecs.blosc.cbuffer_sizes(data)[0])
        except Exception:  # not a blosc buffer: decoding names the failure
            return None
    return None


# Longest zstd frame header: magic, descriptor, window, dictionary id, content size.
_ZSTD_HEADER_MAX = 4 + 1 + 1 + 4 + 8
_ZSTD_MAGIC = 0xFD2FB528


def _zstd_content_size(header: bytes) -> int | None:
    """The content size a zstd frame header declares (RFC 8878, 3.1.1.1), None if none."""
    if len(header) < 5 or int.from_bytes(header[:4], "little") != _ZSTD_MAGIC:
        return None
    descriptor = header[4]
    single_segment = bool(descriptor & 0x20)
    size_flag = descriptor >> 6
    dictionary_bytes = (0, 1, 2, 4)[descriptor & 0x03]
    size_bytes = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if size_bytes == 0:
        return None  # size not recorded: decoding finds it
    start = 5 + (0 if single_segment else 1) + dictionary_bytes
    field = header[start : start + size_bytes]
    if len(field) != size_bytes:
        return None
    value = int.from_bytes(field, "little")
    return value + 256 if size_bytes == 2 else value


def chunk_target(
    index: tuple[int, ...], region: list[tuple[int, int]], chunks: tuple[int, ...]
) -> tuple[slice, ...]:
    """Where the part of chunk ``index`` that lies in ``region`` goes in the region's array."""
    return tuple(
        slice(max(start, i * size) - start, min(stop, (i + 1) * size) - start)
        for i, (start, stop), size in zip(index, region, chunks, strict=True)
    )


def chunk_indices(
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


def direct_reader(array: zarr.Array, room: tuple[int, ...] | None = None) -> ChunkFileReader | None:
    """A :class:`ChunkFileReader` for ``array`` (with ``room``), or None where Zarr must read it."""
    try:
        store = array.store
        if not isinstance(store, zarr.storage.LocalStore) or array.shards is not None:
            return None
        if np.dtype(array.dtype).kind not in "buif":
            return None
        metadata = array.metadata
        if metadata.zarr_format == 2:
            reader = _v2_reader(array, metadata)
        else:
            reader = _v3_reader(array, metadata)
        if reader is not None and room is not None:
            reader = ChunkFileReader(array, reader.codec, reader.stored, room)
        return reader
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


# The regular chunk grid's metadata class, as Zarr 3.1 names it and as later releases do;
# any other grid (rectilinear, say) is Zarr's to read.
_REGULAR_GRIDS = frozenset({"RegularChunkGrid", "RegularChunkGridMetadata"})


def _v3_reader(array: zarr.Array, metadata: Any) -> ChunkFileReader | None:
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if metadata.storage_transformers:
        return None
    if type(metadata.chunk_grid).__name__ not in _REGULAR_GRIDS:
        return None
    codecs = tuple(metadata.codecs)
    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return None
    native = np.dtype(array.dtype)
    endian = codecs[0].endian
    if native.itemsize == 1 or endian is None:
        stored = native.newbyteorder("=")
    else:
        # An enum in Zarr 3.1, a plain string in later releases.
        order = getattr(endian, "value", endian)
        stored = native.newbyteorder("<" if order == "little" else ">")
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


def dask_from_zarr(
    array: zarr.Array, chunks: tuple[Any, ...], *, room: tuple[int, ...] | None = None
) -> da.Array:
    """:func:`dask.array.from_zarr` of ``array`` at ``chunks``, read directly where possible.

    ``room``: see :class:`ChunkFileReader` (direct reads only).
    """
    reader = direct_reader(array, room)
    if reader is None:
        return da.from_zarr(array, chunks=chunks)
    name = "from-zarr-direct-" + tokenize(array, chunks, reader.room)
    return da.from_array(reader, chunks=chunks, name=name, asarray=False, fancy=False)
