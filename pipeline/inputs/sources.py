"""Inputs -> lazy Dask arrays in one canonical layout, plus their coordinates.

Every source becomes a :class:`SourcePair`: two Dask arrays shaped
``(image, y, x, channel)`` (a grey image has one channel) and the ``image``,
``reference`` and ``generated`` coordinates of the result Dataset. Accepted
here: NumPy arrays, Dask arrays, Zarr arrays and Zarr stores on disk
(``zarr_format`` 2 or 3; sharded arrays are read one shard per chunk, since
reading their inner chunks one by one would decode each shard many times),
each shaped ``(image, y, x[, channel])`` or a single image ``(y, x[, channel])``,
and the stores :mod:`pipeline.inputs.ingest` writes. Nothing is read here beyond
metadata; a Zarr array whose metadata declares more than ``max_input_elements``
elements is refused (:func:`check_input_size`).

:meth:`SourcePair.chunked` gives the stacks at the engine's planned chunks. A
Zarr source whose planned chunks are whole multiples of its own chunks (or
shards) is then read straight at those chunks, one Zarr read per task, instead
of reading its own chunks and concatenating them in a rechunk layer: the same
pixels, one task layer and one copy fewer, and fewer calls into Zarr's event loop.
Where the array's layout allows, those reads bypass Zarr's read path altogether
and take the chunk files straight from disk (:mod:`pipeline.inputs.zarr_direct`).

**Missing and corrupt chunks.** Every read task of a Zarr stack also reports
the chunks it could not read, and the images they hold fail with the chunk keys
and the array named (``read_status``); the other images are exactly those of a
sound store, and the run goes on. A chunk that is stored but does not decode
(truncated, overwritten, a failed checksum) fails for good: ``--resume`` does not
retry it. A chunk the system could not read (an ``OSError`` such as EIO or EACCES)
and, with ``missing_chunks="fail"`` (the default), a chunk that is not in the store
are transient failures that ``--resume`` retries. ``missing_chunks="fill"`` keeps
Zarr's rule that a chunk not stored holds the fill value, for stores sparse on
purpose.

Sources of other kinds plug in as pair openers: an opener that recognises its
inputs returns a :class:`SourcePair`. The built-in ones (folders of image files,
two image files, ingest stores) are looked up by :func:`open_pair` itself;
:func:`register_pair_opener` adds others.
"""

from __future__ import annotations

import itertools
import math
import operator
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.array.core import normalize_chunks
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.task_spec import Task, TaskRef

from pipeline.inputs.files import is_transient_status
from pipeline.inputs.options import InputOptions
from pipeline.inputs.zarr_checked import array_location, dask_from_zarr_checked
from pipeline.inputs.zarr_direct import dask_from_zarr
from pipeline.metrics.checks import normalize_channel_axis
from pipeline.results.schema import STATUS_OK
from pipeline.storage.locations import (
    Location,
    check_exists,
    is_url,
    location,
    redact,
    remote_error,
    zarr_store,
)

__all__ = [
    "DirectRead",
    "SourcePair",
    "check_input_size",
    "join_statuses",
    "native_chunks",
    "open_array",
    "open_array_checked",
    "open_source",
    "open_zarr_url",
    "to_canonical",
    "zarr_stacks",
]

Chunks = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class DirectRead:
    """How to read one canonical stack straight from its Zarr array at other chunks.

    Attributes
    ----------
    array : zarr.Array
        The source array.
    channel_axis : int, optional
        As given to :func:`open_pair`.
    name : str
        Dask name of the canonical stack this reads: a pair whose stack was
        replaced (downsampled, reshaped) no longer matches and is rechunked instead.
    status : dask.array.Array, optional
        Per-image status of the stack's own reads (chunks that could not be read,
        or are missing); None: the reads report nothing.
    missing_chunks : str
        As :class:`InputOptions`: whether a chunk that is not stored fails its images.
    """

    array: zarr.Array
    channel_axis: int | None
    name: str
    status: da.Array | None = None
    missing_chunks: str = "fail"

    def read(self, chunks: Chunks, halo: int = 0) -> da.Array | None:
        """The canonical stack read at ``chunks``, or None where they split a source chunk.

        ``halo``: room kept around each block along ``y`` and ``x`` for the overlap
        a consumer adds (see :class:`~pipeline.inputs.zarr_direct.ChunkFileReader`).
        """
        read = self._read(chunks, halo)
        return None if read is None else read[0]

    def read_status(self, chunks: Chunks, halo: int = 0) -> da.Array | None:
        """Per-image status of the reads :meth:`read` makes at ``chunks`` (None: no such reads).

        The same Dask keys as the stack's reads: computed together, each chunk is read once.
        """
        read = self._read(chunks, halo)
        return None if read is None else read[1]

    def _read(self, chunks: Chunks, halo: int = 0) -> tuple[da.Array, da.Array | None] | None:
        native = self.array.shards if self.array.shards is not None else self.array.chunks
        ndim = self.array.ndim
        axis = normalize_channel_axis(self.channel_axis, ndim)
        order = [a for a in range(ndim) if a != axis] + ([axis] if axis is not None else [])
        spatial_ndim = ndim - (axis is not None)
        # Canonical (image, y, x, channel) back to the source's axes: drop the image axis
        # a single image gained and the channel axis a grey stack gained, then un-transpose.
        canonical = list(chunks[1:] if spatial_ndim == 2 else chunks)
        if axis is None:
            canonical = canonical[:-1]
        source: list[tuple[int, ...]] = [()] * ndim
        for position, source_axis in enumerate(order):
            source[source_axis] = tuple(int(c) for c in canonical[position])
        for sizes, unit, length in zip(source, native, self.array.shape, strict=True):
            if sum(sizes) != length or any(int(b) % unit for b in np.cumsum(sizes)[:-1]):
                return None
        # Canonical y and x: the source's first two spatial axes after the image axis.
        planar = order[:-1] if axis is not None else order
        room = None
        if halo:
            room_list = [0] * ndim
            for source_axis in planar[-2:]:
                room_list[source_axis] = halo
            room = tuple(room_list)
        if self.status is None:
            stack, _, _ = to_canonical(
                dask_from_zarr(self.array, tuple(source), room=room), self.channel_axis, "source"
            )
            return stack, None
        return _read_zarr(
            self.array,
            tuple(source),
            self.channel_axis,
            missing_chunks=self.missing_chunks,
            room=room,
        )


@dataclass(frozen=True)
class SourcePair:
    """Two lazy image stacks of equal shape ``(image, y, x, channel)`` and their labels.

    Attributes
    ----------
    reference, generated : dask.array.Array
        The stacks, nothing read yet.
    image : numpy.ndarray
        Pair ids, one per image (indices for stacks, relative paths for folders and
        for the stacks of an ingest store).
    reference_names, generated_names : numpy.ndarray
        Where each side of each pair comes from (strings).
    native_chunks : tuple of int
        ``(images, y, x)`` read granularity of the sources (Zarr chunk or shard);
        chunk planning tiles in multiples of it so that no chunk is read twice.
    identity : dict
        What the sources are (paths, shapes, dtypes), for the run fingerprint.
    status : mapping
        Pairs already known to have failed (index -> reason), e.g. undecodable files.
        Never changed once the pair is built: the engine keeps the failures that
        ``read_status`` reports while it runs in its own state.
    read_status : dask.array.Array, optional
        ``(image,)`` strings, ``"ok"`` or why the pair could not be read, computed
        by the same tasks that read the pixels (image files that fail to decode,
        Zarr chunks that cannot be read or are not in the store). A failed pair's
        pixels are zeros or fill values; the engine marks it failed instead of
        stopping the run.
    rechunked : callable, optional
        ``rechunked(image_chunks)`` -> the same pair with its stacks chunked that way
        along ``image``, for sources whose images are read independently (files):
        the engine reads exactly its planned chunks, so nothing is read twice.
    groups : tuple of SourcePair
        Parts of different image shapes (folders of several sizes), in the order
        of ``image``; the stacks of this pair are then those of the first part.
    attrs : dict
        What the source adds to the result's attrs (e.g. unpaired files).
    direct : tuple
        For each stack, a :class:`DirectRead` when it comes straight from a Zarr
        array (see :meth:`chunked`), else None. Its ``status`` is that stack's own
        per-image read status (chunks that could not be read, or are missing).
    halo : int
        The overlap the engine adds around each block along ``y`` and ``x``: Zarr
        stacks read straight at the planned chunks keep room for it around each
        block (see :meth:`chunked`), so the overlapped block is made in place.
    """

    reference: da.Array
    generated: da.Array
    image: np.ndarray
    reference_names: np.ndarray
    generated_names: np.ndarray
    native_chunks: tuple[int, int, int]
    identity: dict[str, Any] = field(default_factory=dict)
    status: Mapping[int, str] = field(default_factory=dict)
    read_status: da.Array | None = None
    rechunked: Callable[[tuple[int, ...]], SourcePair] | None = None
    groups: tuple[SourcePair, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    direct: tuple[DirectRead | None, DirectRead | None] = (None, None)
    halo: int = 0

    def chunked(self, chunks: Chunks) -> tuple[da.Array, da.Array]:
        """Both stacks chunked as ``chunks``, read straight at those chunks where possible.

        Every caller that chunks the stacks the same way gets the same Dask keys,
        so tasks computed together read each pixel once.
        """
        out = []
        for stack, direct in zip((self.reference, self.generated), self.direct, strict=True):
            read = None
            if direct is not None and direct.name == stack.name:
                read = direct.read(chunks, self.halo)
            if read is None:
                read = _views(stack, chunks) if stack.npartitions == 1 else stack.rechunk(chunks)
            out.append(read)
        return out[0], out[1]

    def planned(self, chunks: Chunks) -> SourcePair:
        """This pair with ``read_status`` taken from the reads that :meth:`chunked` makes.

        A Zarr stack read straight at ``chunks`` reports its missing or unreadable
        chunks from those reads (the stack's own reads are then never made); the engine calls
        this once the chunks are planned.
        """
        sides = [
            (stack, direct)
            for stack, direct in zip((self.reference, self.generated), self.direct, strict=True)
            if direct is not None and direct.status is not None
        ]
        if not sides or any(direct.name != stack.name for stack, direct in sides):
            return self  # nothing read straight, or a replaced stack: read_status holds
        found = [direct.read_status(chunks, self.halo) for _, direct in sides]
        if all(status is None for status in found):
            return self
        chosen = [
            direct.status if status is None else status
            for (_, direct), status in zip(sides, found, strict=True)
        ]
        return replace(self, read_status=join_statuses(*(s for s in chosen if s is not None)))

    @property
    def n_images(self) -> int:
        return len(self.image)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(y, x)``; counted from the end so a volume ``(1, z, y, x, channel)`` works too."""
        return int(self.reference.shape[-3]), int(self.reference.shape[-2])

    @property
    def n_channels(self) -> int:
        return int(self.reference.shape[-1])


def _read_zarr(
    array: zarr.Array,
    chunks: tuple[Any, ...],
    channel_axis: int | None,
    *,
    missing_chunks: str,
    room: tuple[int, ...] | None = None,
) -> tuple[da.Array, da.Array]:
    """The canonical stack of ``array`` read at source ``chunks``, and its read status.

    The status of each image comes from the same read tasks: chunks that could not
    be read or decoded, and (``missing_chunks="fail"``) chunks not in the store.
    """
    axis = normalize_channel_axis(channel_axis, array.ndim)
    spatial = [a for a in range(array.ndim) if a != axis]
    image_axis = spatial[0] if len(spatial) == 3 else None
    # Channels already last (or none): the canonical layout only adds one-long axes,
    # in the task that takes the pixels from the read.
    in_order = axis is None or axis == array.ndim - 1
    expand = (None,) * (len(spatial) == 2) + (Ellipsis,) + (None,) * (axis is None)
    pixels, status = dask_from_zarr_checked(
        array,
        chunks,
        image_axis=image_axis,
        report_missing=missing_chunks == "fail",
        room=room,
        expand=expand if in_order and np.dtype(array.dtype).kind in "uif" else None,
    )
    if pixels.ndim == array.ndim:
        pixels, _, _ = to_canonical(pixels, channel_axis, "source")
    return pixels, status


def join_statuses(*statuses: da.Array) -> da.Array:
    """Per-image statuses of several reads as one: ``"ok"`` or every failure, joined by "; "."""
    if len(statuses) == 1:
        return statuses[0]
    return da.map_blocks(_join_status_blocks, *statuses, dtype=object)


def _join_status_blocks(*blocks: np.ndarray) -> np.ndarray:
    out = np.empty(len(blocks[0]), dtype=object)
    for k, texts in enumerate(zip(*blocks, strict=True)):
        # dict.fromkeys: one array given as both sides reports its missing chunk once.
        failed = list(dict.fromkeys(str(text) for text in texts if text != STATUS_OK))
        # Transient failures first: the joined text ends with the transient suffix (and
        # --resume retries the pair) only when every failure in it may pass on a retry.
        failed.sort(key=lambda text: not is_transient_status(text))
        out[k] = "; ".join(failed) if failed else STATUS_OK
    return out


def open_array(
    source: Any, name: str, *, options: InputOptions | None = None
) -> tuple[da.Array, str, tuple[int, ...] | None]:
    """One source as a Dask array, a label for it and its native chunking (None: unknown)."""
    array, label, native, _ = open_source(source, name, options or InputOptions())
    return array, label, native


def open_array_checked(
    source: Any, name: str, *, options: InputOptions | None = None
) -> tuple[da.Array, str, da.Array | None]:
    """:func:`open_array`, plus the read status of each image of a Zarr source.

    Returns
    -------
    array : dask.array.Array
        The source, lazily.
    label : str
        What it is, for messages.
    status : dask.array.Array or None
        For a Zarr source, ``(image,)`` strings (one entry for a 2-D array) computed
        by the same tasks that read the pixels: ``"ok"``, or which chunk is missing
        (with ``missing_chunks="fail"``) or could not be read or decoded. None for
        sources that cannot miss data (NumPy and Dask arrays).
    """
    options = options or InputOptions()
    array, label, native, node = open_source(source, name, options)
    if node is None or native is None:
        return array, label, None
    pixels, status = dask_from_zarr_checked(
        node,
        tuple(native),
        image_axis=0 if node.ndim >= 3 else None,
        report_missing=options.missing_chunks == "fail",
    )
    return pixels, label, status


def open_source(
    source: Any, name: str, options: InputOptions
) -> tuple[da.Array, str, tuple[int, ...] | None, zarr.Array | None]:
    """:func:`open_array`, plus the Zarr array it reads (None for other sources)."""
    if isinstance(source, str | Path):
        where = location(source, what=name)
        if where.remote:
            node = open_zarr_url(where, name, options)
            check_input_size(node, name, options)
            return (*_from_zarr(node, str(where)), node)
        path = Path(where.path) if is_url(source) else Path(source)
        node = _open_zarr_path(path, name)
        check_input_size(node, name, options)
        return (*_from_zarr(node, str(path)), node)
    if isinstance(source, zarr.Array):
        check_input_size(source, name, options)
        return (*_from_zarr(source, f"zarr array {source.name or '/'}"), source)
    if isinstance(source, zarr.Group):
        raise ValueError(f"{name} is a Zarr group, not an array; pass one of its arrays")
    if isinstance(source, da.Array):
        return source, "dask array", _dask_native(source), None
    if isinstance(source, np.ndarray):
        # In memory, any tile is as cheap to take as any other: no read granularity.
        native = (1,) * source.ndim
        return _in_memory(source), "numpy array", native, None
    raise TypeError(
        f"{name} must be a NumPy, Dask or Zarr array or a Zarr path (got {type(source).__name__})"
    )


def _views(stack: da.Array, chunks: Chunks) -> da.Array:
    """A one-block ``stack`` cut into ``chunks`` as views of its block.

    ``rechunk`` copies every piece smaller than half the block (Dask's rule against
    a small slice holding a large array alive): for an in-memory stack that is all
    its pixels copied once more, though the block stays alive until the run ends
    anyway. The key is a hash of the stack's name and ``chunks``, so callers that
    cut a stack alike share its tasks.
    """
    chunks = normalize_chunks(chunks, stack.shape)
    name = f"views-{tokenize(stack.name, chunks)}"
    block = TaskRef((stack.name,) + (0,) * stack.ndim)
    starts = [np.cumsum((0, *sizes)).tolist() for sizes in chunks]
    graph: dict[Any, Task] = {}
    for index in itertools.product(*(range(len(sizes)) for sizes in chunks)):
        where = tuple(slice(s[i], s[i + 1]) for s, i in zip(starts, index, strict=True))
        key = (name, *index)
        graph[key] = Task(key, operator.getitem, block, where)
    depends: list[Any] = [stack]
    layers = HighLevelGraph.from_collections(name, graph, dependencies=depends)
    return da.Array(layers, name, chunks=chunks, meta=stack._meta)


def _in_memory(source: np.ndarray) -> da.Array:
    """``source`` as a one-chunk Dask array that reads the caller's pixels in place.

    ``da.from_array`` would hash the pixels for its key (reading the whole array:
    ~30 ms per 50 MB) and copy them (~8 ms per 50 MB), both to protect a graph that
    outlives the call from later changes to the array. A run computes its graph
    before it returns and never shares it, so neither is needed here: the key is
    random, and the tasks slice the array itself.
    """
    name = f"numpy-source-{uuid.uuid4().hex}"
    graph = HighLevelGraph.from_collections(
        name, {(name,) + (0,) * source.ndim: source}, dependencies=()
    )
    meta = np.empty((0,) * source.ndim, dtype=source.dtype)
    return da.Array(graph, name, chunks=tuple((int(s),) for s in source.shape), meta=meta)


def _dask_native(array: da.Array) -> tuple[int, ...]:
    """A Dask array's chunk along each axis it splits (1 along an axis in one piece).

    Tiles are planned in multiples of it, so that a source chunk is not cut
    between tasks; an axis held in one piece (a whole image per chunk) leaves
    the tiling free, so one huge image still becomes many tasks.
    """
    return tuple(int(c[0]) if len(c) > 1 else 1 for c in array.chunks)


def check_input_size(array: zarr.Array, name: str, options: InputOptions) -> None:
    """Refuse a Zarr array whose metadata declares more than ``max_input_elements`` elements.

    Checked on the metadata alone, before a Dask graph or a read is made: a corrupt
    or hostile ``zarr.json`` / ``.zarray`` must not become a run of 10**27 pixels.

    Raises
    ------
    ValueError
        The array is larger than ``options.max_input_elements`` (the array is named).
    """
    elements = math.prod(int(n) for n in array.shape)
    if elements > options.max_input_elements:
        raise ValueError(
            f"{name} Zarr array {array_location(array)} declares shape {tuple(array.shape)} "
            f"({elements} elements), more than max_input_elements={options.max_input_elements}; "
            "its metadata is probably wrong, or raise max_input_elements if the array really "
            "is that large"
        )


def open_zarr_url(where: Location, name: str, options: InputOptions) -> zarr.Array:
    """The Zarr array at a remote URL, through a Zarr 3 ``FsspecStore`` (read-only).

    The bucket and the path are checked first, so that a typing mistake is named
    before anything else happens; the array's chunks are then read by Zarr, which
    keeps ``zarr.config["async.concurrency"]`` chunk requests in flight per read.

    Raises
    ------
    FileNotFoundError
        No bucket, or nothing at the path (the URL named, credentials removed).
    PermissionError, OSError
        The store refused the credentials or could not be reached.
    ValueError
        Something is stored there but it is not a Zarr array (a group: its arrays named).
    """
    storage_options = options.storage_options
    shown = redact(where.url, storage_options)
    check_exists(where, storage_options, what=f"{name} Zarr store")
    try:
        node = zarr.open(store=zarr_store(where, storage_options, read_only=True), mode="r")
    except (PermissionError, ConnectionError, TimeoutError) as error:
        raise remote_error(
            error, where, what=f"{name} Zarr store", storage_options=storage_options
        ) from None
    except FileNotFoundError:  # zarr's "no array or group found": no metadata there
        raise FileNotFoundError(
            f"{name} Zarr store: no Zarr metadata (zarr.json, .zarray) at {shown}"
        ) from None
    except Exception as error:  # zarr raises several types for 'not a store'
        detail = redact(f"{type(error).__name__}: {error}", storage_options)
        raise ValueError(f"{name} URL {shown!r} is not a readable Zarr store ({detail})") from None
    return _zarr_array(node, name, shown, "URL")


def _open_zarr_path(path: Path, name: str) -> zarr.Array:
    if not path.exists():
        raise FileNotFoundError(f"{name} path {str(path)!r} does not exist")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several types for 'not a store'
        raise ValueError(
            f"{name} path {str(path)!r} is not a readable Zarr store ({type(error).__name__}: "
            f"{error})"
        ) from error
    return _zarr_array(node, name, str(path), "path")


def _zarr_array(node: Any, name: str, shown: str, kind: str) -> zarr.Array:
    """``node`` when it is an array; a group is refused naming its arrays."""
    if not isinstance(node, zarr.Array):
        members = sorted(node.array_keys()) if isinstance(node, zarr.Group) else []
        hint = f"; its arrays: {', '.join(members)}" if members else ""
        raise ValueError(
            f"{name} store {shown!r} is a Zarr group, not an array{hint}; "
            f"pass the array's {kind} (store/array)"
        )
    return node


def _storage_chunks(array: zarr.Array) -> tuple[int, ...]:
    # A sharded array must be read a whole shard per task: inner-chunk reads would
    # decode the same shard again and again.
    chunks = array.shards if array.shards is not None else array.chunks
    return tuple(int(c) for c in chunks)


def _from_zarr(array: zarr.Array, label: str) -> tuple[da.Array, str, tuple[int, ...]]:
    chunks = _storage_chunks(array)
    return dask_from_zarr(array, chunks), label, chunks


def to_canonical(
    array: da.Array, channel_axis: int | None, name: str
) -> tuple[da.Array, bool, tuple[int, ...]]:
    """``(image, y, x, channel)`` view, whether the input was a single image, and the axis order."""
    if array.dtype.kind not in "uif":
        raise TypeError(f"{name} must have an integer or floating dtype (got {array.dtype})")
    axis = normalize_channel_axis(channel_axis, array.ndim)
    spatial_ndim = array.ndim - (axis is not None)
    if spatial_ndim not in (2, 3):
        raise ValueError(
            f"{name} must be shaped (image, y, x[, channel]) or (y, x[, channel]) "
            f"(got shape {tuple(array.shape)} with channel_axis={channel_axis})"
        )
    order = [a for a in range(array.ndim) if a != axis] + ([axis] if axis is not None else [])
    out = array.transpose(order) if order != list(range(array.ndim)) else array
    single = spatial_ndim == 2
    # New axes in one indexing step: one task layer, which Dask fuses with the read.
    new_axes = (None,) * single + (Ellipsis,) + (None,) * (axis is None)
    if len(new_axes) > 1:
        out = out[new_axes]
    return out, single, tuple(order)


def zarr_stacks(
    stacks: tuple[da.Array, da.Array],
    sources: tuple[zarr.Array | None, zarr.Array | None],
    channel_axis: int | None,
    options: InputOptions,
) -> tuple[tuple[da.Array, da.Array], tuple[DirectRead | None, DirectRead | None]]:
    """The canonical stacks, each Zarr one read so that chunks it cannot read fail its images.

    A Zarr stack is re-read at its own chunks (or shards) by tasks that also report
    the chunks they could not read or decode and, with ``missing_chunks="fail"``,
    those they did not find (the :class:`DirectRead` ``status``).
    """
    out: list[da.Array] = []
    direct: list[DirectRead | None] = []
    for stack, source in zip(stacks, sources, strict=True):
        if source is None:
            out.append(stack)
            direct.append(None)
            continue
        stack, status = _read_zarr(
            source, _storage_chunks(source), channel_axis, missing_chunks=options.missing_chunks
        )
        out.append(stack)
        direct.append(DirectRead(source, channel_axis, stack.name, status, options.missing_chunks))
    return (out[0], out[1]), (direct[0], direct[1])


def native_chunks(
    native: tuple[int, ...] | None, order: tuple[int, ...], single: bool, canonical: da.Array
) -> tuple[int, int, int]:
    """The source's read chunks in ``(image, y, x)`` order (the whole extent when unknown)."""
    if native is None:
        return (1, int(canonical.shape[1]), int(canonical.shape[2]))
    ordered = [native[a] for a in order]
    spatial = ordered[:2] if single else ordered[1:3]
    images = 1 if single else ordered[0]
    return (int(images), int(spatial[0]), int(spatial[1]))
