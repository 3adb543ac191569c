"""Folders of image files as a source: paired by relative path, decoded inside the graph.

:func:`open_folder_pair` is one of the built-in openers of
:func:`pipeline.inputs.opening.open_pair`; it recognises two paths of which at least
one is a folder that is not a Zarr store.
It pairs the files with :func:`pipeline.inputs.pairing.pair_folders` (reading headers only,
never pixels) and returns a :class:`~pipeline.inputs.sources.SourcePair` with one part per
size group (:attr:`SourcePair.groups`), evaluated separately and joined into one
result by :mod:`pipeline.engine.plan`.

The rules, as users see them:

* **Order of the ``image`` axis.** Pairs are ordered by size group (groups in the
  order of their first pair by relative path), then by relative path. A pair
  whose header already shows it cannot be evaluated (unreadable header, shape or
  dtype mismatch) sits in the first group, marked failed.
* **Decoding.** One task decodes both sides of a chunk of pairs
  (:func:`pipeline.inputs.images.decode_batch`, several images per task, tasks in
  parallel on the workers). The engine plans the chunks first and the decode
  tasks are built for exactly those chunks, so every file is decoded once and
  the decoded block itself feeds the SSIM kernel.
* **Failures.** A file that does not decode (corrupt, truncated, zero bytes, not
  an image, unreadable, more pixels than the ``max_image_pixels`` setting, any
  error inside the decoder, or decoding to another shape than its header said)
  fails its pair only: the pair's statistics are NaN with ``count`` 0 and its
  ``status`` holds the reason (file and why, or both shapes for a mismatch);
  every other pair is computed.
* **Files that change under the run.** Each file's size, modification time and
  inode are taken when its header is read; a file replaced, rewritten, grown or
  removed before or while it is decoded fails its pair with the reason, marked
  transient so that ``--resume`` retries it. Its pixels are never scored ``ok``.
* **Names.** The ``image``, ``reference`` and ``generated`` coordinates and every
  listing are valid Unicode: bytes of a name that are not UTF-8 appear as
  ``\\xNN`` escapes (:func:`pipeline.inputs.images.display_path`); files are read by
  their real names.
* **Not evaluated, never dropped.** Unpaired files (including both sides of an
  ambiguous stem) are listed in the result attrs ``unpaired_reference`` and
  ``unpaired_generated``; ambiguous stems in ``ambiguous``; skipped entries
  (hidden files, other extensions, named pipes, sockets and devices, which are
  never opened) in ``skipped_files`` as ``"<folder as given>/<path> (<reason>)"``;
  the groups in ``size_groups`` (JSON).
* **Resume.** The source fingerprint covers the ordered pair list and each
  file's size and modification time, so a store is only resumed from the very
  same files.
* **Colour.** Grey files are one channel, colour files three; alpha is dropped
  (the rule of :mod:`pipeline.inputs.images`). With ``color_mode="luma"`` grey groups
  are scored as they are.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from pipeline.inputs.images import FileStamp, decode_batch, display_path
from pipeline.inputs.options import DEFAULT_MAX_IMAGE_PIXELS, InputOptions
from pipeline.inputs.pairing import PairingPlan, pair_folders
from pipeline.inputs.shared_reads import SlotSpace, read_part, shared_reads
from pipeline.inputs.sources import SourcePair
from pipeline.results.schema import (
    AMBIGUOUS,
    SKIPPED_FILES,
    STATUS_OK,
    UNPAIRED_GENERATED,
    UNPAIRED_REFERENCE,
)
from pipeline.storage.locations import filesystem, is_remote, location, redact

__all__ = ["folder_source", "is_image_folder", "open_folder_pair", "pair_folder_files"]

# Shape of the stand-in group when no pair has a readable header: every slot is a
# known failure, nothing is decoded; big enough for any usual window.
_PLACEHOLDER_SHAPE = (64, 64)


@dataclass(frozen=True)
class _Member:
    """One pair inside a size group: its id, files and a failure known from headers."""

    id: str
    reference: str
    generated: str
    failure: str | None
    reference_stamp: FileStamp | None = None
    generated_stamp: FileStamp | None = None


@dataclass(frozen=True)
class _Decoding:
    """How the files of a folder source are decoded (the rules of :mod:`pipeline.inputs.images`).

    ``storage_options`` go with the decode tasks, so that a worker (a thread or a
    distributed worker) opens the filesystem of objects given as URLs itself.
    """

    alpha: str
    max_image_pixels: int
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)


def is_image_folder(path: Any, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``path`` is a non-empty folder that is not a Zarr store (a folder of images).

    An empty folder is left to the other sources (it is neither; their error says so).
    A URL is a folder when objects lie under it as a prefix (and no Zarr metadata);
    one that cannot be reached is left to the other sources too, whose check names it.
    """
    if not isinstance(path, str | os.PathLike):
        return False
    if is_remote(path):
        return _is_remote_image_folder(str(path), storage_options)
    try:
        folder = Path(location(path).path)
    except ValueError:
        return False
    if not folder.is_dir():
        return False
    if any((folder / name).exists() for name in ("zarr.json", ".zgroup", ".zarray")):
        return False
    try:
        return any(True for _ in folder.iterdir())
    except OSError:
        return True  # unreadable: pairing names the folder and the reason


def _is_remote_image_folder(url: str, storage_options: Mapping[str, Any] | None) -> bool:
    try:
        where = location(url)
        fs = filesystem(where, storage_options)
        prefix = where.path.rstrip("/")
        if where.scheme in ("http", "https") or not fs.isdir(prefix):
            return False
        return not any(
            fs.exists(f"{prefix}/{name}") for name in ("zarr.json", ".zgroup", ".zarray")
        )
    except Exception:  # unreachable, refused, no such bucket: the Zarr source names it
        return False


def _shown(path: str | os.PathLike[str]) -> str:
    """A file as the results name it: absolute, so a report run from another folder finds
    it, and valid Unicode (:func:`pipeline.inputs.images.display_path`); an object's URL
    with any credentials removed; ``""`` (no file: a model that lacks this pair) stays ``""``."""
    if not os.fspath(path):
        return ""
    if is_remote(path):
        return redact(path)
    return display_path(Path(path).absolute())


def open_folder_pair(
    reference: Any,
    generated: Any,
    channel_axis: int | None = None,
    options: InputOptions | None = None,
) -> SourcePair | None:
    """Two folders of images as a :class:`SourcePair` with one part per size group.

    Returns None when neither input is a folder of images (other openers then try).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        One side is a folder, the other is missing or is a file.
    ValueError
        A folder has no images, no file pairs up, or ``channel_axis`` is set to
        something else than the last axis.
    """
    options = options if options is not None else InputOptions()
    if not (
        is_image_folder(reference, options.storage_options)
        or is_image_folder(generated, options.storage_options)
    ):
        return None
    plan = pair_folder_files(reference, generated, channel_axis, options)
    return folder_source(
        plan,
        max_image_pixels=options.max_image_pixels,
        storage_options=options.storage_options,
    )


def pair_folder_files(
    reference: Any, generated: Any, channel_axis: int | None, options: InputOptions
) -> PairingPlan:
    """The :class:`PairingPlan` of two folders (listed, paired, headers read).

    Raises
    ------
    ValueError
        ``channel_axis`` set to something else than the last axis (folders are decoded
        with colour channels last).
    """
    if channel_axis not in (None, -1, 2):
        raise ValueError(
            "folders of images are decoded with colour channels last; channel_axis must be "
            f"None or -1 for folder sources (got {channel_axis})"
        )
    return pair_folders(
        reference,
        generated,
        max_image_pixels=options.max_image_pixels,
        storage_options=options.storage_options,
    )


def folder_source(
    plan: PairingPlan,
    *,
    alpha: str = "drop",
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    storage_options: Mapping[str, Any] | None = None,
    shared_reference: bool = False,
) -> SourcePair:
    """The :class:`SourcePair` of a :class:`~pipeline.inputs.pairing.PairingPlan` (headers read).

    The ``image``, ``reference`` and ``generated`` coordinates are valid Unicode
    (:func:`~pipeline.inputs.images.display_path`); the decode tasks read the real paths and
    refuse a file whose stamp differs from the one taken when its header was read.

    With ``shared_reference`` each side is decoded by tasks of its own, the reference
    tasks keyed by the reference files alone: several generated folders paired with the
    same references (one run of several models) then share the graph keys of the
    reference decoding, so Dask decodes each reference once for all of them.
    """
    failures = {failed.id: failed.reason for failed in plan.failed}
    pairs = {pair.id: pair for pair in plan.pairs}
    layouts: list[tuple[tuple[int, ...], str, list[str]]] = [
        (group.shape, group.dtype, list(group.ids)) for group in plan.size_groups
    ]
    if not layouts:
        layouts = [(_PLACEHOLDER_SHAPE, "uint8", [])]
    # Pairs known to have failed take a (never decoded) slot in the first group, unless
    # the plan's groups place them (several models: the reference's group).
    placed = {pair_id for _, _, ids in layouts for pair_id in ids}
    layouts[0][2].extend(pair_id for pair_id in failures if pair_id not in placed)
    layouts[0][2].sort()
    identity = _identity(plan, [ids for _, _, ids in layouts])
    groups: list[SourcePair] = []
    status: dict[int, str] = {}
    order: list[str] = []
    for shape, dtype, ids in layouts:
        members = [
            _Member(
                i,
                str(pairs[i].reference),
                str(pairs[i].generated),
                failures.get(i),
                pairs[i].reference_stamp,
                pairs[i].generated_stamp,
            )
            for i in ids
        ]
        for member in members:
            if member.failure is not None:
                status[len(order)] = member.failure
            order.append(member.id)
        groups.append(
            _group_pair(
                tuple(members),
                shape,
                np.dtype(dtype),
                identity,
                _Decoding(alpha, max_image_pixels, dict(storage_options or {})),
                (1,) * len(ids),
                shared_reference,
            )
        )
    first = groups[0]
    ambiguous_ref = [p for stem in plan.ambiguous for p in stem.reference]
    ambiguous_gen = [p for stem in plan.ambiguous for p in stem.generated]
    attrs: dict[str, Any] = {
        UNPAIRED_REFERENCE: sorted([*plan.unpaired_reference, *ambiguous_ref]),
        UNPAIRED_GENERATED: sorted([*plan.unpaired_generated, *ambiguous_gen]),
        AMBIGUOUS: [
            f"{stem.stem}: reference {list(stem.reference)}, generated {list(stem.generated)}"
            for stem in plan.ambiguous
        ],
        SKIPPED_FILES: [f"{s.location or s.path} ({s.reason})" for s in plan.skipped],
    }
    by_id = {pair.id: pair for pair in plan.pairs}
    return SourcePair(
        reference=first.reference,
        generated=first.generated,
        image=np.array(order, dtype=object),
        reference_names=np.array([_shown(by_id[i].reference) for i in order], dtype=object),
        generated_names=np.array([_shown(by_id[i].generated) for i in order], dtype=object),
        native_chunks=first.native_chunks,
        identity=identity,
        status=status,
        groups=tuple(groups),
        attrs=attrs,
    )


def _identity(plan: PairingPlan, order: Sequence[Sequence[str]]) -> dict[str, Any]:
    """What the run reads: roots, the ordered pair list and every file's size and mtime.

    The list itself goes into a hash (the attrs stay small for 100,000 pairs).
    """
    digest = hashlib.sha256()
    by_id = {pair.id: pair for pair in plan.pairs}
    for group, ids in enumerate(order):
        for pair_id in ids:
            pair = by_id[pair_id]
            digest.update(f"{group}\0{pair_id}\0".encode("utf-8", "surrogateescape"))
            for path, stamp in (
                (pair.reference, pair.reference_stamp),
                (pair.generated, pair.generated_stamp),
            ):
                name = path.rsplit("/", 1)[-1] if isinstance(path, str) else path.name
                digest.update(os.fsencode(name) + b"\0")
                if stamp is None:
                    if isinstance(path, str):  # an object whose header failed: no stamp
                        digest.update(b"missing\0")
                        continue
                    try:
                        info = path.stat()
                    except OSError:
                        digest.update(b"missing\0")
                        continue
                    stamp = FileStamp.of(info)
                digest.update(f"{stamp.size}\0{stamp.mtime_ns}\0".encode())
    return {
        "reference": _shown_root(plan.reference_root),
        "generated": _shown_root(plan.generated_root),
        "pairs": sum(len(ids) for ids in order),
        "pair_list_sha256": digest.hexdigest(),
    }


def _shown_root(root: Path | str) -> str:
    return redact(root) if isinstance(root, str) else display_path(root)


def _stamp_fields(stamp: FileStamp | None) -> tuple[int, int, int] | None:
    return None if stamp is None else (stamp.size, stamp.mtime_ns, stamp.inode)


def _member_fields(members: tuple[_Member, ...]) -> tuple[tuple[Any, ...], ...]:
    """The members as tuples of their fields, the same content for :func:`dask.base.tokenize`.

    Dask tokenizes these ~10x faster than the dataclasses themselves (8 against 100 ms
    for 1,000 pairs).
    """
    return tuple(
        (
            m.id,
            m.reference,
            m.generated,
            m.failure,
            _stamp_fields(m.reference_stamp),
            _stamp_fields(m.generated_stamp),
        )
        for m in members
    )


def _group_pair(
    members: tuple[_Member, ...],
    shape: tuple[int, ...],
    dtype: np.dtype,
    identity: dict[str, Any],
    decoding: _Decoding,
    image_chunks: tuple[int, ...],
    shared_reference: bool = False,
) -> SourcePair:
    """One size group as lazy decoded stacks chunked ``image_chunks`` along ``image``."""
    height, width = int(shape[0]), int(shape[1])
    channels = int(shape[2]) if len(shape) == 3 else 1
    token = tokenize(_member_fields(members), shape, str(dtype), decoding, image_chunks)
    pixels = np.empty((0,) * 4, dtype=dtype)
    chunks = (tuple(image_chunks), (height,), (width,), (channels,))
    slots = _Slots(members, (height, width, channels), str(dtype), decoding)
    if shared_reference:
        arrays, status = _side_reads(slots, image_chunks, chunks, pixels, token)
    else:
        # One task decodes both sides of a chunk of pairs; the two stacks and the statuses
        # are its three parts.
        decoded = shared_reads(
            slots, _decode_slots, chunks=(tuple(image_chunks),), name=f"decode-image-files-{token}"
        )
        arrays = {
            side: read_part(decoded, k, meta=pixels, chunks=chunks, name=f"{side}-files-{token}")
            for k, side in enumerate(("reference", "generated"))
        }
        status = read_part(
            decoded, 2, meta=np.empty((0,), dtype=object), name=f"read-status-{token}"
        )

    def rechunked(new_chunks: tuple[int, ...]) -> SourcePair:
        return _group_pair(
            members, shape, dtype, identity, decoding, tuple(new_chunks), shared_reference
        )

    return SourcePair(
        reference=arrays["reference"],
        generated=arrays["generated"],
        image=np.array([m.id for m in members], dtype=object),
        reference_names=np.array([_shown(m.reference) for m in members], dtype=object),
        generated_names=np.array([_shown(m.generated) for m in members], dtype=object),
        # Each file is read whole and independently: any tiling is as cheap as any other.
        native_chunks=(1, 1, 1),
        identity=identity,
        status={k: m.failure for k, m in enumerate(members) if m.failure is not None},
        read_status=status,
        rechunked=rechunked,
    )


def _side_reads(
    slots: _Slots,
    image_chunks: tuple[int, ...],
    chunks: tuple[tuple[int, ...], ...],
    pixels: np.ndarray,
    token: str,
) -> tuple[dict[str, da.Array], da.Array]:
    """Both sides decoded by tasks of their own; the reference tasks keyed by its files only.

    The reference decode tasks see the reference files alone (paths, stamps; every one
    decoded, also of a pair known to have failed, whose values are never scores) and
    their key depends on those, the group's shape, dtype, decoding rules and chunks:
    equal for every generated folder paired with the same references, so their graphs
    computed together decode each reference once.
    """
    references = tuple(
        _Member(m.id, m.reference, "", None, m.reference_stamp, None) for m in slots.members
    )
    arrays: dict[str, da.Array] = {}
    statuses = []
    for k, side in enumerate(("reference", "generated")):
        members = references if k == 0 else slots.members
        space = _SideSlots(members, slots.image_shape, slots.pixel_dtype, slots.decoding, k)
        side_token = token
        if k == 0:
            side_token = tokenize(
                _member_fields(references),
                slots.image_shape,
                slots.pixel_dtype,
                slots.decoding,
                image_chunks,
            )
        decoded = shared_reads(
            space,
            _decode_side,
            chunks=(tuple(image_chunks),),
            name=f"decode-{side}-files-{side_token}",
        )
        arrays[side] = read_part(
            decoded, 0, meta=pixels, chunks=chunks, name=f"{side}-side-files-{side_token}"
        )
        statuses.append(
            read_part(
                decoded,
                1,
                meta=np.empty((0,), dtype=object),
                name=f"{side}-side-status-{side_token}",
            )
        )
    known = np.empty(len(slots.members), dtype=object)
    known[:] = [m.failure for m in slots.members]
    status = da.map_blocks(
        _join_side_status,
        *statuses,
        da.from_array(known, chunks=(tuple(image_chunks),), name=f"known-failures-{token}"),
        dtype=object,
        meta=np.empty((0,), dtype=object),
        name=f"read-status-sides-{token}",
    )
    return arrays, status


def _join_side_status(
    reference: np.ndarray, generated: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Each slot's status as one task decoding both sides gives it.

    A pair known to have failed keeps that reason; otherwise ``"ok"`` or the reasons
    of its files, the reference's first.
    """
    out = np.empty(len(reference), dtype=object)
    for k, (ref, gen) in enumerate(zip(reference, generated, strict=True)):
        if known[k] is not None:
            out[k] = known[k]
        elif ref == STATUS_OK or gen == STATUS_OK:
            out[k] = gen if ref == STATUS_OK else ref
        else:
            out[k] = f"{ref}; {gen}"
    return out


@dataclass(frozen=True)
class _SideSlots(SlotSpace):
    """One side of the pairs of a size group (``side`` 0: reference, 1: generated)."""

    members: tuple[_Member, ...]
    image_shape: tuple[int, int, int]
    pixel_dtype: str
    decoding: _Decoding
    side: int

    def __len__(self) -> int:
        return len(self.members)


def _decode_side(slots: _SideSlots, key: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One task: decode one side of a chunk of pairs (pairs known to have failed: zeros).

    Each slot's status is ``"ok"`` or that file's reasons; a pair known to have failed
    (never on the reference side, see :func:`_side_reads`) is not decoded, and its
    reason is joined in by :func:`_join_side_status`.
    """
    chunk = slots.members[key[0]]
    shape, dtype = slots.image_shape, slots.pixel_dtype
    n = len(chunk)
    status = np.empty(n, dtype=object)
    live = [k for k, m in enumerate(chunk) if m.failure is None]
    for k, m in enumerate(chunk):
        if m.failure is not None:
            status[k] = STATUS_OK
    if not live:
        return np.zeros((n, *shape), dtype=dtype), status
    pick = [
        (chunk[k].reference, chunk[k].reference_stamp)
        if slots.side == 0
        else (chunk[k].generated, chunk[k].generated_stamp)
        for k in live
    ]
    decoded, found = decode_batch(
        [path for path, _ in pick],
        shape=shape[:2] if shape[2] == 1 else shape,
        dtype=dtype,
        alpha=slots.decoding.alpha,
        max_image_pixels=slots.decoding.max_image_pixels,
        stamps=[stamp for _, stamp in pick],
        storage_options=slots.decoding.storage_options,
    )
    for k, text in zip(live, found, strict=True):
        status[k] = text
    return _placed(decoded, live, n, shape, dtype), status


def _placed(
    part: np.ndarray, live: list[int], n: int, shape: tuple[int, ...], dtype: str
) -> np.ndarray:
    """The images of ``part`` in their slots ``live`` of a block of ``n``, zeros elsewhere.

    When every slot is live (the usual case) the block is ``part`` itself: no second copy.
    """
    if len(live) == n:
        return part.reshape(n, *shape)
    out = np.zeros((n, *shape), dtype=dtype)
    out[live] = part.reshape(len(live), *shape)
    return out


@dataclass(frozen=True)
class _Slots(SlotSpace):
    """The pairs of a size group, as the decode tasks read them (slot ``k``: ``members[k]``)."""

    members: tuple[_Member, ...]
    image_shape: tuple[int, int, int]
    pixel_dtype: str
    decoding: _Decoding

    def __len__(self) -> int:
        return len(self.members)


def _decode_slots(
    slots: _Slots, key: tuple[slice, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decode task of the slots ``key`` selects (:func:`_decode_pairs`)."""
    chunk = slots.members[key[0]]
    return _decode_pairs(
        tuple(m.reference for m in chunk),
        tuple(m.generated for m in chunk),
        tuple(m.failure for m in chunk),
        slots.image_shape,
        slots.pixel_dtype,
        slots.decoding,
        tuple(m.reference_stamp for m in chunk),
        tuple(m.generated_stamp for m in chunk),
    )


def _decode_pairs(
    references: tuple[str, ...],
    generated: tuple[str, ...],
    failures: tuple[str | None, ...],
    shape: tuple[int, int, int],
    dtype: str,
    decoding: _Decoding,
    reference_stamps: tuple[FileStamp | None, ...],
    generated_stamps: tuple[FileStamp | None, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One task: decode both sides of a chunk of pairs; never raises for a bad file.

    Returns the two ``(pairs, y, x, channels)`` stacks (zeros where a pair failed)
    and each pair's status, ``"ok"`` or the reasons joined by ``"; "``.
    """
    n = len(references)
    live = [k for k in range(n) if failures[k] is None]
    image_shape = shape[:2] if shape[2] == 1 else shape
    statuses: list[list[str]] = [[] for _ in range(n)]
    if not live:
        blank = np.zeros((n, *shape), dtype=dtype)
        stacks = [blank, blank.copy()]
    else:
        # Both sides in one batch (they share the group's shape and dtype): objects in an
        # object store are then all fetched at once, many requests in flight.
        decoded, found = decode_batch(
            [references[k] for k in live] + [generated[k] for k in live],
            shape=image_shape,
            dtype=dtype,
            alpha=decoding.alpha,
            max_image_pixels=decoding.max_image_pixels,
            stamps=[reference_stamps[k] for k in live] + [generated_stamps[k] for k in live],
            storage_options=decoding.storage_options,
        )
        stacks = []
        for side in range(2):
            part = decoded[side * len(live) : (side + 1) * len(live)]
            out = _placed(part, live, n, shape, dtype)
            texts = found[side * len(live) : (side + 1) * len(live)]
            for k, text in zip(live, texts, strict=True):
                if text != STATUS_OK:
                    statuses[k].append(text)
            stacks.append(out)
    status = np.empty(n, dtype=object)
    for k in range(n):
        known = failures[k]
        if known is not None:
            status[k] = known
        else:
            status[k] = "; ".join(statuses[k]) if statuses[k] else STATUS_OK
    return stacks[0], stacks[1], status
