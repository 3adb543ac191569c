"""Decoding one image file to a NumPy array, the way the evaluation sees it.

The rules, applied identically by :func:`read_header` (no pixels decoded) and
:func:`decode_image`, so that a plan made from headers always matches the
decoded arrays:

* **Formats.** PNG, JPEG, BMP and WebP through Pillow; TIFF through
  ``tifffile``. The decoder is chosen from the file's first bytes, not its
  extension, so a mis-named file still decodes (and a non-image is refused).
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
* **Bad files** (zero bytes, not an image, corrupt, truncated, unreadable,
  multi-frame) raise :class:`ImageDecodeError` naming the file and the reason.
  Truncation is detected, never padded: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
  left ``False``, PNG chunk checksums are verified and every image is fully
  loaded.

The decoders themselves -- how Pillow and tifffile are driven, and
:class:`ImageDecodeError` (importable from here too) -- are in
:mod:`pipeline.image_formats`; this module picks one from a file's first bytes
and holds the public functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from pipeline.image_formats import (
    ImageDecodeError,
    _check_png_depth,
    _decode_pillow,
    _decode_tiff,
    _describe,
    _is_tiff,
    _open_pillow,
    _pillow_header,
    _read_bytes,
    _tiff_header_shape,
    _tiff_layout,
)

__all__ = [
    "ALPHA_RULES",
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "decode_batch",
    "decode_image",
    "read_header",
]

#: File name extensions (lower case) treated as images when discovering folders.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})

ALPHA_RULES = ("drop", "composite")


def _check_alpha(alpha: str) -> None:
    if alpha not in ALPHA_RULES:
        raise ValueError(f"alpha must be one of {', '.join(ALPHA_RULES)} (got {alpha!r})")


def read_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype that :func:`decode_image` will return, without decoding pixels.

    Parameters
    ----------
    path : str or path-like
        An image file.

    Returns
    -------
    shape : tuple of int
        ``(y, x)`` for grey, ``(y, x, 3)`` for colour (alpha removed).
    dtype : numpy.dtype

    Raises
    ------
    ImageDecodeError
        When the file is missing, unreadable, empty, not an image or its header
        is damaged. A damaged pixel stream is only found by :func:`decode_image`.
    """
    file = Path(path)
    head = _read_bytes(file, limit=32)
    _check_png_depth(file, head)
    if _is_tiff(head):
        try:
            with tifffile.TiffFile(file) as tif:
                shape, axes, dtype = _tiff_layout(file, tif)
        except ImageDecodeError:
            raise
        except Exception as error:
            raise ImageDecodeError(file, _describe(error)) from None
        return _tiff_header_shape(shape, axes), dtype
    try:
        handle = open(file, "rb")  # Pillow reads the header lazily from it
    except OSError as error:
        raise ImageDecodeError(file, f"cannot read the file ({error.strerror or error})") from None
    with handle:
        image = _open_pillow(file, handle)
        with image:
            shape, dtype_name = _pillow_header(file, image.mode, image.size)
    return shape, np.dtype(dtype_name)


def decode_image(path: str | os.PathLike[str], *, alpha: str = "drop") -> np.ndarray:
    """Decode one image file to a NumPy array (rules in the module docstring).

    Parameters
    ----------
    path : str or path-like
        A PNG, JPEG, TIFF, BMP or WebP file.
    alpha : {"drop", "composite"}
        What to do with an alpha channel: discard it (default, as
        ``Image.convert("RGB")`` does) or composite the colour over black.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` or ``(y, x, 3)``; uint8, uint16 (16-bit files) or the TIFF's
        own dtype.

    Raises
    ------
    ImageDecodeError
        For a missing, unreadable, empty, non-image, corrupt or truncated file.

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
    file = Path(path)
    data = _read_bytes(file)
    if _is_tiff(data[:4]):
        return _decode_tiff(file, data, alpha)
    return _decode_pillow(file, data, alpha)


def decode_batch(
    paths: Sequence[str | os.PathLike[str]],
    *,
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | str | None = None,
    alpha: str = "drop",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode several files of one size group into a stack; failures become statuses.

    Meant to run as one Dask task: it never raises for a bad file, so one
    corrupt image costs its own pair only.

    Parameters
    ----------
    paths : sequence of path-like
        Files expected to share ``shape`` and ``dtype``.
    shape, dtype : optional
        The group's image shape and dtype (from :func:`read_header`). When not
        given, those of the first file that decodes are used.
    alpha : {"drop", "composite"}
        See :func:`decode_image`.

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
        stack's shape is unknown.
    """
    _check_alpha(alpha)
    decoded: list[np.ndarray | None] = []
    statuses: list[str] = []
    for path in paths:
        try:
            image = decode_image(path, alpha=alpha)
        except ImageDecodeError as error:
            decoded.append(None)
            statuses.append(str(error))
            continue
        if shape is None:
            shape = image.shape
        if dtype is None:
            dtype = image.dtype
        if image.shape != tuple(shape) or image.dtype != np.dtype(dtype):
            decoded.append(None)
            statuses.append(
                f"{Path(path)}: decoded to shape {image.shape} {image.dtype}, expected the "
                f"group's {tuple(shape)} {np.dtype(dtype)}"
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
    stack = np.zeros((len(decoded), *shape), dtype=dtype)
    for index, good in enumerate(decoded):
        if good is not None:
            stack[index] = good
    return stack, tuple(statuses)
