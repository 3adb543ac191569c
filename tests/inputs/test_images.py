"""pipeline.inputs.images: decoding image files, their layout rules, bad files, batches.

Round trips per format and bit depth, the layout and dtype rules, every bad-file kind
met before a decoder runs, and ``decode_batch``. The decoders' own checks are in
test_formats.py, special and changed files and file names in test_files.py.
"""

from __future__ import annotations

import io
import os
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


def test_bad_alpha_rule(tmp_path):
    with pytest.raises(ValueError, match=r"alpha must be one of drop, composite \(got 'white'\)"):
        decode_image(tmp_path / "x.png", alpha="white")


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
# settings checked before any file is opened


@pytest.mark.parametrize("value", [0, -5])
def test_bad_pixel_limit(tmp_path, value):
    with pytest.raises(ValueError, match=rf"max_image_pixels must be >= 1 \(got {value}\)"):
        decode_image(tmp_path / "x.png", max_image_pixels=value)


def test_pixel_limit_of_the_wrong_type(tmp_path):
    with pytest.raises(TypeError, match=r"max_image_pixels must be an integer \(got float\)"):
        read_header(tmp_path / "x.png", max_image_pixels=1e6)


def test_stamps_must_match_the_paths(tmp_path):
    with pytest.raises(
        ValueError, match=r"stamps must hold one entry per path \(got 1 for 2 paths\)"
    ):
        decode_batch(
            [tmp_path / "a.png", tmp_path / "b.png"], shape=(4, 4), dtype="uint8", stamps=[None]
        )
