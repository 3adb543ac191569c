"""A folder of images -> a Zarr stack, decoded once for repeated evaluation.

:func:`ingest_folder` decodes every image of a folder (recursive, the discovery
rule of :mod:`pipeline.inputs.pairing`, the decoding rules of :mod:`pipeline.inputs.images`)
and writes one Zarr group per size group (zarr_format 3), named after the size,
e.g. ``256x256x3_uint8``, each holding:

* ``images`` -- ``(file, y, x, channel)``, one image per chunk (grey images have
  one channel), every chunk stored (black images too, so that a missing chunk
  file always means an incomplete store);
* ``file`` -- the coordinate: relative paths, sorted;
* ``status`` -- ``"ok"`` or why the file could not be decoded (its slot is zeros).

The root group's attribute ``ssim_pipeline_ingest`` marks the format (``version``)
and lists the files whose header could not be read (``failed``: they are in no
stack).

:func:`pipeline.evaluate` and ``ssim-pipeline evaluate`` take two such stores as
they are (:func:`open_ingest_pair`): files pair by relative path, every size
group is evaluated, the channels are last. A slot that ingest could not decode
fails its pair with ingest's reason (never scored as the zeros it holds); pairs
of different shapes fail naming both; a file in one store only is listed in the
attrs ``unpaired_reference`` / ``unpaired_generated``. Evaluating the two stores
gives exactly the values of evaluating the two folders (the same decoded pixels
enter the same kernels). One stack can also be read as a Zarr array
(``stack.zarr/256x256x3_uint8/images`` with ``channel_axis=-1``); stores written
before the root carried its marker are recognised by their layout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr
from dask.base import tokenize

from pipeline.inputs.images import (
    ImageDecodeError,
    ImageHeader,
    decode_batch,
    display_path,
    inspect_objects,
    read_header,
)
from pipeline.inputs.pairing import find_images, find_objects
from pipeline.inputs.shared_reads import SlotSpace, read_part, shared_reads
from pipeline.inputs.sources import (
    InputOptions,
    SourcePair,
    check_input_size,
    join_statuses,
    zarr_stacks,
)
from pipeline.inputs.zarr_direct import dask_from_zarr
from pipeline.results.schema import STATUS, STATUS_OK, UNPAIRED_GENERATED, UNPAIRED_REFERENCE
from pipeline.storage.locations import is_remote, location, redact, zarr_store

__all__ = [
    "FORMAT_ATTR",
    "FORMAT_VERSION",
    "IMAGES",
    "STACK_FILE",
    "IngestResult",
    "ingest_folder",
    "ingest_slots",
    "is_ingest_store",
    "open_ingest_pair",
]

IMAGES, STACK_FILE = "images", "file"
# The root group's attribute that marks an ingest store: its format version and the
# files whose header could not be read ({relative path: reason}).
FORMAT_ATTR, FORMAT_VERSION = "ssim_pipeline_ingest", 1
_DIMS = (STACK_FILE, "y", "x", "channel")
# Images committed per write; each is its own Zarr chunk, decoded in parallel.
_BATCH = 64
# Objects of a folder URL decoded per task: their bytes are fetched in one batch.
_REMOTE_FILES_PER_TASK = 16


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_folder` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The Zarr store.
    arrays : dict
        ``{group name: description}``; the stack is ``path/name/images``.
    failed : dict
        ``{relative path: reason}`` of files that could not be decoded (their
        ``status`` says why) or whose header could not be read (those are left out
        of every stack and listed in the root's ``ssim_pipeline_ingest`` attribute).
    """

    path: Path
    arrays: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _group_name(shape: tuple[int, ...], dtype: np.dtype) -> str:
    channels = shape[2] if len(shape) == 3 else 1
    return f"{shape[0]}x{shape[1]}x{channels}_{dtype}"


@dataclass(frozen=True)
class _Files(SlotSpace):
    """The files of one size group, as its decode tasks read them."""

    paths: tuple[str, ...]
    image_shape: tuple[int, int, int]
    pixel_dtype: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    def __len__(self) -> int:
        return len(self.paths)


def _decode_files(files: _Files, key: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One decode task: the files ``key`` selects, ``(file, y, x, channel)``, and their statuses."""
    chosen = list(files.paths[key[0]])
    shape = files.image_shape
    image_shape = shape[:2] if shape[2] == 1 else shape
    stack, statuses = decode_batch(
        chosen, shape=image_shape, dtype=files.pixel_dtype, storage_options=files.storage_options
    )
    return stack.reshape(len(chosen), *shape), np.asarray(statuses, dtype=object)


def _stack(
    paths: list[str],
    shape: tuple[int, int, int],
    dtype: np.dtype,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[da.Array, da.Array]:
    """Lazy ``(file, y, x, channel)`` stack and statuses.

    One file per decode task on a local disk; objects of an object store
    :data:`_REMOTE_FILES_PER_TASK` per task, fetched together (many in flight).
    """
    token = tokenize(paths, shape, str(dtype))
    n = len(paths)
    per_task = _REMOTE_FILES_PER_TASK if paths and is_remote(paths[0]) else 1
    image_chunks = tuple(min(per_task, n - start) for start in range(0, n, per_task))
    decoded = shared_reads(
        _Files(tuple(paths), shape, str(dtype), dict(storage_options or {})),
        _decode_files,
        chunks=(image_chunks,),
        name=f"ingest-decode-{token}",
    )
    stack = read_part(
        decoded,
        0,
        meta=np.empty((0,) * 4, dtype=dtype),
        chunks=(image_chunks, (shape[0],), (shape[1],), (shape[2],)),
        name=f"ingest-pixels-{token}",
    )
    statuses = read_part(
        decoded, 1, meta=np.empty((0,), dtype=object), name=f"ingest-status-{token}"
    )
    return stack, statuses


def ingest_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    on_batch: Callable[[int, int, int], None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> IngestResult:
    """Decode a folder of images into a Zarr store, one stack per size group.

    Parameters
    ----------
    folder : path-like or str
        Folder of images, walked recursively; or a folder URL (``s3://bucket/photos``),
        listed once, its objects fetched many at a time.
    out : path-like
        The Zarr store to create.
    overwrite : bool
        Replace ``out`` when it exists (else it is refused).
    on_batch : callable, optional
        ``on_batch(done, total, images_in_batch)`` after each written batch.
    storage_options : mapping, optional
        Filesystem arguments for a folder URL (credentials from the standard
        variables need none).

    Returns
    -------
    IngestResult

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``folder`` is missing or a file.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    ValueError
        ``folder`` holds no images.
    """
    target = Path(out)
    if is_remote(folder):
        url = str(folder).rstrip("/")
        images, _, stamps = find_objects(url, side="reference", storage_options=storage_options)
        shown = redact(url, storage_options)
        if not images:
            raise ValueError(f"folder {shown} contains no images")
        files = [f"{url}/{relative}" for relative in images]
        headers = inspect_objects(
            files, [stamps[relative] for relative in images], storage_options=storage_options
        )
    else:
        root = Path(location(folder, what="folder to ingest").path)
        shown = str(root)
        # find_images would name this folder after a side of a pair ("reference folder").
        if not root.exists():
            raise FileNotFoundError(f"folder to ingest not found: {root}")
        if not root.is_dir():
            raise NotADirectoryError(
                f"folder to ingest must be a folder of images, got a file: {root}"
            )
        images, _ = find_images(root, side="reference")
        if not images:
            raise ValueError(f"folder {root} contains no images")
        files = [str(root / relative) for relative in images]
        headers = [_local_header(Path(file)) for file in files]
    if target.exists():
        if not overwrite:
            raise FileExistsError(
                f"output {str(target)!r} already exists; pass overwrite to replace it"
            )
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    groups: dict[tuple[tuple[int, ...], str], list[str]] = {}
    failed: dict[str, str] = {}
    where = dict(zip(images, files, strict=True))
    for relative, header in zip(images, headers, strict=True):
        if isinstance(header, ImageDecodeError):
            failed[display_path(relative)] = str(header)
            continue
        groups.setdefault((tuple(header.shape), str(header.dtype)), []).append(relative)
    # The root says what this store is and which files had no readable header (they
    # are in no stack): evaluating the store fails their pairs with this reason.
    zarr.open_group(
        target,
        mode="w-",
        zarr_format=3,
        attributes={
            FORMAT_ATTR: {"version": FORMAT_VERSION, "failed": dict(sorted(failed.items()))}
        },
    )
    plans: list[tuple[str, list[str], da.Array, da.Array, tuple[int, int, int], np.dtype]] = []
    for (shape, dtype_name), members in groups.items():
        dtype = np.dtype(dtype_name)
        full = (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)
        stack, statuses = _stack([where[m] for m in members], full, dtype, storage_options)
        name = _group_name(shape, dtype)
        template = xr.Dataset(
            {
                IMAGES: (_DIMS, stack),
                STATUS: ((STACK_FILE,), np.full(len(members), "", dtype=object)),
            },
            # Names as valid Unicode (bytes that are not UTF-8 as \xNN escapes).
            coords={STACK_FILE: np.asarray([display_path(m) for m in members], dtype=object)},
            attrs={"source_folder": shown, "description": "decoded images, one per chunk"},
        )
        template.to_zarr(
            target,
            group=name,
            mode="a",
            compute=False,
            zarr_format=3,
            consolidated=False,
            # Every chunk is stored, black images too: a chunk file that is missing
            # then always means an incomplete store (see missing_chunks).
            write_empty_chunks=True,
            encoding={IMAGES: {"chunks": (1, *full)}, STATUS: {"chunks": (len(members),)}},
        )
        plans.append((name, members, stack, statuses, full, dtype))
    total = sum(-(-len(p[1]) // _BATCH) for p in plans)
    done = 0
    arrays: dict[str, str] = {}
    for name, members, stack, statuses, full, dtype in plans:
        found = np.empty(len(members), dtype=object)
        for start in range(0, len(members), _BATCH):
            stop = min(start + _BATCH, len(members))
            pixels, texts = dask.compute(stack[start:stop], statuses[start:stop])
            xr.Dataset({IMAGES: (_DIMS, pixels)}).to_zarr(
                target,
                group=name,
                region={STACK_FILE: slice(start, stop)},
                consolidated=False,
                write_empty_chunks=True,
            )
            found[start:stop] = texts
            done += 1
            if on_batch is not None:
                on_batch(done, total, stop - start)
        xr.Dataset({STATUS: ((STACK_FILE,), found)}).to_zarr(
            target,
            group=name,
            region={STACK_FILE: slice(None)},
            consolidated=False,
            write_empty_chunks=True,
        )
        for relative, text in zip(members, found, strict=True):
            if text != STATUS_OK:
                failed[display_path(relative)] = str(text)
        arrays[name] = f"{len(members)} images {full[0]}x{full[1]}x{full[2]} {dtype}"
    return IngestResult(path=target, arrays=arrays, failed=dict(sorted(failed.items())))


def _local_header(path: Path) -> ImageHeader | ImageDecodeError:
    try:
        shape, dtype = read_header(path)
    except ImageDecodeError as error:
        return error
    from pipeline.inputs.files import FileStamp

    return ImageHeader(tuple(shape), dtype, FileStamp(0, 0, 0))


@dataclass(frozen=True)
class _Stack:
    """One size group of an ingest store: the images array, its files and their status."""

    name: str
    images: zarr.Array
    files: list[str]
    status: list[str]


@dataclass(frozen=True)
class _Store:
    """An ingest store opened for reading: its size groups and the files it could not read."""

    path: Path | str
    stacks: tuple[_Stack, ...]
    failed: dict[str, str]

    def locate(self) -> dict[str, tuple[int, int]]:
        """``{file: (stack number, position in the stack)}``."""
        return {
            file: (k, position)
            for k, stack in enumerate(self.stacks)
            for position, file in enumerate(stack.files)
        }


def _open_root(path: Any, storage_options: Mapping[str, Any] | None) -> zarr.Group:
    """The root group of a store given as a path or a URL (read-only)."""
    where = location(path)
    if where.remote:
        return zarr.open_group(store=zarr_store(where, storage_options, read_only=True), mode="r")
    return zarr.open_group(where.path, mode="r")


def is_ingest_store(path: Any, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``path`` is a store written by :func:`ingest_folder` (any version).

    Stores written before the root recorded its format are recognised by their
    layout: a group whose every member group holds ``images`` and ``file``. A URL
    is opened with ``storage_options`` (one that cannot be opened is not one).
    """
    if not isinstance(path, str | os.PathLike):
        return False
    if not is_remote(path):
        try:
            root = Path(location(path).path)
        except ValueError:
            return False
        if not (root / "zarr.json").is_file() and not (root / ".zgroup").is_file():
            return False
    try:
        group = _open_root(path, storage_options)
    except Exception:  # not a readable group: the array sources say why
        return False
    if FORMAT_ATTR in group.attrs:
        return True
    members = [group[name] for name in group.group_keys()]
    return bool(members) and all(
        isinstance(member, zarr.Group) and {IMAGES, STACK_FILE} <= set(member.array_keys())
        for member in members
    )


def _read_store(path: Any, side: str, options: InputOptions) -> _Store:
    """The size groups of one ingest store, checked before any pixel is read.

    Raises
    ------
    ValueError
        A group's arrays disagree in length, its images are not
        ``(file, y, x, channel)`` or are larger than ``max_input_elements``.
    """
    group = _open_root(path, options.storage_options)
    path = redact(path, options.storage_options) if is_remote(path) else Path(location(path).path)
    recorded = group.attrs.get(FORMAT_ATTR, {})
    failed = dict(recorded.get("failed", {})) if isinstance(recorded, dict) else {}
    stacks = []
    for name in sorted(group.group_keys()):
        member = group[name]
        assert isinstance(member, zarr.Group)
        images = member[IMAGES]
        assert isinstance(images, zarr.Array)
        check_input_size(images, f"{side} {name}/{IMAGES}", options)
        stacks.append(_read_stack(member, name, path, side))
    return _Store(path, tuple(stacks), failed)


def _read_stack(member: zarr.Group, name: str, path: Path | str, side: str) -> _Stack:
    """One size group's images, files and statuses (the two small arrays are read)."""
    images = member[IMAGES]
    assert isinstance(images, zarr.Array)
    if images.ndim != 4:
        raise ValueError(
            f"{side} ingest store {str(path)!r}: {name}/{IMAGES} must be shaped "
            f"(file, y, x, channel) (got shape {tuple(images.shape)})"
        )
    n = int(images.shape[0])
    columns = {}
    for column in (STACK_FILE, STATUS):
        if column not in member:
            continue  # a store without status: every slot decoded as far as it says
        array = member[column]
        assert isinstance(array, zarr.Array)
        if tuple(array.shape) != (n,):
            raise ValueError(
                f"{side} ingest store {str(path)!r}: {name}/{column} has shape "
                f"{tuple(array.shape)}, expected ({n},) like {name}/{IMAGES}"
            )
        columns[column] = [str(value) for value in np.asarray(array[...]).tolist()]
    status = columns.get(STATUS, [STATUS_OK] * n)
    return _Stack(name, images, columns[STACK_FILE], status)


def _slot_failure(store: _Store, file: str, where: tuple[int, int] | None) -> str | None:
    """Why ingest could not store ``file`` (None: its slot holds the decoded image)."""
    if where is None:
        return store.failed.get(file)
    return _slot_reason(store.path, file, store.stacks[where[0]].status[where[1]])


def _slot_reason(path: Path | str, file: str, status: str) -> str | None:
    if status == STATUS_OK:
        return None
    if not status:
        return f"{path}: ingest recorded no status for {file} (an interrupted ingest?)"
    return status


def ingest_slots(array: zarr.Array) -> tuple[list[str], list[str | None]] | None:
    """Files and failures of the ingest stack whose ``images`` array is ``array``, else None.

    Evaluating one stack of an ingest store as a Zarr array keeps what ingest
    recorded: its file names become the pair ids and its undecoded slots fail.
    """
    store = array.store
    if not isinstance(store, zarr.storage.LocalStore) or array.ndim != 4:
        return None
    directory = Path(store.root).absolute() / array.path
    if directory.name != IMAGES or not is_ingest_store(directory.parent.parent):
        return None
    group = zarr.open_group(directory.parent, mode="r")
    stack = _read_stack(group, directory.parent.name, directory.parent.parent, "source")
    failures = [
        _slot_reason(directory.parent.parent, file, status)
        for file, status in zip(stack.files, stack.status, strict=True)
    ]
    return stack.files, failures


def open_ingest_pair(
    reference: Any,
    generated: Any,
    channel_axis: int | None = None,
    options: InputOptions | None = None,
) -> SourcePair | None:
    """Two ingest stores as a :class:`SourcePair` with one part per size group.

    Files pair by relative path. A pair whose file ingest could not decode (on
    either side) fails with ingest's reason; a pair whose images differ in shape
    or dtype fails naming both; a file in one store only is listed in the attrs
    ``unpaired_reference`` / ``unpaired_generated``. Returns None when neither
    input is an ingest store.

    Raises
    ------
    ValueError
        Only one input is an ingest store, ``channel_axis`` is not the last
        axis, no file pairs up, or a store's arrays are inconsistent.
    """
    options = InputOptions() if options is None else options
    kinds = [is_ingest_store(source, options.storage_options) for source in (reference, generated)]
    if not any(kinds):
        return None
    if not all(kinds):
        store, other = (reference, "generated") if kinds[0] else (generated, "reference")
        raise ValueError(
            f"{'reference' if kinds[0] else 'generated'} {str(store)!r} is an ingest store but "
            f"{other} is not; pass two ingest stores, or one array of each "
            f"(store/<size group>/{IMAGES})"
        )
    if channel_axis not in (None, -1, 3):
        raise ValueError(
            "ingest stores hold their colour channels last; channel_axis must be None or -1 "
            f"for ingest stores (got {channel_axis})"
        )
    stores = (
        _read_store(reference, "reference", options),
        _read_store(generated, "generated", options),
    )
    return _pair_stores(stores, options)


def _pair_stores(stores: tuple[_Store, _Store], options: InputOptions) -> SourcePair:
    ref, gen = stores
    ref_at, gen_at = ref.locate(), gen.locate()
    ref_files = set(ref_at) | set(ref.failed)
    gen_files = set(gen_at) | set(gen.failed)
    common = ref_files & gen_files
    if not common:
        raise ValueError(
            f"no image pairs: none of the {len(ref_files)} files of reference ingest store "
            f"{str(ref.path)!r} is in generated ingest store {str(gen.path)!r} "
            "(files pair by relative path)"
        )
    # Pairs per (reference stack, generated stack); the parts in the order of their first
    # file, as folders order their size groups.
    parts: dict[tuple[int, int], list[tuple[str, int, int, str | None]]] = {}
    failed: dict[str, str] = {}
    for file in sorted(common):
        where = (ref_at.get(file), gen_at.get(file))
        reasons = [
            reason
            for store, at in zip(stores, where, strict=True)
            if (reason := _slot_failure(store, file, at)) is not None
        ]
        if where[0] is None or where[1] is None:
            failed[file] = "; ".join(reasons)
            continue
        x, y = ref.stacks[where[0][0]].images, gen.stacks[where[1][0]].images
        if x.shape[1:] != y.shape[1:] or x.dtype != y.dtype:
            what = "shape" if x.shape[1:] != y.shape[1:] else "dtype"
            failed[file] = (
                f"{what} mismatch: reference {tuple(x.shape[1:])} {x.dtype}, "
                f"generated {tuple(y.shape[1:])} {y.dtype}"
            )
            continue
        reason = "; ".join(reasons) if reasons else None
        parts.setdefault((where[0][0], where[1][0]), []).append(
            (file, where[0][1], where[1][1], reason)
        )
    groups = [
        _group_pair(stores, key, sorted(members, key=lambda m: m[1]), options)
        for key, members in parts.items()
    ]
    if failed:
        groups = _with_failed_slots(groups, failed, stores)
    order: list[str] = []
    reference_names: list[str] = []
    generated_names: list[str] = []
    status: dict[int, str] = {}
    for group in groups:
        for k, file in enumerate(group.image):
            if k in group.status:
                status[len(order)] = group.status[k]
            order.append(str(file))
        reference_names.extend(str(n) for n in group.reference_names)
        generated_names.extend(str(n) for n in group.generated_names)
    identity = _identity(stores, [list(map(str, g.image)) for g in groups])
    first = groups[0]
    return SourcePair(
        reference=first.reference,
        generated=first.generated,
        image=np.array(order, dtype=object),
        reference_names=np.array(reference_names, dtype=object),
        generated_names=np.array(generated_names, dtype=object),
        native_chunks=first.native_chunks,
        identity=identity,
        status=status,
        groups=tuple(replace(group, identity=identity) for group in groups),
        attrs={
            UNPAIRED_REFERENCE: sorted(ref_files - gen_files),
            UNPAIRED_GENERATED: sorted(gen_files - ref_files),
        },
    )


def _group_pair(
    stores: tuple[_Store, _Store],
    key: tuple[int, int],
    members: list[tuple[str, int, int, str | None]],
    options: InputOptions,
) -> SourcePair:
    """One size group: the two stacks, read straight from the stores where they line up."""
    ref, gen = stores[0].stacks[key[0]], stores[1].stacks[key[1]]
    positions = [[m[1] for m in members], [m[2] for m in members]]
    sources = (ref.images, gen.images)
    # Ingest stacks are (file, y, x, channel): already the canonical layout.
    opened = [dask_from_zarr(array, array.chunks) for array in sources]
    (x, y), direct = zarr_stacks((opened[0], opened[1]), sources, -1, options)
    stacks, statuses = [], []
    for stack, read, array, where in zip((x, y), direct, sources, positions, strict=True):
        status = None if read is None else read.status
        if where != list(range(int(array.shape[0]))):
            # Not every slot pairs up: take the paired ones (no straight reads then).
            stack = stack[where]
            status = None if status is None else status[where]
        stacks.append(stack)
        if status is not None:
            statuses.append(status)
    lined_up = all(s.name == d.name for s, d in zip(stacks, direct, strict=True) if d is not None)
    names = [
        [f"{store.path}/{stack.name}/{IMAGES}[{p}]" for p in where]
        for store, stack, where in zip(stores, (ref, gen), positions, strict=True)
    ]
    return SourcePair(
        reference=stacks[0],
        generated=stacks[1],
        image=np.array([m[0] for m in members], dtype=object),
        reference_names=np.array(names[0], dtype=object),
        generated_names=np.array(names[1], dtype=object),
        native_chunks=(1, int(ref.images.chunks[1]), int(ref.images.chunks[2])),
        status={k: m[3] for k, m in enumerate(members) if m[3] is not None},
        read_status=join_statuses(*statuses) if statuses else None,
        direct=direct if lined_up else (None, None),
    )


def _with_failed_slots(
    groups: list[SourcePair], failed: dict[str, str], stores: tuple[_Store, _Store]
) -> list[SourcePair]:
    """Pairs failed before any read (no common stack) as never-read zeros after the first group."""
    first = groups[0] if groups else None
    shape = (64, 64, 1) if first is None else (*first.image_shape, first.n_channels)
    dtype = np.dtype("uint8") if first is None else first.reference.dtype
    n = len(failed)
    blank = da.zeros((n, *shape), dtype=dtype, chunks=(1, -1, -1, -1))
    files = sorted(failed)
    names = [f"{stores[0].path}: {f}" for f in files], [f"{stores[1].path}: {f}" for f in files]
    status = da.full(n, STATUS_OK, dtype=object, chunks=1)
    part = SourcePair(
        reference=blank,
        generated=blank,
        image=np.array(files, dtype=object),
        reference_names=np.array(names[0], dtype=object),
        generated_names=np.array(names[1], dtype=object),
        native_chunks=(1, 1, 1),
        status={k: failed[f] for k, f in enumerate(files)},
        read_status=status,
    )
    if first is None:
        return [part]
    joined = replace(
        first,
        reference=da.concatenate([first.reference, blank]),
        generated=da.concatenate([first.generated, blank]),
        image=np.concatenate([first.image, part.image]),
        reference_names=np.concatenate([first.reference_names, part.reference_names]),
        generated_names=np.concatenate([first.generated_names, part.generated_names]),
        status={**first.status, **{first.n_images + k: r for k, r in part.status.items()}},
        read_status=None
        if first.read_status is None
        else da.concatenate([first.read_status, status]),
        direct=(None, None),
    )
    return [joined, *groups[1:]]


def _identity(stores: tuple[_Store, _Store], order: list[list[str]]) -> dict[str, Any]:
    """What the run reads: both stores, their groups and the ordered pair list (hashed)."""
    digest = hashlib.sha256()
    for group, files in enumerate(order):
        for file in files:
            digest.update(f"{group}\0{file}\0".encode())
    for store in stores:
        for stack in store.stacks:
            digest.update(f"{stack.name}\0{stack.images.shape}\0".encode())
            digest.update("\0".join(stack.status).encode())
    return {
        "reference": str(stores[0].path),
        "generated": str(stores[1].path),
        "pairs": sum(len(files) for files in order),
        "pair_list_sha256": digest.hexdigest(),
    }
