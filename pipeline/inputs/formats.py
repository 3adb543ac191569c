"""The two decoders behind :mod:`pipeline.inputs.images`: Pillow and tifffile.

Every raster format Pillow reads goes through Pillow, restricted to the plugins
in :data:`PILLOW_FORMATS`; TIFF goes through ``tifffile``. Each path turns every
failure of its library -- anticipated or not, any ``Exception`` -- into an
:class:`ImageDecodeError` that names the file and the reason, checks what its
library lets through (a PNG cut before its ``IEND`` chunk, 16-bit colour PNG, a
multi-frame file, an unsupported pixel mode or TIFF layout, more pixels than
``max_image_pixels``) and returns the pixels in the layout and dtype of the
rules in :mod:`pipeline.inputs.images`, alpha dropped or composited by
:func:`_apply_alpha`. :mod:`pipeline.inputs.images` picks the path from the file's
first bytes.

Files are opened by :func:`pipeline.inputs.files.open_image_file` (never
blocking, regular files only, checked against the stamp taken when the header was
read). Decoders get the open file, never its whole content:
they read what they need (a PNG stops at ``IEND``; WebP and AVIF, whose Pillow
plugins read everything they are given, get only the bytes their container
declares).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import IO

import numpy as np
import tifffile
from PIL import Image, ImageFile, features

from pipeline.inputs.files import ImageDecodeError

# Pillow plugins allowed to open a file, strong signatures first (a plugin is tried
# only when its signature test accepts the first bytes). Left out: EPS (runs the
# Ghostscript interpreter on the file: a program, not a decoder), TIFF (tifffile
# reads it), and the plugins that identify a file but cannot decode it without an
# outside handler (BUFR, GRIB, HDF5, MPEG, WMF). The JPEG plugin also opens MPO, a
# JPEG that carries an embedded preview (many camera photos); its first frame is
# the photo.
PILLOW_FORMATS: tuple[str, ...] = (
    "PNG",
    "JPEG",
    "WEBP",
    *(("AVIF",) if features.check("avif") else ()),
    *(("JPEG2000",) if features.check("jpg_2000") else ()),
    "BMP",
    "DIB",
    "GIF",
    "PPM",
    "QOI",
    "PSD",
    "ICO",
    "CUR",
    "ICNS",
    "DDS",
    "BLP",
    "SGI",
    "SUN",
    "PCX",
    "DCX",
    "FITS",
    "FLI",
    "IM",
    "MSP",
    "PIXAR",
    "XBM",
    "XPM",
    "FTEX",
    "GBR",
    "PCD",
    "TGA",
)

# File name extensions of those formats (Pillow's registered_extensions(), written out
# so that importing this module does not load every Pillow plugin) and of tifffile.
PILLOW_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "PNG": (".png", ".apng"),
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "WEBP": (".webp",),
    "AVIF": (".avif", ".avifs"),
    "JPEG2000": (".jp2", ".j2k", ".jpc", ".jpf", ".jpx", ".j2c"),
    "BMP": (".bmp",),
    "DIB": (".dib",),
    "GIF": (".gif",),
    "PPM": (".pbm", ".pgm", ".ppm", ".pnm", ".pfm"),
    "QOI": (".qoi",),
    "PSD": (".psd",),
    "ICO": (".ico",),
    "CUR": (".cur",),
    "ICNS": (".icns",),
    "DDS": (".dds",),
    "BLP": (".blp",),
    "SGI": (".sgi", ".rgb", ".rgba", ".bw"),
    "SUN": (".ras",),
    "PCX": (".pcx",),
    "DCX": (".dcx",),
    "FITS": (".fit", ".fits"),
    "FLI": (".fli", ".flc"),
    "IM": (".im",),
    "MSP": (".msp",),
    "PIXAR": (".pxr",),
    "XBM": (".xbm",),
    "XPM": (".xpm",),
    "FTEX": (".ftc", ".ftu"),
    "GBR": (".gbr",),
    "PCD": (".pcd",),
    "TGA": (".tga", ".icb", ".vda", ".vst"),
}
TIFF_EXTENSIONS = tuple(
    f".{suffix}" for suffix in tifffile.TIFF.FILE_EXTENSIONS if "." not in suffix
)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The CRC of the (empty) IEND chunk: the last 4 bytes of a complete PNG.
_PNG_END_CRC = b"\xaeB`\x82"
# Enough leading bytes for every signature test above and the PNG header.
_HEAD = 32

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


def read_head(path: Path, handle: IO[bytes]) -> bytes:
    """The file's first bytes (the handle is left at the start)."""
    handle.seek(0)
    head = handle.read(_HEAD)
    handle.seek(0)
    return head


def is_tiff(head: bytes) -> bool:
    return head[:4] in _TIFF_MAGIC


def check_png_depth(path: Path, head: bytes) -> None:
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


# Where the bit depths of AVIF (the "pixi" property) and JPEG 2000 (the SIZ marker,
# right after the codestream's SOC) are found: in the first header bytes.
_DEPTH_SEARCH = 1 << 16


def _declared_depth(head: bytes) -> tuple[str, int] | None:
    """Largest bits per channel an AVIF or JPEG 2000 header declares, and the format's name."""
    if head[4:8] == b"ftyp":
        at = head.find(b"pixi")
        if at < 4 or at + 9 > len(head):
            return None
        count = head[at + 8]
        depths = head[at + 9 : at + 9 + count]
        return ("AVIF", max(depths)) if depths else None
    at = head.find(b"\xff\x4f\xff\x51")  # SOC then SIZ
    if at < 0 or at + 42 > len(head):
        return None
    components = struct.unpack(">H", head[at + 40 : at + 42])[0]
    sizes = head[at + 42 : at + 42 + 3 * components : 3]
    # Ssiz holds the precision minus one in its low 7 bits (ISO/IEC 15444-1, A.5.1).
    return ("JPEG 2000", max(s & 0x7F for s in sizes) + 1) if sizes else None


def check_deep_colour(path: Path, handle: IO[bytes], mode: str | None) -> None:
    """Refuse AVIF and JPEG 2000 deeper than 8 bits where Pillow reduces it to 8.

    ``mode`` is the Pillow mode it opens as (None before opening: AVIF always opens
    as 8 bits per channel, and its decoder is given the whole file when it opens).
    """
    if mode is not None and _MODES[mode][1] != "uint8":
        return  # 16-bit grey JPEG 2000 opens as I;16: kept whole
    handle.seek(0)
    declared = _declared_depth(handle.read(_DEPTH_SEARCH))
    handle.seek(0)
    if declared is not None and declared[1] > 8:
        name, bits = declared
        raise ImageDecodeError(
            path,
            f"{bits}-bit {name} is not supported (Pillow decodes it to 8 bits per channel, "
            "which would give a wrong score); save it as 16-bit TIFF or PNG",
        )


def check_pixel_limit(path: Path, width: int, height: int, max_image_pixels: int) -> None:
    """Refuse an image that declares more pixels than the limit, before any allocation."""
    if width * height > max_image_pixels:
        raise ImageDecodeError(
            path,
            f"declares {width}x{height} pixels ({width * height:,}), more than "
            f"max_image_pixels ({max_image_pixels:,}); raise max_image_pixels if the "
            "image is genuine",
        )


def describe(error: BaseException) -> str:
    """The reason for an unanticipated decoder exception."""
    if isinstance(error, MemoryError):
        return "ran out of memory while decoding"
    text = str(error).strip() or type(error).__name__
    return f"corrupt or truncated image ({type(error).__name__}: {text})"


def decoder_failure(path: Path, error: Exception) -> ImageDecodeError:
    """The ImageDecodeError for any exception raised inside Pillow or tifffile.

    MemoryError is kept visible and retried: with the pixel limit checked first,
    it means the worker was short of memory, not that the file is bad; so is an
    I/O error of the system (an ``OSError`` with an ``errno``).
    """
    if isinstance(error, ImageDecodeError):
        return error
    if isinstance(error, OSError) and error.errno is not None:
        # A system call failed (EIO, a network file system): the disk, not the file's
        # content. Pillow's own decoding errors are OSErrors without an errno.
        return ImageDecodeError(
            path, f"cannot read the file ({error.strerror or error})", transient=True
        )
    return ImageDecodeError(path, describe(error), transient=isinstance(error, MemoryError))


# ---------------------------------------------------------------------------
# Pillow path


def _container_end(head: bytes, handle: IO[bytes], size: int) -> int:
    """Where the WebP or ISO-BMFF (AVIF) container ends, for a bounded read.

    Their Pillow plugins read everything from the file object: a small image
    followed by gigabytes of trailing data would be read whole.
    """
    if head[:4] == b"RIFF":
        declared = 8 + struct.unpack("<I", head[4:8])[0]
        return min(size, declared + (declared & 1))
    end = 0
    while end + 8 <= size:
        handle.seek(end)
        box = handle.read(16)
        length, kind = struct.unpack(">I4s", box[:8])
        if not all(32 <= c < 127 for c in kind):
            break  # not a box: trailing data
        if length == 1 and len(box) == 16:
            length = struct.unpack(">Q", box[8:16])[0]
        elif length == 0:
            length = size - end  # "extends to the end of the file"
        if length < 8:
            break
        end += length
    handle.seek(0)
    return min(end, size) if end else size


def _pillow_source(head: bytes, handle: IO[bytes], size: int) -> IO[bytes]:
    """What the Pillow plugin reads from: the open file, or the bounded container."""
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    # JPEG 2000 (also a box container) is left out: its plugin reads through the file.
    is_bmff = head[4:8] == b"ftyp"
    if not (is_webp or is_bmff):
        return handle
    end = _container_end(head, handle, size)
    return io.BytesIO(handle.read(end))


def open_pillow(path: Path, source: IO[bytes], max_image_pixels: int) -> ImageFile.ImageFile:
    """Identify and open ``source`` with the allowed plugins; size checked, nothing decoded.

    This is the loop of ``PIL.Image.open`` over :data:`PILLOW_FORMATS`, without its
    check against the process-wide ``Image.MAX_IMAGE_PIXELS``: the limit is
    ``max_image_pixels``, a setting of the run.
    """
    head = read_head(path, source)
    Image.init()
    image: ImageFile.ImageFile | None = None
    for name in PILLOW_FORMATS:
        if name not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[name]
        if accept is None:
            # A plugin without a signature test (TGA) would take arbitrary bytes:
            # it is tried only for a file named with its extension.
            if path.suffix.lower() not in PILLOW_EXTENSIONS.get(name, ()):
                continue
        else:
            accepted = accept(head)
            if isinstance(accepted, str) or not accepted:
                continue
        if name == "WEBP":
            # The WebP plugin allocates its canvas while opening: check the size first.
            from PIL import WebPImagePlugin

            get_size = getattr(WebPImagePlugin, "_get_size", None)  # private, Pillow >= 11.1
            declared = get_size(head) if get_size is not None else None
            if declared is not None:
                check_pixel_limit(path, int(declared[0]), int(declared[1]), max_image_pixels)
        if name == "AVIF":
            check_deep_colour(path, source, None)
        source.seek(0)
        try:
            image = factory(source, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # not this format after all, as Image.open treats it
        except Image.DecompressionBombError as error:
            raise ImageDecodeError(path, f"refused as a decompression bomb ({error})") from None
        break
    if image is None:
        raise ImageDecodeError(
            path,
            "not a supported image file (expected PNG, JPEG, TIFF, WebP, BMP, GIF, AVIF, "
            "JPEG 2000 or another raster format that Pillow reads)",
        )
    width, height = image.size
    check_pixel_limit(path, width, height, max_image_pixels)
    n_frames = getattr(image, "n_frames", 1)
    if n_frames > 1 and image.format != "MPO":
        raise ImageDecodeError(
            path, f"has {n_frames} frames (animated or multi-page); expected one image"
        )
    if image.mode not in _MODES:
        raise ImageDecodeError(path, f"unsupported pixel mode {image.mode!r}")
    if image.format == "JPEG2000":
        check_deep_colour(path, source, image.mode)
    return image


def pillow_header(
    path: Path, handle: IO[bytes], size: int, max_image_pixels: int
) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of a Pillow image, from its header only."""
    head = read_head(path, handle)
    check_png_depth(path, head)
    try:
        with open_pillow(path, _pillow_source(head, handle, size), max_image_pixels) as image:
            channels, dtype, _ = _MODES[image.mode]
            width, height = image.size
    except Exception as error:
        raise decoder_failure(path, error) from None
    return ((height, width) if channels is None else (height, width, channels)), dtype


def decode_pillow(
    path: Path, handle: IO[bytes], size: int, alpha: str, max_image_pixels: int
) -> np.ndarray:
    """Decode a Pillow image from the open file (any failure -> ImageDecodeError)."""
    head = read_head(path, handle)
    check_png_depth(path, head)
    try:
        source = _pillow_source(head, handle, size)
        if head.startswith(_PNG_MAGIC):
            # verify() checks the PNG chunk checksums and that the chunks end with IEND
            # (Pillow decodes a PNG cut before IEND without complaint); it reads up to
            # IEND, never beyond, and leaves the image unusable: it is opened again.
            with open_pillow(path, source, max_image_pixels) as image:
                try:
                    image.verify()
                    # verify() stops right after the IEND chunk's type; its CRC follows.
                    complete = source.read(4) == _PNG_END_CRC
                except OSError as error:
                    if "truncated PNG" not in str(error):
                        raise
                    complete = False
            if not complete:
                raise ImageDecodeError(path, "truncated PNG (the final IEND chunk is missing)")
        with open_pillow(path, source, max_image_pixels) as image:
            # load() raises on a truncated stream because LOAD_TRUNCATED_IMAGES stays False.
            image.load()
            mode = image.mode
            if mode == "P":
                converted = image.convert("RGBA" if "transparency" in image.info else "RGB")
            else:
                target = _MODES[mode][2]
                converted = image.convert(target) if target is not None else image
            array = np.asarray(converted)
            final_mode = converted.mode
    except Exception as error:
        raise decoder_failure(path, error) from None
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    if final_mode in ("LA", "RGBA"):
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


def _open_tiff(
    path: Path, tif: tifffile.TiffFile, max_image_pixels: int
) -> tuple[tuple[int, ...], str, np.dtype]:
    shape, axes, dtype = _tiff_layout(path, tif)
    height, width = shape[axes.index("Y")], shape[axes.index("X")]
    check_pixel_limit(path, width, height, max_image_pixels)
    return shape, axes, dtype


def tiff_header(
    path: Path, handle: IO[bytes], max_image_pixels: int
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a TIFF, from its header only."""
    try:
        with tifffile.TiffFile(handle, name=path.name) as tif:
            shape, axes, dtype = _open_tiff(path, tif, max_image_pixels)
    except Exception as error:  # tifffile raises many types for damaged files
        raise decoder_failure(path, error) from None
    return _tiff_header_shape(shape, axes), dtype


def decode_tiff(path: Path, handle: IO[bytes], alpha: str, max_image_pixels: int) -> np.ndarray:
    """Decode a TIFF from the open file; its size is checked before ``asarray`` allocates."""
    try:
        with tifffile.TiffFile(handle, name=path.name) as tif:
            shape, axes, _ = _open_tiff(path, tif, max_image_pixels)
            array = tif.series[0].asarray()
        array = array.reshape(shape)
    except Exception as error:  # tifffile raises many types for damaged files
        raise decoder_failure(path, error) from None
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
