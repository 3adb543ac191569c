"""The two decoders behind :mod:`pipeline.images`: Pillow and tifffile.

PNG, JPEG, BMP and WebP go through Pillow, restricted to those plugins; TIFF
goes through ``tifffile``. Each path turns every failure of its library (the
many exception types of a damaged file) into an :class:`ImageDecodeError` that
names the file and the reason, checks what its library lets through (a PNG cut
before its ``IEND`` chunk, 16-bit colour PNG, a multi-frame file, an unsupported
pixel mode or TIFF layout) and returns the pixels in the layout and dtype of
the rules in :mod:`pipeline.images`, alpha dropped or composited by
:func:`_apply_alpha`. :mod:`pipeline.images` picks the path from the file's
first bytes.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

# Pillow plugins allowed to open a file. The JPEG plugin also opens MPO, a JPEG
# that carries an embedded preview (many camera photos); its first frame is the photo.
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "WEBP")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The whole IEND chunk (length 0, type, CRC): a PNG without it was cut short.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"

# Pillow mode -> (decoded channels or None for grey, dtype, Pillow mode to convert to first).
_MODES: dict[str, tuple[int | None, str, str | None]] = {
    "1": (None, "uint8", "L"),
    "L": (None, "uint8", None),
    "LA": (None, "uint8", None),
    "La": (None, "uint8", "LA"),
    "P": (3, "uint8", None),  # RGB or RGBA depending on transparency, decided at decode
    "PA": (3, "uint8", "RGBA"),
    "RGB": (3, "uint8", None),
    "RGBA": (3, "uint8", None),
    "RGBa": (3, "uint8", "RGBA"),
    "RGBX": (3, "uint8", "RGB"),
    "CMYK": (3, "uint8", "RGB"),
    "YCbCr": (3, "uint8", "RGB"),
    "I;16": (None, "uint16", None),
    "I;16L": (None, "uint16", None),
    "I;16B": (None, "uint16", None),
    "I;16N": (None, "uint16", None),
    "I": (None, "int32", None),
    "F": (None, "float32", None),
}


# Ends the status of a failure that a resumed run retries (see is_transient_status).
TRANSIENT_SUFFIX = " (transient: retried by --resume)"


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded; the message names the file and the reason.

    Attributes
    ----------
    path : pathlib.Path
        The file at fault.
    reason : str
        Why it failed, in words fit for a ``status`` entry.
    """

    def __init__(
        self, path: str | os.PathLike[str], reason: str, *, transient: bool = False
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.transient = transient
        super().__init__(f"{self.path}: {reason}{TRANSIENT_SUFFIX if transient else ''}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps (path, reason, transient) across pickling, e.g. from a distributed worker.
        return (_rebuild_decode_error, (self.path, self.reason, self.transient))


def _rebuild_decode_error(path: Path, reason: str, transient: bool) -> ImageDecodeError:
    return ImageDecodeError(path, reason, transient=transient)


def is_transient_status(status: str) -> bool:
    """Whether a pair's ``status`` records a failure that may pass on a retry.

    A file that was missing, unreadable for permissions or failed with an I/O error
    may be there and readable on a later ``--resume``; a file that was read and did
    not decode fails again, so it is not retried.
    """
    return status.endswith(TRANSIENT_SUFFIX)


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes (the first ``limit`` only, when given), or ImageDecodeError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit)
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found", transient=True) from None
    except PermissionError:
        raise ImageDecodeError(
            path, "permission denied (the file is not readable)", transient=True
        ) from None
    except IsADirectoryError:
        raise ImageDecodeError(path, "is a directory, not an image file") from None
    except OSError as error:
        raise ImageDecodeError(
            path, f"cannot read the file ({error.strerror or error})", transient=True
        ) from None
    if not data:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    return data


def _is_tiff(head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def _check_png_depth(path: Path, head: bytes) -> None:
    """Refuse 16-bit colour PNG, which Pillow would silently reduce to 8 bits."""
    if not head.startswith(_PNG_MAGIC) or len(head) < 26 or head[12:16] != b"IHDR":
        return
    bit_depth, colour_type = head[24], head[25]
    if bit_depth == 16 and colour_type in (2, 4, 6):
        kind = {2: "RGB", 4: "grey+alpha", 6: "RGBA"}[colour_type]
        raise ImageDecodeError(
            path,
            f"16-bit {kind} PNG is not supported (Pillow decodes it to 8 bits per channel, "
            "which would give a wrong score); save it as 16-bit TIFF or 8-bit PNG",
        )


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"corrupt or truncated image ({text})"


# ---------------------------------------------------------------------------
# Pillow path


def _open_pillow(path: Path, source: Any) -> Image.Image:
    try:
        image = Image.open(source, formats=_PILLOW_FORMATS)
    except UnidentifiedImageError:
        raise ImageDecodeError(
            path, "not a supported image file (expected PNG, JPEG, TIFF, BMP or WebP)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Beyond 2x Image.MAX_IMAGE_PIXELS Pillow raises; beyond 1x it warns, which arrives
        # here as an exception where warnings are errors (python -W error, pytest).
        raise ImageDecodeError(path, f"refused as a decompression bomb ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as error:
        raise ImageDecodeError(path, _describe(error)) from None
    n_frames = getattr(image, "n_frames", 1)
    if n_frames > 1 and image.format != "MPO":
        image.close()
        raise ImageDecodeError(
            path, f"has {n_frames} frames (animated or multi-page); expected one image"
        )
    if image.mode not in _MODES:
        mode = image.mode
        image.close()
        raise ImageDecodeError(path, f"unsupported pixel mode {mode!r}")
    return image


def _pillow_header(path: Path, mode: str, size: tuple[int, int]) -> tuple[tuple[int, ...], str]:
    channels, dtype, _ = _MODES[mode]
    width, height = size
    return ((height, width) if channels is None else (height, width, channels)), dtype


def _decode_pillow(path: Path, data: bytes, alpha: str) -> np.ndarray:
    _check_png_depth(path, data[:32])
    if data.startswith(_PNG_MAGIC) and data.rfind(_PNG_END) < 0:
        # Pillow decodes a PNG whose final IEND chunk is cut without complaint.
        raise ImageDecodeError(path, "truncated PNG (the final IEND chunk is missing)")
    # verify() checks PNG chunk checksums and structure without decoding; it
    # leaves the image unusable, so the file is opened again to decode it.
    image = _open_pillow(path, io.BytesIO(data))
    try:
        image.verify()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as error:
        raise ImageDecodeError(path, _describe(error)) from None
    finally:
        image.close()
    image = _open_pillow(path, io.BytesIO(data))
    try:
        # load() raises on a truncated stream because LOAD_TRUNCATED_IMAGES stays False.
        image.load()
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        else:
            target = _MODES[mode][2]
            if target is not None:
                image = image.convert(target)
        array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as error:
        raise ImageDecodeError(path, _describe(error)) from None
    finally:
        image.close()
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    if image.mode in ("LA", "RGBA"):
        array = _apply_alpha(array, alpha)
    return array


# ---------------------------------------------------------------------------
# tifffile path


def _tiff_layout(path: Path, tif: tifffile.TiffFile) -> tuple[tuple[int, ...], str, np.dtype]:
    """The series' shape, its axes (singleton non-spatial axes removed) and dtype."""
    if not tif.series:
        raise ImageDecodeError(path, "TIFF holds no image data")
    series = tif.series[0]
    pairs = [(a, n) for a, n in zip(series.axes, series.shape, strict=True) if n > 1 or a in "YX"]
    axes = "".join(a for a, _ in pairs)
    shape = tuple(n for _, n in pairs)
    if sorted(axes) not in (["X", "Y"], ["S", "X", "Y"]):
        raise ImageDecodeError(
            path,
            f"TIFF of shape {tuple(series.shape)} (axes {series.axes}) is not one 2-D image; "
            "expected axes YX or YXS (one page)",
        )
    page = tif.pages.first
    photometric = int(page.photometric)
    if photometric not in (1, 2):  # 1: MINISBLACK, 2: RGB
        name = getattr(page.photometric, "name", str(photometric))
        raise ImageDecodeError(
            path, f"TIFF photometric {name} is not supported (grey MINISBLACK or RGB expected)"
        )
    dtype = np.dtype(series.dtype)
    if dtype.kind not in "uif":
        raise ImageDecodeError(path, f"TIFF sample type {dtype} is not supported")
    if "S" in axes:
        samples = shape[axes.index("S")]
        if samples not in (2, 3, 4):
            raise ImageDecodeError(path, f"TIFF with {samples} samples per pixel is not supported")
    return shape, axes, dtype


def _tiff_header_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    if "S" not in axes:
        return (height, width)
    samples = shape[axes.index("S")]
    return (height, width) if samples == 2 else (height, width, 3)


def _decode_tiff(path: Path, data: bytes, alpha: str) -> np.ndarray:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            shape, axes, _ = _tiff_layout(path, tif)
            array = tif.series[0].asarray()
    except ImageDecodeError:
        raise
    except Exception as error:  # tifffile raises many types for damaged files
        raise ImageDecodeError(path, _describe(error)) from None
    array = array.reshape(shape)
    order = [axes.index(a) for a in "YXS" if a in axes]
    array = np.ascontiguousarray(np.transpose(array, order))
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = _apply_alpha(array, alpha)
    return array


# ---------------------------------------------------------------------------
# shared


def _apply_alpha(array: np.ndarray, alpha: str) -> np.ndarray:
    """Colour channels of an image with alpha last: dropped or composited over black."""
    colour, opacity = array[..., :-1], array[..., -1:]
    if alpha == "composite":
        if array.dtype.kind == "f":
            colour = colour * opacity
        else:
            top = np.iinfo(array.dtype).max
            blended = colour.astype(np.float64) * opacity / top
            colour = np.rint(blended).astype(array.dtype)
    if colour.shape[-1] == 1:
        colour = colour[..., 0]
    return np.ascontiguousarray(colour)
