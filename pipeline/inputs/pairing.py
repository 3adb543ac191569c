"""Pairing a folder of reference images with a folder of generated ones.

The rule, applied by :func:`pair_folders`:

1. **Discovery.** Each folder is walked recursively in sorted order. A file is
   an image when its extension, in any case, is one of
   :data:`pipeline.inputs.images.IMAGE_EXTENSIONS` (every raster format Pillow reads:
   ``.png .jpg .jpeg .webp .avif .jp2 .bmp .gif .tif .tiff`` and more). Hidden
   files and folders (name starting with ``.``), other extensions, symbolic
   links to folders (not followed, so no cycles), unreadable folders and
   entries that are not regular files (named pipes, sockets, devices, or links
   to them, whatever their name: they are never opened) are *skipped* and
   listed in :attr:`PairingPlan.skipped` with the reason.
2. **By relative path.** A reference and a generated file with the same
   relative path (``a/b.png`` on both sides; case-sensitive) form a pair.
3. **By relative stem.** Among the files left over, those whose relative path
   without its extension (the *stem*, ``a/b``) is the same on both sides pair
   up when the stem names exactly one left-over file on each side (real
   ``a/b.png`` with generated ``a/b.jpg``). When a stem names two or more
   left-over files on either side (``a/b.png`` and ``a/b.jpg`` in one folder),
   nothing is guessed: every left-over file of that stem, on both sides, goes to
   :attr:`PairingPlan.ambiguous`.
4. **Unpaired.** Every other image is listed in ``unpaired_reference`` or
   ``unpaired_generated``; nothing is dropped silently.

A pair's id is the reference file's relative path, with ``/`` separators.

**Names are data.** Any bytes a file system allows in a name work (newlines,
control characters, ``$``, ``#``, very long names). Every string of the plan --
ids, unpaired and ambiguous lists, skipped entries -- is valid Unicode, fit for
Zarr, NetCDF and CSV: a name that is not UTF-8 is shown with its other bytes as
``\\xNN`` escapes (:func:`pipeline.inputs.images.display_path`), while the
:class:`ImagePair` paths keep the real name for reading.

**Size groups.** With ``read_headers=True`` (default) the header of every
paired file is read (no pixels decoded, :func:`pipeline.inputs.images.inspect_image`)
and the pairs are grouped by the reference's decoded shape and dtype, so the
engine can stack and evaluate each group separately. A pair whose header cannot
be read (or declares more than ``max_image_pixels`` pixels), or whose two sides
differ in shape or dtype, goes to :attr:`PairingPlan.failed` with the reason
(both shapes and the generated file named). Each file's
:class:`~pipeline.inputs.images.FileStamp` (size, modification time, inode) is kept
with its pair, so that decoding can refuse a file that changed after its header was
read.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.inputs.files import special_file_kind
from pipeline.inputs.images import (
    IMAGE_EXTENSIONS,
    FileStamp,
    ImageDecodeError,
    ImageHeader,
    display_path,
    inspect_image,
    inspect_objects,
)
from pipeline.inputs.objects import list_objects
from pipeline.inputs.options import DEFAULT_MAX_IMAGE_PIXELS
from pipeline.storage.locations import (
    check_exists,
    is_remote,
    location,
    redact,
    remote_error,
)

__all__ = [
    "AmbiguousStem",
    "FailedPair",
    "ImagePair",
    "PairingPlan",
    "SizeGroup",
    "SkippedFile",
    "find_images",
    "pair_folders",
]

SIDES = ("reference", "generated")

# Header reads are small blocking file reads, parsed in Python: threads hide the latency
# of a file system that makes each read wait (a network one), but where reads do not wait
# they only contend for the GIL (2,000 local JPEG headers on 2 cores: 0.18 s on one thread,
# 0.25 s on two, 0.33 s on eight). The first _HEADER_PROBE files are read on the calling
# thread and timed: the rest go to the threads only if those reads waited more than they
# worked.
_HEADER_THREADS = 8
_HEADER_PROBE = 16


@dataclass(frozen=True)
class ImagePair:
    """One reference/generated pair.

    Attributes
    ----------
    id : str
        The reference's relative path, as :func:`~pipeline.inputs.images.display_path` shows it.
    reference, generated : pathlib.Path or str
        The real paths, for reading (URLs of objects in an object store).
    reference_stamp, generated_stamp : FileStamp or None
        Each file as its header was read (None when headers were not read or failed).
    """

    id: str
    reference: Path | str
    generated: Path | str
    reference_stamp: FileStamp | None = None
    generated_stamp: FileStamp | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file or folder left out of discovery, and why.

    Attributes
    ----------
    side : str
        ``"reference"`` or ``"generated"``.
    path : str
        Relative to the folder (as :func:`~pipeline.inputs.images.display_path` shows it).
    reason : str
        Why it was left out.
    location : str
        The entry as the user would name it: the folder as they typed it, joined
        with ``path`` (not part of equality).
    """

    side: str
    path: str
    reason: str
    location: str = field(default="", compare=False)


@dataclass(frozen=True)
class AmbiguousStem:
    """A relative stem that names several left-over files on at least one side."""

    stem: str
    reference: tuple[str, ...]
    generated: tuple[str, ...]


@dataclass(frozen=True)
class FailedPair:
    """A pair that cannot be evaluated (unreadable header, shape or dtype mismatch)."""

    id: str
    reason: str


@dataclass(frozen=True)
class SizeGroup:
    """Pairs whose images decode to the same shape and dtype."""

    shape: tuple[int, ...]
    dtype: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class PairingPlan:
    """Everything found in two folders, before any pixel is decoded.

    Attributes
    ----------
    reference_root, generated_root : pathlib.Path or str
        The two folders, as given (a URL for a folder in an object store).
    pairs : tuple of ImagePair
        Sorted by id.
    unpaired_reference, unpaired_generated : tuple of str
        Relative paths of images with no partner.
    ambiguous : tuple of AmbiguousStem
        Stems that could not be paired without guessing.
    skipped : tuple of SkippedFile
        Hidden files, non-image extensions, special files, folders not entered.
    size_groups : tuple of SizeGroup
        Pairs grouped by decoded shape and dtype (empty without headers).
    failed : tuple of FailedPair
        Pairs whose headers already show they cannot be evaluated.
    """

    reference_root: Path | str
    generated_root: Path | str
    pairs: tuple[ImagePair, ...]
    unpaired_reference: tuple[str, ...]
    unpaired_generated: tuple[str, ...]
    ambiguous: tuple[AmbiguousStem, ...]
    skipped: tuple[SkippedFile, ...]
    size_groups: tuple[SizeGroup, ...] = ()
    failed: tuple[FailedPair, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        """Pair ids, in order."""
        return tuple(pair.id for pair in self.pairs)

    def pair(self, pair_id: str) -> ImagePair:
        """The pair with id ``pair_id``."""
        for candidate in self.pairs:
            if candidate.id == pair_id:
                return candidate
        raise KeyError(f"no pair with id {pair_id!r} (the plan has {len(self.pairs)} pairs)")


def _check_remote_folder(url: str, side: str, storage_options: Mapping[str, Any] | None) -> str:
    """A folder URL (a prefix) checked before any work: the bucket, something under it."""
    where = location(url, what=f"{side} folder")
    fs = check_exists(where, storage_options, what=f"{side} folder")
    try:
        folder = fs.isdir(where.path)
    except Exception as error:
        raise remote_error(
            error, where, what=f"{side} folder", storage_options=storage_options
        ) from None
    if not folder:
        raise NotADirectoryError(
            f"{side} must be a folder of images, got an object: {redact(url, storage_options)}"
        )
    return url.rstrip("/")


def _check_folder(path: str | os.PathLike[str], side: str) -> Path:
    folder = Path(location(path, what=f"{side} folder").path)
    if not folder.exists():
        raise FileNotFoundError(f"{side} folder not found: {display_path(folder)}")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{side} must be a folder of images, got a file: {display_path(folder)}"
        )
    return folder


def find_images(
    root: str | os.PathLike[str],
    *,
    side: str = "reference",
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[tuple[str, ...], tuple[SkippedFile, ...]]:
    """Image files under ``root`` (relative POSIX paths, sorted) and what was skipped.

    Parameters
    ----------
    root : str or path-like
        A folder, walked recursively.
    side : {"reference", "generated"}
        Names the folder in messages and in the skipped entries.
    storage_options : mapping, optional
        Filesystem arguments when ``root`` is a URL (:func:`find_objects`).

    Returns
    -------
    images : tuple of str
        Real relative paths (``root / path`` opens the file; a name that is not
        UTF-8 keeps Python's surrogate escapes here).
    skipped : tuple of SkippedFile
        Everything left out, with the reason; paths shown as valid Unicode.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``root`` is missing or is a file.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)} (got {side!r})")
    if is_remote(root):
        found, left_out, _ = find_objects(str(root), side=side, storage_options=storage_options)
        return found, left_out
    folder = _check_folder(root, side)
    typed = os.fspath(root)
    images: list[str] = []
    skipped: list[SkippedFile] = []

    def skip(relative: str, reason: str) -> None:
        location = display_path(os.path.join(typed, relative) if relative != "." else typed)
        skipped.append(SkippedFile(side, display_path(relative), reason, location))

    pending = [""]
    while pending:
        relative_dir = pending.pop()
        try:
            with os.scandir(folder / relative_dir if relative_dir else folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as error:
            skip(relative_dir or ".", f"unreadable folder ({error.strerror})")
            continue
        subfolders = []
        for entry in entries:
            relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            reason = _skip_reason(entry)
            if reason is not None:
                skip(relative, reason)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(relative)
            else:
                images.append(relative)
        pending.extend(reversed(subfolders))
    return tuple(sorted(images)), tuple(skipped)


def find_objects(
    root: str, *, side: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[tuple[str, ...], tuple[SkippedFile, ...], dict[str, FileStamp]]:
    """:func:`find_images` of a folder URL (a prefix), plus each image object's stamp.

    One listing of the prefix; the rules of local folders: hidden files and folders
    (a key part starting with ``.``) are skipped, a hidden folder once; other
    extensions are skipped. An object store has no links, pipes or devices.
    """
    folder = _check_remote_folder(root, side, storage_options)
    where = location(folder, what=f"{side} folder")
    try:
        entries = list_objects(where, storage_options)
    except Exception as error:
        raise remote_error(
            error, where, what=f"{side} folder", storage_options=storage_options
        ) from None
    shown_root = redact(folder, storage_options)
    images: list[str] = []
    stamps: dict[str, FileStamp] = {}
    skipped: list[SkippedFile] = []
    hidden_folders: set[str] = set()

    def skip(relative: str, reason: str) -> None:
        skipped.append(
            SkippedFile(side, display_path(relative), reason, f"{shown_root}/{relative}")
        )

    for entry in entries:
        parts = entry.relative.split("/")
        hidden = next((k for k, part in enumerate(parts[:-1]) if part.startswith(".")), None)
        if hidden is not None:
            folder_key = "/".join(parts[: hidden + 1])
            if folder_key not in hidden_folders:
                hidden_folders.add(folder_key)
                skip(folder_key, "hidden folder")
            continue
        if parts[-1].startswith("."):
            skip(entry.relative, "hidden file")
            continue
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            skip(
                entry.relative,
                f"extension {display_path(suffix)!r} is not an image type"
                if suffix
                else "no extension",
            )
            continue
        images.append(entry.relative)
        stamps[entry.relative] = entry.stamp
    return tuple(sorted(images)), tuple(skipped), stamps


def _skip_reason(entry: os.DirEntry[str]) -> str | None:
    """Why a folder entry is not an image to pair or a folder to enter; None if it is."""
    try:
        is_dir = entry.is_dir()
        # Both follow a symbolic link (a link to /dev/zero is a device, not a file); for
        # other entries they use the type the folder listing gave, without a system call.
        mode = None if is_dir or entry.is_file() else entry.stat().st_mode
    except OSError:
        # A dangling link or an entry that vanished: kept, so that reading it names
        # the file and the reason (missing, permission) in the pair's status.
        is_dir, mode = False, None
    if entry.name.startswith("."):
        return "hidden folder" if is_dir else "hidden file"
    if is_dir:
        if entry.is_symlink():
            return "symbolic link to a folder (not followed)"
        return None
    kind = special_file_kind(mode) if mode is not None else None
    if kind is not None:
        return f"{kind}, not a regular file (never opened)"
    suffix = Path(entry.name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        return (
            f"extension {display_path(suffix)!r} is not an image type" if suffix else "no extension"
        )
    return None


def _stem(relative_path: str) -> str:
    return PurePosixPath(relative_path).with_suffix("").as_posix()


def _match(
    reference: Iterable[str], generated: Iterable[str]
) -> tuple[list[tuple[str, str]], list[str], list[str], list[AmbiguousStem]]:
    """Apply the pairing rule to two lists of relative paths."""
    ref_set, gen_set = set(reference), set(generated)
    matched = [(path, path) for path in sorted(ref_set & gen_set)]
    by_stem: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for path in sorted(ref_set - gen_set):
        by_stem[_stem(path)][0].append(path)
    for path in sorted(gen_set - ref_set):
        by_stem[_stem(path)][1].append(path)
    unpaired_ref: list[str] = []
    unpaired_gen: list[str] = []
    ambiguous: list[AmbiguousStem] = []
    for stem in sorted(by_stem):
        refs, gens = by_stem[stem]
        if refs and gens:
            if len(refs) == 1 and len(gens) == 1:
                matched.append((refs[0], gens[0]))
            else:
                ambiguous.append(AmbiguousStem(stem, tuple(refs), tuple(gens)))
        else:
            unpaired_ref.extend(refs)
            unpaired_gen.extend(gens)
    matched.sort()
    return matched, sorted(unpaired_ref), sorted(unpaired_gen), ambiguous


def _header(path: Path, max_image_pixels: int) -> ImageHeader | ImageDecodeError:
    try:
        return inspect_image(path, max_image_pixels=max_image_pixels)
    except ImageDecodeError as error:
        return error
    except Exception as error:
        # inspect_image turns decoder failures into ImageDecodeError; anything else
        # still fails this pair only, named with its type.
        return ImageDecodeError(
            path,
            f"header could not be read ({type(error).__name__}: {error})",
            transient=isinstance(error, MemoryError),
        )


def _local_headers(
    paths: list[Path], max_image_pixels: int
) -> list[ImageHeader | ImageDecodeError]:
    """The headers of local files, in order: on this thread, or threads where reads wait."""
    probe = min(len(paths), _HEADER_PROBE)
    wall, work = time.perf_counter(), time.thread_time()
    found = [_header(path, max_image_pixels) for path in paths[:probe]]
    waited = (time.perf_counter() - wall) > 2 * (time.thread_time() - work)
    rest = paths[probe:]
    if waited and rest:
        with ThreadPoolExecutor(max_workers=_HEADER_THREADS) as pool:
            found.extend(pool.map(lambda path: _header(path, max_image_pixels), rest))
    else:
        found.extend(_header(path, max_image_pixels) for path in rest)
    return found


def _group_by_size(
    pairs: tuple[ImagePair, ...],
    max_image_pixels: int,
    stamps: Mapping[str, FileStamp] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[tuple[ImagePair, ...], tuple[SizeGroup, ...], tuple[FailedPair, ...]]:
    """Pairs with their stamps, the size groups, and the pairs that already failed.

    Objects (URLs; ``stamps`` from their listing) have their headers fetched
    together, many requests in flight; local files are read on this thread, or by a few
    threads where reads wait (:func:`_local_headers`).
    """
    paths = [p for pair in pairs for p in (pair.reference, pair.generated)]
    remote = [k for k, path in enumerate(paths) if isinstance(path, str)]
    local = [k for k, path in enumerate(paths) if not isinstance(path, str)]
    headers: list[ImageHeader | ImageDecodeError] = [ImageDecodeError("", "")] * len(paths)
    found = _local_headers([Path(paths[k]) for k in local], max_image_pixels)
    for k, header in zip(local, found, strict=True):
        headers[k] = header
    if remote:
        urls = [str(paths[k]) for k in remote]
        known = stamps or {}
        listed = [known.get(url, FileStamp(0, 0, 0)) for url in urls]
        found_remote = inspect_objects(
            urls, listed, max_image_pixels=max_image_pixels, storage_options=storage_options
        )
        for k, header in zip(remote, found_remote, strict=True):
            headers[k] = header
    groups: dict[tuple[tuple[int, ...], str], list[str]] = {}
    failed: list[FailedPair] = []
    stamped: list[ImagePair] = []
    for index, pair in enumerate(pairs):
        ref, gen = headers[2 * index], headers[2 * index + 1]
        stamped.append(
            ImagePair(
                pair.id,
                pair.reference,
                pair.generated,
                ref.stamp if isinstance(ref, ImageHeader) else None,
                gen.stamp if isinstance(gen, ImageHeader) else None,
            )
        )
        if isinstance(ref, ImageDecodeError) or isinstance(gen, ImageDecodeError):
            reasons = [str(h) for h in (ref, gen) if isinstance(h, ImageDecodeError)]
            failed.append(FailedPair(pair.id, "; ".join(reasons)))
            continue
        if ref.shape != gen.shape or ref.dtype != gen.dtype:
            what = "shape" if ref.shape != gen.shape else "dtype"
            failed.append(
                FailedPair(
                    pair.id,
                    f"{what} mismatch: reference {ref.shape} {ref.dtype}, "
                    f"generated {gen.shape} {gen.dtype} (generated file "
                    f"{_shown_root(pair.generated)})",
                )
            )
            continue
        groups.setdefault((ref.shape, str(ref.dtype)), []).append(pair.id)
    size_groups = tuple(
        SizeGroup(shape, dtype, tuple(ids)) for (shape, dtype), ids in groups.items()
    )
    return tuple(stamped), size_groups, tuple(failed)


def _child(root: Path | str, relative: str) -> Path | str:
    """The file ``relative`` of a folder: a path, or a URL for a folder URL."""
    return f"{root}/{relative}" if isinstance(root, str) else root / relative


def _shown_root(root: Path | str) -> str:
    """A folder or file as messages show it: valid Unicode, a URL without credentials."""
    return redact(root) if isinstance(root, str) else display_path(root)


def _no_images_error(folder: Path | str, side: str, skipped: tuple[SkippedFile, ...]) -> ValueError:
    kinds = " ".join(sorted(IMAGE_EXTENSIONS))
    detail = ""
    if skipped:
        examples = ", ".join(f"{s.path} ({s.reason})" for s in skipped[:3])
        detail = f"; skipped {len(skipped)} entries, e.g. {examples}"
    return ValueError(
        f"{side} folder {_shown_root(folder)} contains no images (looked for {kinds}){detail}"
    )


def pair_folders(
    reference: str | os.PathLike[str],
    generated: str | os.PathLike[str],
    *,
    read_headers: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    storage_options: Mapping[str, Any] | None = None,
) -> PairingPlan:
    """Find and pair the images of two folders (the rule is in the module docstring).

    Parameters
    ----------
    reference, generated : str or path-like
        Folders of real and generated images, walked recursively.
    read_headers : bool
        Read every paired file's header to fill ``size_groups`` and ``failed``
        (cheap: no pixels are decoded). ``False`` leaves both empty.
    max_image_pixels : int
        A file whose header declares more pixels (height x width) fails its pair.
    storage_options : mapping, optional
        Filesystem arguments for a folder given as a URL (``s3://bucket/photos``):
        listed once, paired by the same rules, headers fetched concurrently.

    Returns
    -------
    PairingPlan

    Raises
    ------
    FileNotFoundError
        A folder does not exist.
    NotADirectoryError
        A path is a file, not a folder.
    ValueError
        A folder holds no images, or no image pairs up at all.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for side, ext in (("real", ".png"), ("fake", ".jpg")):
    ...     (root / side).mkdir()
    ...     Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / side / f"a{ext}")
    >>> plan = pair_folders(root / "real", root / "fake")
    >>> plan.ids, plan.size_groups[0].shape
    (('a.png',), (8, 8))
    """
    roots: list[Path | str] = []
    found: list[tuple[tuple[str, ...], tuple[SkippedFile, ...]]] = []
    stamps: dict[str, FileStamp] = {}
    for folder, side in ((reference, "reference"), (generated, "generated")):
        if is_remote(folder):
            url = str(folder).rstrip("/")
            images, skipped, listed = find_objects(url, side=side, storage_options=storage_options)
            stamps.update({f"{url}/{key}": stamp for key, stamp in listed.items()})
            roots.append(url)
            found.append((images, skipped))
        else:
            roots.append(_check_folder(folder, side))
            # The folder as given, so that skipped entries are named as the user typed it.
            found.append(find_images(location(folder).path, side=side))
    ref_root, gen_root = roots
    (ref_images, ref_skipped), (gen_images, gen_skipped) = found
    if not ref_images:
        raise _no_images_error(ref_root, "reference", ref_skipped)
    if not gen_images:
        raise _no_images_error(gen_root, "generated", gen_skipped)
    matched, unpaired_ref, unpaired_gen, ambiguous = _match(ref_images, gen_images)
    if not matched:
        raise ValueError(
            f"no image pairs: none of the {len(ref_images)} reference images in "
            f"{_shown_root(ref_root)} and the {len(gen_images)} generated images in "
            f"{_shown_root(gen_root)} share a relative path or stem "
            f"(e.g. {display_path(ref_images[0])!r} and {display_path(gen_images[0])!r})"
        )
    pairs = tuple(
        sorted(
            (
                ImagePair(display_path(ref), _child(ref_root, ref), _child(gen_root, gen))
                for ref, gen in matched
            ),
            key=lambda pair: pair.id,
        )
    )
    size_groups: tuple[SizeGroup, ...] = ()
    failed: tuple[FailedPair, ...] = ()
    if read_headers:
        pairs, size_groups, failed = _group_by_size(
            pairs, max_image_pixels, stamps, storage_options
        )
    return PairingPlan(
        reference_root=ref_root,
        generated_root=gen_root,
        pairs=pairs,
        unpaired_reference=tuple(display_path(p) for p in unpaired_ref),
        unpaired_generated=tuple(display_path(p) for p in unpaired_gen),
        ambiguous=tuple(
            AmbiguousStem(
                display_path(a.stem),
                tuple(display_path(p) for p in a.reference),
                tuple(display_path(p) for p in a.generated),
            )
            for a in ambiguous
        ),
        skipped=ref_skipped + gen_skipped,
        size_groups=size_groups,
        failed=failed,
    )
