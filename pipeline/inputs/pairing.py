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
(both shapes named). Each file's :class:`~pipeline.inputs.images.FileStamp` (size,
modification time, inode) is kept with its pair, so that decoding can refuse a
file that changed after its header was read.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.inputs.files import special_file_kind
from pipeline.inputs.images import (
    IMAGE_EXTENSIONS,
    FileStamp,
    ImageDecodeError,
    ImageHeader,
    display_path,
    inspect_image,
)
from pipeline.inputs.options import DEFAULT_MAX_IMAGE_PIXELS

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

# Header reads are small blocking file reads: a few threads hide their latency.
_HEADER_THREADS = 8


@dataclass(frozen=True)
class ImagePair:
    """One reference/generated pair.

    Attributes
    ----------
    id : str
        The reference's relative path, as :func:`~pipeline.inputs.images.display_path` shows it.
    reference, generated : pathlib.Path
        The real paths, for reading.
    reference_stamp, generated_stamp : FileStamp or None
        Each file as its header was read (None when headers were not read or failed).
    """

    id: str
    reference: Path
    generated: Path
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
    reference_root, generated_root : pathlib.Path
        The two folders, as given.
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

    reference_root: Path
    generated_root: Path
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


def _check_folder(path: str | os.PathLike[str], side: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{side} folder not found: {display_path(folder)}")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{side} must be a folder of images, got a file: {display_path(folder)}"
        )
    return folder


def find_images(
    root: str | os.PathLike[str], *, side: str = "reference"
) -> tuple[tuple[str, ...], tuple[SkippedFile, ...]]:
    """Image files under ``root`` (relative POSIX paths, sorted) and what was skipped.

    Parameters
    ----------
    root : str or path-like
        A folder, walked recursively.
    side : {"reference", "generated"}
        Names the folder in messages and in the skipped entries.

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


def _group_by_size(
    pairs: tuple[ImagePair, ...], max_image_pixels: int
) -> tuple[tuple[ImagePair, ...], tuple[SizeGroup, ...], tuple[FailedPair, ...]]:
    """Pairs with their stamps, the size groups, and the pairs that already failed."""
    paths = [p for pair in pairs for p in (pair.reference, pair.generated)]
    with ThreadPoolExecutor(max_workers=_HEADER_THREADS) as pool:
        headers = list(pool.map(lambda path: _header(path, max_image_pixels), paths))
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
                    f"generated {gen.shape} {gen.dtype}",
                )
            )
            continue
        groups.setdefault((ref.shape, str(ref.dtype)), []).append(pair.id)
    size_groups = tuple(
        SizeGroup(shape, dtype, tuple(ids)) for (shape, dtype), ids in groups.items()
    )
    return tuple(stamped), size_groups, tuple(failed)


def _no_images_error(folder: Path, side: str, skipped: tuple[SkippedFile, ...]) -> ValueError:
    kinds = " ".join(sorted(IMAGE_EXTENSIONS))
    detail = ""
    if skipped:
        examples = ", ".join(f"{s.path} ({s.reason})" for s in skipped[:3])
        detail = f"; skipped {len(skipped)} entries, e.g. {examples}"
    return ValueError(
        f"{side} folder {display_path(folder)} contains no images (looked for {kinds}){detail}"
    )


def pair_folders(
    reference: str | os.PathLike[str],
    generated: str | os.PathLike[str],
    *,
    read_headers: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
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
    ref_root = _check_folder(reference, "reference")
    gen_root = _check_folder(generated, "generated")
    # The folders as given, so that skipped entries are named as the user typed them.
    ref_images, ref_skipped = find_images(reference, side="reference")
    gen_images, gen_skipped = find_images(generated, side="generated")
    if not ref_images:
        raise _no_images_error(ref_root, "reference", ref_skipped)
    if not gen_images:
        raise _no_images_error(gen_root, "generated", gen_skipped)
    matched, unpaired_ref, unpaired_gen, ambiguous = _match(ref_images, gen_images)
    if not matched:
        raise ValueError(
            f"no image pairs: none of the {len(ref_images)} reference images in "
            f"{display_path(ref_root)} and the {len(gen_images)} generated images in "
            f"{display_path(gen_root)} share a relative path or stem "
            f"(e.g. {display_path(ref_images[0])!r} and {display_path(gen_images[0])!r})"
        )
    pairs = tuple(
        sorted(
            (ImagePair(display_path(ref), ref_root / ref, gen_root / gen) for ref, gen in matched),
            key=lambda pair: pair.id,
        )
    )
    size_groups: tuple[SizeGroup, ...] = ()
    failed: tuple[FailedPair, ...] = ()
    if read_headers:
        pairs, size_groups, failed = _group_by_size(pairs, max_image_pixels)
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
