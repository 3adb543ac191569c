"""pipeline.inputs.formats: the Pillow and tifffile decoders, their checks and limits.

Through :func:`pipeline.inputs.images.decode_image` and ``read_header``: the formats
Pillow reads, what each library lets through and is refused here (16-bit colour PNG, a
PNG cut before ``IEND``, several frames, deep AVIF/JPEG 2000 colour, more pixels than
``max_image_pixels``), any failure inside a decoder as the file's failure, and reads
bounded by the image, not the file.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pipeline.inputs.images import ImageDecodeError, decode_batch, decode_image, read_header


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240605)


def _rgb(rng: np.random.Generator, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def _png16_colour(array: np.ndarray) -> bytes:
    """A 16-bit RGB(A) PNG written by hand (Pillow cannot write one)."""
    height, width, channels = array.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    colour_type = {3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encoded(rng: np.random.Generator, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng, (40, 48))).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def test_png_missing_only_its_end_chunk_is_truncated(tmp_path, rng):
    data = _encoded(rng, "PNG")
    path = _write(tmp_path, "cut.png", data[:-12])  # the whole IEND chunk
    with pytest.raises(ImageDecodeError, match=r"cut\.png: truncated PNG"):
        decode_image(path)


def test_sixteen_bit_colour_png_is_refused_not_truncated(tmp_path, rng):
    array = rng.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    path = _write(tmp_path, "deep_rgb.png", _png16_colour(array))
    # Pillow itself silently returns 8-bit values for this file: the trap we refuse.
    assert np.asarray(Image.open(path)).dtype == np.uint8
    with pytest.raises(ImageDecodeError, match=r"deep_rgb\.png: 16-bit RGB PNG is not supported"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"16-bit RGB PNG"):
        read_header(path)


def test_animated_webp_is_refused(tmp_path, rng):
    frames = [Image.fromarray(_rgb(rng)) for _ in range(3)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageDecodeError, match=r"anim\.webp: has 3 frames"):
        decode_image(path)


def test_multi_page_tiff_is_refused(tmp_path, rng):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path, rng.integers(0, 256, (3, 8, 9), dtype=np.uint8), photometric="minisblack"
    )
    with pytest.raises(ImageDecodeError, match=r"stack\.tif: TIFF of shape \(3, 8, 9\).*not one"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"not one 2-D image"):
        read_header(path)


def test_every_pillow_format_extension_list_matches_pillow():
    from PIL import Image as PILImage

    from pipeline.inputs.formats import PILLOW_EXTENSIONS, PILLOW_FORMATS

    PILImage.init()
    registered: dict[str, set[str]] = {}
    for extension, name in PILImage.registered_extensions().items():
        registered.setdefault(name, set()).add(extension)
    for name in PILLOW_FORMATS:
        assert set(PILLOW_EXTENSIONS[name]) == registered[name], name


@pytest.mark.parametrize(
    ("image_format", "suffix", "options", "lossless"),
    [
        ("AVIF", ".avif", {"quality": 90}, False),
        ("JPEG2000", ".jp2", {}, True),  # Pillow's default is the reversible 5/3 wavelet
        ("GIF", ".gif", {}, True),
        ("PPM", ".ppm", {}, True),
        ("QOI", ".qoi", {}, True),
        ("TGA", ".tga", {}, True),
    ],
)
def test_formats_once_skipped_now_decode(tmp_path, rng, image_format, suffix, options, lossless):
    from PIL import features

    if image_format == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    if image_format == "JPEG2000" and not features.check("jpg_2000"):
        pytest.skip("Pillow built without OpenJPEG")
    array = _rgb(rng)
    if image_format == "GIF":  # a palette of few colours survives GIF exactly
        array = np.asarray(
            Image.fromarray(array).quantize(16).convert("RGB"), dtype=np.uint8
        ).copy()
    path = tmp_path / f"image{suffix}"
    Image.fromarray(array).save(path, format=image_format, **options)
    decoded = decode_image(path)
    assert read_header(path) == (decoded.shape, np.dtype(np.uint8))
    assert decoded.shape == array.shape
    if lossless:
        np.testing.assert_array_equal(decoded, array)
    else:  # the pixels Pillow itself decodes, as a loader using Image.open sees them
        np.testing.assert_array_equal(decoded, np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize(
    "error", [KeyError("tile"), RuntimeError("codec"), ZeroDivisionError(), AssertionError()]
)
def test_unanticipated_pillow_exception_becomes_decode_error(tmp_path, rng, monkeypatch, error):
    from PIL import ImageFile

    path = _write(tmp_path, "odd.png", _encoded(rng, "PNG"))

    def broken_load(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    with pytest.raises(
        ImageDecodeError, match=rf"odd\.png: corrupt or truncated image \({type(error).__name__}"
    ):
        decode_image(path)
    stack, statuses = decode_batch([path], shape=(40, 48, 3), dtype="uint8")
    assert type(error).__name__ in statuses[0] and not stack.any()


def test_unanticipated_tifffile_exception_becomes_decode_error(tmp_path, rng, monkeypatch):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, _rgb(rng), photometric="rgb")

    def broken(self, *args, **kwargs):
        raise KeyError("no such tag")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", broken)
    with pytest.raises(ImageDecodeError, match=r"odd\.tif: corrupt or truncated image \(KeyError"):
        decode_image(path)


def test_memory_error_in_a_decoder_is_a_transient_failure(tmp_path, rng, monkeypatch):
    from PIL import ImageFile

    path = _write(tmp_path, "big.png", _encoded(rng, "PNG"))

    def exhausted(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
    with pytest.raises(ImageDecodeError, match=r"big\.png: ran out of memory.*transient") as info:
        decode_image(path)
    assert info.value.transient


def _tiff_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny valid TIFF whose ImageWidth/ImageLength are then rewritten (tags in place)."""
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), photometric="minisblack")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages.first
        page.tags["ImageWidth"].overwrite(width)
        page.tags["ImageLength"].overwrite(height)
        page.tags["RowsPerStrip"].overwrite(height)
    return path


def test_tiff_declaring_ten_gigapixels_is_refused_before_allocating(tmp_path):
    # 100000 x 100000 uint8 would be a 10 GB allocation by asarray: refused from the header.
    path = _tiff_declaring(tmp_path / "huge.tif", 100_000, 100_000)
    assert path.stat().st_size < 1000
    message = (
        r"huge\.tif: declares 100000x100000 pixels \(10,000,000,000\), "
        r"more than max_image_pixels \(178,956,970\)"
    )
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=message):
        read_header(path)


@pytest.mark.parametrize(
    ("image_format", "suffix"),
    [
        ("PNG", ".png"),
        ("JPEG", ".jpg"),
        ("WEBP", ".webp"),
        ("BMP", ".bmp"),
        ("GIF", ".gif"),
        ("TIFF", ".tif"),
        ("JPEG2000", ".jp2"),
        ("AVIF", ".avif"),
    ],
)
def test_pixel_limit_is_a_setting_for_every_format(tmp_path, rng, image_format, suffix):
    from PIL import features

    if image_format == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    path = tmp_path / f"image{suffix}"
    if image_format == "TIFF":
        tifffile.imwrite(path, _rgb(rng, (40, 50)), photometric="rgb")
    else:
        Image.fromarray(_rgb(rng, (40, 50))).save(path, format=image_format)
    message = (
        rf"image\{suffix}: declares 50x40 pixels \(2,000\), more than max_image_pixels \(1,999\)"
    )
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(path, max_image_pixels=1999)
    with pytest.raises(ImageDecodeError, match=message):
        read_header(path, max_image_pixels=1999)
    assert decode_image(path, max_image_pixels=2000).shape == (40, 50, 3)


def test_pixel_limit_is_independent_of_pillows_global(tmp_path, rng, monkeypatch):
    path = tmp_path / "image.png"
    Image.fromarray(_rgb(rng, (40, 50))).save(path)
    # Pillow would warn (an error under pytest) and refuse at twice this: not our limit.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert decode_image(path).shape == (40, 50, 3)


@pytest.mark.parametrize(
    ("image_format", "suffix"),
    [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("AVIF", ".avif"), ("TIFF", ".tif")],
)
def test_trailing_data_is_not_read(tmp_path, rng, image_format, suffix):
    import tracemalloc

    from PIL import features

    if image_format == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    array = _rgb(rng, (16, 16))
    path = tmp_path / f"tail{suffix}"
    if image_format == "TIFF":
        tifffile.imwrite(path, array, photometric="rgb")
    else:
        Image.fromarray(array).save(
            path, format=image_format, **({"lossless": True} if image_format == "WEBP" else {})
        )
    with open(path, "r+b") as handle:  # 64 MiB of zeros after the image, sparse on disk
        handle.truncate(path.stat().st_size + 64 * 2**20)
    tracemalloc.start()
    try:
        decoded = decode_image(path)
        shape, _ = read_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.shape == shape == (16, 16, 3)
    if image_format in ("PNG", "WEBP", "TIFF"):
        np.testing.assert_array_equal(decoded, array)
    # Reading the file whole would hold 64 MiB at once.
    assert peak < 4 * 2**20, peak


@pytest.mark.parametrize("image_format", ["AVIF", "JPEG2000"])
def test_deep_avif_and_jpeg2000_colour_is_refused_not_reduced(tmp_path, rng, image_format):
    from PIL import features

    if not features.check({"AVIF": "avif", "JPEG2000": "jpg_2000"}[image_format]):
        pytest.skip(f"Pillow built without {image_format}")
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng)).save(buffer, format=image_format)
    data = bytearray(buffer.getvalue())
    # No encoder here writes deeper colour: the header's declared depth is raised in place
    # (AVIF: the "pixi" property's bits per channel; JPEG 2000: the SIZ marker's Ssiz).
    if image_format == "AVIF":
        at = data.find(b"pixi")
        data[at + 9 : at + 12] = bytes([10, 10, 10])
        expected = r"deep\.bin: 10-bit AVIF is not supported \(Pillow decodes it to 8 bits"
    else:
        at = data.find(b"\xff\x4f\xff\x51")
        for component in range(3):
            data[at + 42 + 3 * component] = 15  # precision 16
        expected = r"deep\.bin: 16-bit JPEG 2000 is not supported \(Pillow decodes it to 8 bits"
    path = _write(tmp_path, "deep.bin", bytes(data))
    with pytest.raises(ImageDecodeError, match=expected):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=expected):
        read_header(path)


def test_jpeg2000_followed_by_trailing_data_is_not_read_whole(tmp_path, rng):
    import tracemalloc

    from PIL import features

    if not features.check("jpg_2000"):
        pytest.skip("Pillow built without OpenJPEG")
    array = _rgb(rng, (16, 16))
    path = tmp_path / "tail.jp2"
    Image.fromarray(array).save(path, format="JPEG2000")
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size + 64 * 2**20)
    tracemalloc.start()
    try:
        np.testing.assert_array_equal(decode_image(path), array)
        read_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
