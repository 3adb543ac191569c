"""Decoding image files: round trips per format and bit depth, and every bad-file kind."""

from __future__ import annotations

import io
import os
import pickle
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


# ---------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(
    ("image_format", "suffix", "options", "grey"),
    [
        ("PNG", ".png", {}, False),
        ("PNG", ".png", {}, True),
        ("BMP", ".bmp", {}, False),
        ("BMP", ".bmp", {}, True),
        ("WEBP", ".webp", {"lossless": True}, False),  # WebP has no grey mode
    ],
)
def test_lossless_round_trip(tmp_path, rng, image_format, suffix, options, grey):
    array = _rgb(rng)
    if grey:
        array = array[..., 0].copy()
    path = tmp_path / f"image{suffix}"
    Image.fromarray(array).save(path, format=image_format, **options)
    decoded = decode_image(path)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, array)
    assert read_header(path) == (array.shape, np.dtype(np.uint8))


def test_jpeg_decodes_to_the_same_pixels_as_pillow(tmp_path, rng):
    path = tmp_path / "photo.jpg"
    Image.fromarray(_rgb(rng)).save(path, quality=85)
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(path)))
    assert decoded.shape == (24, 32, 3)
    assert read_header(path) == ((24, 32, 3), np.dtype(np.uint8))


def test_grey_png_16_bit_stays_uint16(tmp_path, rng):
    array = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    decoded = decode_image(path)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, array)
    assert read_header(path) == ((20, 30), np.dtype(np.uint16))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("layout", ["grey", "rgb", "planar", "big-endian", "zlib"])
def test_tiff_round_trip(tmp_path, rng, dtype, layout):
    top = np.iinfo(dtype).max
    colour = rng.integers(0, top + 1, (18, 26, 3), dtype=dtype)
    path = tmp_path / "image.tif"
    if layout == "grey":
        expected = colour[..., 0].copy()
        tifffile.imwrite(path, expected, photometric="minisblack")
    elif layout == "planar":
        expected = colour
        tifffile.imwrite(
            path, np.moveaxis(colour, -1, 0), photometric="rgb", planarconfig="separate"
        )
    elif layout == "big-endian":
        expected = colour
        tifffile.imwrite(path, colour, photometric="rgb", byteorder=">")
    elif layout == "zlib":
        expected = colour
        tifffile.imwrite(path, colour, photometric="rgb", compression="zlib")
    else:
        expected = colour
        tifffile.imwrite(path, colour, photometric="rgb")
    decoded = decode_image(path)
    assert decoded.dtype == np.dtype(dtype)
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, expected)
    assert read_header(path) == (expected.shape, np.dtype(dtype))


def test_float_tiff_keeps_its_dtype(tmp_path, rng):
    array = rng.random((10, 12), dtype=np.float32)
    path = tmp_path / "float.tiff"
    tifffile.imwrite(path, array)
    np.testing.assert_array_equal(decode_image(path), array)
    assert read_header(path) == ((10, 12), np.dtype(np.float32))


def test_decoder_is_chosen_by_content_not_extension(tmp_path, rng):
    array = _rgb(rng)
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(array).save(path, format="PNG")
    np.testing.assert_array_equal(decode_image(path), array)


# ---------------------------------------------------------------------------
# layout rules


def test_rgba_alpha_is_dropped_by_default(tmp_path, rng):
    rgba = rng.integers(0, 256, (12, 14, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded, rgba[..., :3])
    # The same pixels Image.convert("RGB") gives, as GAN evaluation loaders read them.
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(path).convert("RGB")))
    assert read_header(path) == ((12, 14, 3), np.dtype(np.uint8))


def test_rgba_composite_over_black(tmp_path, rng):
    rgba = rng.integers(0, 256, (12, 14, 4), dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    expected = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(path, alpha="composite"), expected)


def test_rgba_tiff_16_bit_drops_alpha(tmp_path, rng):
    rgba = rng.integers(0, 65536, (8, 9, 4), dtype=np.uint16)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    decoded = decode_image(path)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, rgba[..., :3])
    assert read_header(path) == ((8, 9, 3), np.dtype(np.uint16))


def test_grey_with_alpha_becomes_grey(tmp_path, rng):
    la = rng.integers(0, 256, (8, 9, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    np.testing.assert_array_equal(decode_image(path), la[..., 0])
    assert read_header(path) == ((8, 9), np.dtype(np.uint8))


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_image_is_expanded_to_rgb(tmp_path, rng, transparency):
    palette = Image.fromarray(_rgb(rng)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    path = tmp_path / "palette.png"
    palette.save(path, **({"transparency": 0} if transparency else {}))
    decoded = decode_image(path)
    np.testing.assert_array_equal(decoded, np.asarray(palette.convert("RGB")))
    assert read_header(path) == (decoded.shape, np.dtype(np.uint8))


def test_bilevel_image_becomes_uint8_0_255(tmp_path, rng):
    path = tmp_path / "bits.png"
    Image.fromarray(rng.random((9, 11)) > 0.5).save(path)
    decoded = decode_image(path)
    assert decoded.dtype == np.uint8
    assert set(np.unique(decoded)) <= {0, 255}
    assert read_header(path) == ((9, 11), np.dtype(np.uint8))


def test_cmyk_jpeg_becomes_rgb(tmp_path, rng):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(_rgb(rng)).convert("CMYK").save(path)
    assert decode_image(path).shape == (24, 32, 3)
    assert read_header(path) == ((24, 32, 3), np.dtype(np.uint8))


def test_exif_orientation_is_not_applied(tmp_path, rng):
    image = Image.fromarray(_rgb(rng, (10, 16)))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert decode_image(path).shape == (10, 16, 3)
    assert read_header(path) == ((10, 16, 3), np.dtype(np.uint8))


# ---------------------------------------------------------------------------
# bad files


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _encoded(rng: np.random.Generator, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_rgb(rng, (40, 48))).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def test_zero_byte_file(tmp_path):
    path = _write(tmp_path, "empty.png", b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.png: empty file \(0 bytes\)"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"empty file"):
        read_header(path)


def test_non_image_file(tmp_path):
    path = _write(tmp_path, "notes.png", b"these are not pixels\n" * 10)
    with pytest.raises(ImageDecodeError, match=r"notes\.png: not a supported image file"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"not a supported image file"):
        read_header(path)


def test_eps_is_refused_not_interpreted(tmp_path, rng):
    # Pillow opens EPS by running Ghostscript on it: a program, not a decoder, so no.
    path = tmp_path / "drawing.eps"
    Image.fromarray(_rgb(rng)).save(path, format="EPS")
    with pytest.raises(ImageDecodeError, match=r"drawing\.eps: not a supported image file"):
        decode_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match=r"gone\.png: file not found"):
        decode_image(tmp_path / "gone.png")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ImageDecodeError, match=r"folder\.png: is a directory"):
        decode_image(folder)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file regardless of mode"
)
def test_unreadable_file_by_mode(tmp_path, rng):
    path = _write(tmp_path, "secret.png", _encoded(rng, "PNG"))
    path.chmod(0)
    try:
        with pytest.raises(ImageDecodeError, match=r"secret\.png: permission denied"):
            decode_image(path)
    finally:
        path.chmod(0o600)


def test_unreadable_file(tmp_path, rng, monkeypatch):
    path = _write(tmp_path, "secret.png", _encoded(rng, "PNG"))
    real_open = os.open

    def guarded_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    with pytest.raises(ImageDecodeError, match=r"secret\.png: permission denied"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"secret\.png: permission denied"):
        read_header(path)


@pytest.mark.parametrize(
    ("image_format", "options", "suffix"),
    [
        ("PNG", {}, ".png"),
        ("JPEG", {"quality": 90}, ".jpg"),
        ("BMP", {}, ".bmp"),
        ("WEBP", {"quality": 80}, ".webp"),
        ("TIFF", {}, ".tif"),
    ],
)
@pytest.mark.parametrize("keep", [0.3, 0.9, -1])
def test_truncated_file_is_detected(tmp_path, rng, image_format, options, suffix, keep):
    data = _encoded(rng, image_format, **options)
    end = len(data) - 1 if keep == -1 else int(len(data) * keep)
    path = _write(tmp_path, f"cut{suffix}", data[:end])
    with pytest.raises(ImageDecodeError, match=rf"cut\{suffix}: .*(truncated|corrupt)"):
        decode_image(path)


def test_png_missing_only_its_end_chunk_is_truncated(tmp_path, rng):
    data = _encoded(rng, "PNG")
    path = _write(tmp_path, "cut.png", data[:-12])  # the whole IEND chunk
    with pytest.raises(ImageDecodeError, match=r"cut\.png: truncated PNG"):
        decode_image(path)


def test_corrupt_png_checksum(tmp_path, rng):
    data = bytearray(_encoded(rng, "PNG"))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    path = _write(tmp_path, "bad.png", bytes(data))
    with pytest.raises(ImageDecodeError, match=r"bad\.png: corrupt or truncated image"):
        decode_image(path)


def test_corrupt_compressed_tiff(tmp_path, rng):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, _rgb(rng, (40, 48)), photometric="rgb", compression="zlib")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError, match=r"bad\.tif: corrupt or truncated image"):
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


def test_bad_alpha_rule(tmp_path):
    with pytest.raises(ValueError, match=r"alpha must be one of drop, composite \(got 'white'\)"):
        decode_image(tmp_path / "x.png", alpha="white")


def test_decode_error_pickles_with_its_fields(tmp_path):
    error = ImageDecodeError(tmp_path / "a.png", "empty file (0 bytes)")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))
    assert isinstance(copy, ValueError)


# ---------------------------------------------------------------------------
# batches


def test_decode_batch_stacks_and_reports_failures(tmp_path, rng):
    arrays = [_rgb(rng, (10, 12)) for _ in range(3)]
    paths = []
    for k, array in enumerate(arrays):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(array).save(paths[-1])
    paths.insert(1, _write(tmp_path, "empty.png", b""))
    paths.append(tmp_path / "small.png")
    Image.fromarray(_rgb(rng, (5, 5))).save(paths[-1])
    stack, statuses = decode_batch(paths, shape=(10, 12, 3), dtype="uint8")
    assert stack.shape == (5, 10, 12, 3)
    assert stack.dtype == np.uint8
    assert statuses[0] == statuses[2] == statuses[3] == "ok"
    assert statuses[1].endswith("empty.png: empty file (0 bytes)")
    assert (
        "small.png: decoded to shape (5, 5, 3) uint8, expected the group's (10, 12, 3)"
        in (statuses[4])
    )
    np.testing.assert_array_equal(stack[[0, 2, 3]], np.stack(arrays))
    assert not stack[1].any() and not stack[4].any()


def test_decode_batch_infers_shape_from_first_good_file(tmp_path, rng):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (6, 7))).save(path)
    stack, statuses = decode_batch([tmp_path / "missing.png", path])
    assert stack.shape == (2, 6, 7, 3)
    assert "missing.png: file not found" in statuses[0]
    assert statuses[1] == "ok"


def test_decode_batch_with_nothing_decodable_needs_a_shape(tmp_path):
    with pytest.raises(ValueError, match=r"could not infer the stack shape.*missing\.png"):
        decode_batch([tmp_path / "missing.png"])
    stack, statuses = decode_batch([tmp_path / "missing.png"], shape=(4, 4), dtype=np.uint16)
    assert stack.shape == (1, 4, 4) and stack.dtype == np.uint16
    assert "file not found" in statuses[0]


# ---------------------------------------------------------------------------
# formats beyond the original five


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


# ---------------------------------------------------------------------------
# any failure inside a decoder is the file's failure


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


def test_decode_batch_never_raises_for_one_file(tmp_path, rng, monkeypatch):
    import pipeline.inputs.images as images

    good = tmp_path / "good.png"
    Image.fromarray(_rgb(rng, (6, 7))).save(good)
    real = images.decode_image

    def flaky(path, **kwargs):
        if Path(path).name == "bad.png":
            raise RuntimeError("a bug far below")
        return real(path, **kwargs)

    monkeypatch.setattr(images, "decode_image", flaky)
    _, statuses = decode_batch([tmp_path / "bad.png", good], shape=(6, 7, 3), dtype="uint8")
    assert statuses[0].endswith("bad.png: could not be decoded (RuntimeError: a bug far below)")
    assert statuses[1] == "ok"


# ---------------------------------------------------------------------------
# size limits and bounded reads


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


@pytest.mark.parametrize("value", [0, -5])
def test_bad_pixel_limit(tmp_path, value):
    with pytest.raises(ValueError, match=rf"max_image_pixels must be >= 1 \(got {value}\)"):
        decode_image(tmp_path / "x.png", max_image_pixels=value)


def test_pixel_limit_of_the_wrong_type(tmp_path):
    with pytest.raises(TypeError, match=r"max_image_pixels must be an integer \(got float\)"):
        read_header(tmp_path / "x.png", max_image_pixels=1e6)


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


# ---------------------------------------------------------------------------
# special files, changed files, names


def _decode_with_timeout(path: Path, seconds: float = 5.0) -> BaseException | np.ndarray | None:
    import threading

    outcome: list[BaseException | np.ndarray] = []

    def work() -> None:
        try:
            outcome.append(decode_image(path))
        except BaseException as error:  # handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        # Blocked opening a FIFO: give it a writer so the thread can end.
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(seconds)
        return None
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_like_an_image_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    outcome = _decode_with_timeout(path)
    assert outcome is not None, "decode_image blocked on a FIFO"
    assert isinstance(outcome, ImageDecodeError)
    assert "pipe.png: is a named pipe (FIFO), not a regular file; it is not read" in str(outcome)
    assert not outcome.transient


def test_socket_named_like_an_image_is_refused(tmp_path):
    import socket

    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("needs UNIX sockets")
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ImageDecodeError, match=r"s\.png: is a socket, not a regular file"):
            decode_image(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_link_to_a_device_is_refused_unread(tmp_path):
    path = tmp_path / "x.png"
    os.symlink("/dev/zero", path)
    with pytest.raises(ImageDecodeError, match=r"x\.png: is a character device, not a regular"):
        decode_image(path)
    with pytest.raises(ImageDecodeError, match=r"is a character device"):
        read_header(path)


def test_file_rewritten_after_its_header_was_read(tmp_path, rng):
    from pipeline.inputs.images import inspect_image

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    header = inspect_image(path)
    assert header.stamp.size == path.stat().st_size
    Image.fromarray(_rgb(rng, (12, 12))).save(path)  # same name, other pixels
    with pytest.raises(
        ImageDecodeError,
        match=r"a\.png: changed size from \d+ to \d+ bytes since its header was read.*transient",
    ) as info:
        decode_image(path, expected=header.stamp)
    assert info.value.transient
    stack, statuses = decode_batch([path], shape=(12, 12, 3), dtype="uint8", stamps=[header.stamp])
    assert "changed size" in statuses[0] and not stack.any()


def test_file_replaced_by_another_of_the_same_size(tmp_path, rng):
    from pipeline.inputs.images import inspect_image

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    header = inspect_image(path)
    data = path.read_bytes()
    other = tmp_path / "b.png"
    other.write_bytes(data)
    os.utime(other, ns=(header.stamp.mtime_ns, header.stamp.mtime_ns))
    os.replace(other, path)  # an atomic replacement keeping size and time: only the inode differs
    with pytest.raises(ImageDecodeError, match=r"a\.png: was replaced by another file since"):
        decode_image(path, expected=header.stamp)


def test_file_that_grows_while_it_is_decoded(tmp_path, rng, monkeypatch):
    import pipeline.inputs.images as images

    path = tmp_path / "a.png"
    Image.fromarray(_rgb(rng, (8, 8))).save(path)
    real = images.decode_pillow

    def appending(file, handle, *args):
        with open(path, "ab") as writer:
            writer.write(b"more")
        return real(file, handle, *args)

    monkeypatch.setattr(images, "decode_pillow", appending)
    with pytest.raises(
        ImageDecodeError, match=r"a\.png: grew from (\d+) to \d+ bytes while it was read.*transient"
    ):
        decode_image(path)


def test_stamps_must_match_the_paths(tmp_path):
    with pytest.raises(
        ValueError, match=r"stamps must hold one entry per path \(got 1 for 2 paths\)"
    ):
        decode_batch(
            [tmp_path / "a.png", tmp_path / "b.png"], shape=(4, 4), dtype="uint8", stamps=[None]
        )


def test_names_that_are_not_utf8_decode_and_are_shown_escaped(tmp_path, rng):
    folder = os.fsencode(tmp_path)
    good = os.fsdecode(folder + b"/caf\xe9 $HOME #1\n\x1b[31m.png")
    bad = os.fsdecode(folder + b"/bro\xffken.png")
    try:
        Image.fromarray(_rgb(rng, (8, 8))).save(good, format="PNG")
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    Path(bad).write_bytes(b"not an image")
    assert decode_image(good).shape == (8, 8, 3)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(bad)
    text = str(info.value)
    text.encode("utf-8")  # no lone surrogates: storable in Zarr, NetCDF and CSV
    assert "bro\\xffken.png: not a supported image file" in text
    _, statuses = decode_batch([bad], shape=(8, 8, 3), dtype="uint8")
    statuses[0].encode("utf-8")


def test_shown_names_lead_back_to_the_real_files(tmp_path, rng):
    from pipeline.inputs.images import display_path, path_from_display

    folder = os.fsencode(tmp_path)
    names = [
        b"caf\xe9.png",
        b"\xff\xfe\xfd.png",
        b"plain.png",
        b"new\nline.png",
        b"\xe6\x97\xa5.png",
    ]
    try:
        for raw in names:
            Path(os.fsdecode(folder + b"/" + raw)).write_bytes(b"x")
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    literal = tmp_path / "back\\x41slash.png"  # a UTF-8 name holding a literal \x41
    literal.write_bytes(b"x")
    for entry in os.listdir(folder):
        real = os.path.join(folder, entry)
        shown = display_path(os.fsdecode(real))
        shown.encode("utf-8")
        assert os.fsencode(path_from_display(shown)) == real
    assert display_path(b"/d/caf\xe9.png") == "/d/caf\\xe9.png"


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
