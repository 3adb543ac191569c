"""Decoding one image file to a NumPy array, the way the evaluation sees it.

The rules, applied identically by :func:`read_header` (no pixels decoded) and
:func:`decode_image`, so that a plan made from headers always matches the
decoded arrays:

* **Formats.** Every raster format Pillow reads (PNG, JPEG, WebP, AVIF, JPEG
  2000, BMP, GIF, PPM, QOI, PSD, ICO, TGA, ... :data:`IMAGE_EXTENSIONS`) through
  Pillow; TIFF through ``tifffile``. The decoder is chosen from the file's first
  bytes, not its extension, so a mis-named file still decodes (and a non-image
  is refused). EPS is not read: Pillow would run Ghostscript on it.
* **Layout.** Grey -> ``(y, x)``; colour -> ``(y, x, 3)`` in R, G, B order.
  Bilevel (mode ``1``) -> uint8 0/255. Palette images are expanded to RGB.
  CMYK and YCbCr JPEGs are converted to RGB by Pillow.
* **Bit depth.** 8-bit stays uint8, 16-bit grey PNG and 16-bit TIFF stay uint16
  (so ``data_range`` comes out as 65535, never a rescaled guess). Float TIFFs
  keep their float dtype; the engine then asks for ``data_range``. 16-bit
  *colour* PNG is refused: Pillow silently reduces it to 8 bits per channel,
  which would give a plausible but wrong score; save such images as 16-bit TIFF.
* **Alpha** (``alpha="drop"``, the default): the alpha channel is discarded and
  the colour channels are scored as stored. This is what ``Image.convert("RGB")``
  does, which is how the common GAN evaluation loaders (torchvision's
  ``pil_loader``, clean-fid, torch-fidelity) read RGBA files, so SSIM is computed
  on the pixels those tools see. ``alpha="composite"`` instead composites over
  black (``rgb * alpha / max``, rounded), for outputs whose transparent pixels
  hold meaningless colour.
* **EXIF orientation is not applied.** Arrays are the pixels as stored. The
  loaders generators are trained and evaluated with do not rotate by EXIF, and
  generated files rarely carry the tag: rotating one side only would compare a
  rotated reference with an unrotated output.
* **Size.** A file that declares more than ``max_image_pixels`` pixels
  (default :data:`pipeline.inputs.options.DEFAULT_MAX_IMAGE_PIXELS`, 178,956,970, the
  bound Pillow itself refuses beyond) is refused from its header, before any
  pixel memory is allocated, in every format. Files are read through the open
  file, never whole: a decoder reads what its format needs.
* **Only regular files** are opened, without blocking: a FIFO, socket or device
  named like an image is refused unread.
* **Bad files** (zero bytes, not an image, corrupt, truncated, unreadable,
  multi-frame, too large) raise :class:`ImageDecodeError` naming the file and
  the reason. Truncation is detected, never padded:
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left ``False``, PNG chunk checksums are
  verified and every image is fully loaded. Any exception from inside Pillow or
  tifffile, anticipated or not, becomes an :class:`ImageDecodeError`.
* **Files that change.** :func:`inspect_image` returns a :class:`FileStamp`
  (size, modification time, inode); given it, :func:`decode_image` refuses a file
  that was replaced, rewritten or grown since then, or while it was decoded (a
  *transient* failure: ``--resume`` retries it).
* **Names** are shown (statuses, ids) with :func:`display_path`: bytes that are
  not UTF-8 become ``\\xNN`` escapes; the real path is kept for reading, and
  :func:`path_from_display` gives it back from the shown text.

The decoders themselves -- how Pillow and tifffile are driven -- are in
:mod:`pipeline.inputs.formats`; how files are named, stamped and opened, and
:class:`ImageDecodeError` (importable from here too), in :mod:`pipeline.inputs.files`.
This module picks a decoder from a file's first bytes and holds the public functions.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from pipeline.inputs.files import (
    FileStamp,
    ImageDecodeError,
    check_unchanged,
    display_path,
    open_image_file,
    path_from_display,
)
from pipeline.inputs.formats import (
    PILLOW_EXTENSIONS,
    PILLOW_FORMATS,
    TIFF_EXTENSIONS,
    decode_pillow,
    decode_tiff,
    decoder_failure,
    is_tiff,
    pillow_header,
    read_head,
    tiff_header,
)
from pipeline.inputs.objects import HEAD_BYTES, fetch_heads, fetch_objects
from pipeline.inputs.options import DEFAULT_MAX_IMAGE_PIXELS
from pipeline.storage.locations import is_url, redact

__all__ = [
    "ALPHA_RULES",
    "IMAGE_EXTENSIONS",
    "FileStamp",
    "ImageDecodeError",
    "ImageHeader",
    "decode_batch",
    "decode_image",
    "decode_image_bytes",
    "display_path",
    "inspect_image",
    "inspect_objects",
    "path_from_display",
    "read_header",
]

#: File name extensions (lower case) treated as images when discovering folders:
#: those of every Pillow format in ``PILLOW_FORMATS`` and of tifffile.
IMAGE_EXTENSIONS = frozenset(
    {ext for name in PILLOW_FORMATS for ext in PILLOW_EXTENSIONS[name]} | set(TIFF_EXTENSIONS)
)

ALPHA_RULES = ("drop", "composite")


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, and the file it was read from.

    Attributes
    ----------
    shape : tuple of int
        ``(y, x)`` for grey, ``(y, x, 3)`` for colour (alpha removed).
    dtype : numpy.dtype
    stamp : FileStamp
        Size, modification time and inode of the file when the header was read.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    stamp: FileStamp


def _check_alpha(alpha: str) -> None:
    if alpha not in ALPHA_RULES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_RULES)} (got {alpha!r})")


def _check_max_pixels(max_image_pixels: int) -> None:
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int | np.integer):
        raise TypeError(
            f"max_image_pixels must be an integer (got {type(max_image_pixels).__name__})"
        )
    if max_image_pixels < 1:
        raise ValueError(f"max_image_pixels must be >= 1 (got {max_image_pixels})")


def inspect_image(
    path: str | os.PathLike[str], *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> ImageHeader:
    """Shape and dtype that :func:`decode_image` will return, and the file's stamp.

    No pixels are decoded; only the header is read.

    Parameters
    ----------
    path : str or path-like
        An image file.
    max_image_pixels : int
        Larger images (height x width) are refused.

    Returns
    -------
    ImageHeader

    Raises
    ------
    ImageDecodeError
        When the file is missing, unreadable, empty, not a regular file, not an
        image, larger than ``max_image_pixels`` or its header is damaged. A
        damaged pixel stream is only found by :func:`decode_image`.
    """
    _check_max_pixels(max_image_pixels)
    file = Path(path)
    handle, info = open_image_file(file)
    with handle:
        try:
            head = read_head(file, handle)
        except Exception as error:
            raise decoder_failure(file, error) from None
        if is_tiff(head):
            shape, dtype = tiff_header(file, handle, max_image_pixels)
        else:
            shape, name = pillow_header(file, handle, info.st_size, max_image_pixels)
            dtype = np.dtype(name)
    return ImageHeader(shape, dtype, FileStamp.of(info))


def read_header(
    path: str | os.PathLike[str], *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype that :func:`decode_image` will return, without decoding pixels.

    Parameters
    ----------
    path : str or path-like
        An image file.
    max_image_pixels : int
        Larger images (height x width) are refused.

    Returns
    -------
    shape : tuple of int
        ``(y, x)`` for grey, ``(y, x, 3)`` for colour (alpha removed).
    dtype : numpy.dtype

    Raises
    ------
    ImageDecodeError
        As :func:`inspect_image`.
    """
    header = inspect_image(path, max_image_pixels=max_image_pixels)
    return header.shape, header.dtype


def decode_image(
    path: str | os.PathLike[str],
    *,
    alpha: str = "drop",
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    expected: FileStamp | None = None,
) -> np.ndarray:
    """Decode one image file to a NumPy array (rules in the module docstring).

    Parameters
    ----------
    path : str or path-like
        An image file in any format of :data:`IMAGE_EXTENSIONS` (the name does
        not matter: the format is found from the content).
    alpha : {"drop", "composite"}
        What to do with an alpha channel: discard it (default, as
        ``Image.convert("RGB")`` does) or composite the colour over black.
    max_image_pixels : int
        Larger images (height x width) are refused before decoding.
    expected : FileStamp, optional
        The stamp from :func:`inspect_image`: a file that differs from it (or
        changes while it is read) is refused as changed.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` or ``(y, x, 3)``; uint8, uint16 (16-bit files) or the file's
        own dtype.

    Raises
    ------
    ImageDecodeError
        For a missing, unreadable, empty, special, changed, too large, non-image,
        corrupt or truncated file, and for any exception inside the decoder.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
    >>> Image.fromarray(np.full((4, 6), 7, dtype=np.uint8)).save(file)
    >>> decode_image(file).shape
    (4, 6)
    """
    _check_alpha(alpha)
    _check_max_pixels(max_image_pixels)
    file = Path(path)
    handle, info = open_image_file(file, expected)
    with handle:
        try:
            head = read_head(file, handle)
        except Exception as error:
            raise decoder_failure(file, error) from None
        if is_tiff(head):
            array = decode_tiff(file, handle, alpha, max_image_pixels)
        else:
            array = decode_pillow(file, handle, info.st_size, alpha, max_image_pixels)
        check_unchanged(file, handle, info)
    return array


def decode_batch(
    paths: Sequence[str | os.PathLike[str]],
    *,
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | str | None = None,
    alpha: str = "drop",
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    stamps: Sequence[FileStamp | None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode several files of one size group into a stack; failures become statuses.

    Meant to run as one Dask task: it never raises for a bad file (any exception
    while reading or decoding one file becomes that file's status), so one bad
    image costs its own pair only.

    Parameters
    ----------
    paths : sequence of path-like
        Files expected to share ``shape`` and ``dtype``.
    shape, dtype : optional
        The group's image shape and dtype (from :func:`read_header`). When not
        given, those of the first file that decodes are used.
    alpha : {"drop", "composite"}
        See :func:`decode_image`.
    max_image_pixels : int
        See :func:`decode_image`.
    stamps : sequence of FileStamp or None, optional
        One per path, from :func:`inspect_image`: a file changed since is refused.
    storage_options : mapping, optional
        Filesystem arguments for paths given as URLs. The objects of all such paths
        are fetched together first (:func:`pipeline.inputs.objects.fetch_objects`:
        many requests in flight), then decoded from their bytes one by one.

    Returns
    -------
    stack : numpy.ndarray
        ``(len(paths), *shape)``; the slot of a failed file is zero-filled.
    statuses : tuple of str
        ``"ok"`` or the failure message (file and reason) for each path.

    Raises
    ------
    ValueError
        When ``shape``/``dtype`` are not given and no file decodes, so the
        stack's shape is unknown, or ``stamps`` is not one per path.
    """
    _check_alpha(alpha)
    _check_max_pixels(max_image_pixels)
    if stamps is not None and len(stamps) != len(paths):
        raise ValueError(
            f"stamps must hold one entry per path (got {len(stamps)} for {len(paths)} paths)"
        )
    decoded: list[np.ndarray | None] = []
    statuses: list[str] = []
    remote = [k for k, path in enumerate(paths) if is_url(path)]
    fetched = dict(
        zip(remote, fetch_objects([str(paths[k]) for k in remote], storage_options), strict=True)
    )
    for index, path in enumerate(paths):
        expected = None if stamps is None else stamps[index]
        try:
            if index in fetched:
                image = _decode_fetched(
                    str(path), fetched[index], alpha, max_image_pixels, expected, storage_options
                )
            else:
                image = decode_image(
                    path, alpha=alpha, max_image_pixels=max_image_pixels, expected=expected
                )
        except Exception as error:
            # decode_image turns decoder failures into ImageDecodeError; anything else
            # (a bug of ours) still fails this file only, named with its type.
            if not isinstance(error, ImageDecodeError):
                error = ImageDecodeError(
                    path if is_url(path) else Path(path),
                    f"could not be decoded ({type(error).__name__}: {error})",
                    transient=isinstance(error, MemoryError),
                )
            decoded.append(None)
            statuses.append(str(error))
            continue
        if shape is None:
            shape = image.shape
        if dtype is None:
            dtype = image.dtype
        if image.shape != tuple(shape) or image.dtype != np.dtype(dtype):
            decoded.append(None)
            shown = redact(path, storage_options) if is_url(path) else display_path(path)
            statuses.append(
                f"{shown}: decoded to shape {image.shape} {image.dtype}, "
                f"expected the group's {tuple(shape)} {np.dtype(dtype)}"
            )
            continue
        decoded.append(image)
        statuses.append("ok")
    if shape is None or dtype is None:
        first = statuses[0] if statuses else "no paths given"
        raise ValueError(
            "decode_batch could not infer the stack shape: no file decoded and shape/dtype "
            f"were not given (first failure: {first})"
        )
    # Every slot is written once: a decoded image, or zeros for a failed file (np.zeros
    # would write the whole stack twice).
    stack = np.empty((len(decoded), *shape), dtype=dtype)
    for index, good in enumerate(decoded):
        if good is not None:
            stack[index] = good
        else:
            stack[index] = 0
    return stack, tuple(statuses)


def _object_name(url: str) -> Path:
    """A stand-in path for the decoders' messages (replaced by the URL in every error)."""
    return Path(PurePosixPath(url.split("://", 1)[-1]).name or "object")


def decode_image_bytes(
    data: bytes,
    name: str,
    *,
    alpha: str = "drop",
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Decode an image file's bytes (fetched from an object store) as :func:`decode_image`.

    ``name`` (a URL, credentials removed) names the object in every error.

    Raises
    ------
    ImageDecodeError
        Empty, not an image, corrupt, truncated, too large (as :func:`decode_image`).
    """
    _check_alpha(alpha)
    _check_max_pixels(max_image_pixels)
    if not data:
        raise ImageDecodeError(name, "empty file (0 bytes)")
    stand_in = _object_name(name)
    handle = io.BytesIO(data)
    try:
        head = read_head(stand_in, handle)
        if is_tiff(head):
            return decode_tiff(stand_in, handle, alpha, max_image_pixels)
        return decode_pillow(stand_in, handle, len(data), alpha, max_image_pixels)
    except ImageDecodeError as error:
        raise ImageDecodeError(name, error.reason, transient=error.transient) from None
    except Exception as error:
        failure = decoder_failure(stand_in, error)
        raise ImageDecodeError(name, failure.reason, transient=failure.transient) from None


def _decode_fetched(
    url: str,
    fetched: bytes | ImageDecodeError,
    alpha: str,
    max_image_pixels: int,
    expected: FileStamp | None,
    storage_options: Mapping[str, Any] | None,
) -> np.ndarray:
    if isinstance(fetched, ImageDecodeError):
        raise fetched
    shown = redact(url, storage_options)
    if expected is not None and len(fetched) != expected.size:
        raise ImageDecodeError(
            shown,
            f"changed size from {expected.size} to {len(fetched)} bytes since its header was "
            "read; its pixels are not the ones paired",
            transient=True,
        )
    return decode_image_bytes(fetched, shown, alpha=alpha, max_image_pixels=max_image_pixels)


def _header_of(
    data: bytes, name: str, size: int, max_image_pixels: int
) -> tuple[tuple[int, ...], np.dtype]:
    stand_in = _object_name(name)
    handle = io.BytesIO(data)
    try:
        head = read_head(stand_in, handle)
        if is_tiff(head):
            return tiff_header(stand_in, handle, max_image_pixels)
        shape, dtype_name = pillow_header(stand_in, handle, size, max_image_pixels)
        return shape, np.dtype(dtype_name)
    except ImageDecodeError as error:
        raise ImageDecodeError(name, error.reason, transient=error.transient) from None
    except Exception as error:
        failure = decoder_failure(stand_in, error)
        raise ImageDecodeError(name, failure.reason, transient=failure.transient) from None


def inspect_objects(
    urls: Sequence[str],
    stamps: Sequence[FileStamp],
    *,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    storage_options: Mapping[str, Any] | None = None,
) -> list[ImageHeader | ImageDecodeError]:
    """Headers of image objects (the listing's ``stamps``), as :func:`inspect_image` reads files.

    The first :data:`~pipeline.inputs.objects.HEAD_BYTES` of every object are fetched
    together; an object whose header does not fit in them is fetched whole. Never
    raises for one object: its failure is returned in its place.
    """
    _check_max_pixels(max_image_pixels)
    heads = fetch_heads(urls, storage_options)
    out: list[ImageHeader | ImageDecodeError] = []
    again: list[int] = []
    for k, (url, head, stamp) in enumerate(zip(urls, heads, stamps, strict=True)):
        shown = redact(url, storage_options)
        if isinstance(head, ImageDecodeError):
            out.append(head)
            continue
        if stamp.size == 0:
            out.append(ImageDecodeError(shown, "empty file (0 bytes)"))
            continue
        try:
            shape, dtype = _header_of(head, shown, stamp.size, max_image_pixels)
            out.append(ImageHeader(shape, dtype, stamp))
        except ImageDecodeError as error:
            out.append(error)
            if len(head) >= HEAD_BYTES and stamp.size > len(head):
                again.append(k)  # the header may go on past the bytes fetched
    whole = fetch_objects([urls[k] for k in again], storage_options)
    for k, data in zip(again, whole, strict=True):
        shown = redact(urls[k], storage_options)
        if isinstance(data, ImageDecodeError):
            out[k] = data
            continue
        try:
            shape, dtype = _header_of(data, shown, len(data), max_image_pixels)
            out[k] = ImageHeader(shape, dtype, stamps[k])
        except ImageDecodeError as error:
            out[k] = error
    return out
