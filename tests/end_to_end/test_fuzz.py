"""Fuzzing what users hand us: mutated image files and configs through the CLI and the API.

Seeded. For every case: no uncaught exception (exit status 0, 1 or 2 with a
message), no hang (a time limit per run), and no wrong-but-plausible number: a
pair whose mutated file still decodes must score exactly what ``pipeline.ssim``
gives on the decoded arrays; a failed pair has NaN statistics and a reason.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image
from reliability_counts import record

import pipeline as sp
from pipeline.cli.main import main
from pipeline.inputs.images import ImageDecodeError, decode_image, read_header

ROUNDS, FILES_PER_ROUND, CONFIGS = 6, 40, 60
TIME_LIMIT_S = 60


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "TIFF":  # the decoder of TIFF files is tifffile: write them with it too
        tifffile.imwrite(buffer, array, photometric="rgb" if array.ndim == 3 else "minisblack")
    else:
        Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A valid small PNG whose header (with a correct CRC) declares another size."""
    data = bytearray(_encode(np.zeros((8, 8), np.uint8), "PNG"))
    header = bytearray(data[12:29])
    header[4:12] = struct.pack(">II", width, height)
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(header)))
    return bytes(data)


def _mutate(rng: np.random.Generator, data: bytes) -> tuple[str, bytes]:
    kind = str(
        rng.choice(["flip", "flip_many", "truncate", "random", "empty", "bomb", "huge", "none"])
    )
    if kind in ("flip", "flip_many"):
        out = bytearray(data)
        for _ in range(1 if kind == "flip" else int(rng.integers(2, 40))):
            position = int(rng.integers(0, len(out)))
            out[position] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(out)
    if kind == "truncate":
        return kind, data[: int(rng.integers(0, len(data)))]
    if kind == "random":
        return kind, rng.bytes(int(rng.integers(1, 2000)))
    if kind == "empty":
        return kind, b""
    if kind == "bomb":  # far beyond Image.MAX_IMAGE_PIXELS: refused before any decoding
        return kind, _png_declaring(200_000, 200_000)
    if kind == "huge":  # within 2x MAX_IMAGE_PIXELS: Pillow only warns
        return kind, _png_declaring(9_500, 9_500)
    return kind, data


def _pillow_writes(fmt: str) -> bool:
    from PIL import features

    return {"AVIF": "avif", "JPEG2000": "jpg_2000", "WEBP": "webp"}.get(fmt) is None or bool(
        features.check({"AVIF": "avif", "JPEG2000": "jpg_2000", "WEBP": "webp"}[fmt])
    )


_ROUND_FORMATS = [
    (fmt, suffix)
    for fmt, suffix in [
        ("PNG", ".png"),
        ("BMP", ".bmp"),
        ("TIFF", ".tif"),
        ("JPEG", ".jpg"),
        ("WEBP", ".webp"),
        ("JPEG2000", ".jp2"),
        ("AVIF", ".avif"),
        ("GIF", ".gif"),
    ]
    if _pillow_writes(fmt)
]


def _write_round(rng: np.random.Generator, root: Path) -> list[str]:
    kinds = []
    for side in ("ref", "gen"):
        (root / side).mkdir(parents=True)
    for i in range(FILES_PER_ROUND):
        colour = bool(rng.integers(0, 2))
        shape = (24, 24, 3) if colour else (24, 24)
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        fmt, suffix = _ROUND_FORMATS[int(rng.integers(0, len(_ROUND_FORMATS)))]
        kind, data = _mutate(rng, _encode(y, fmt))
        if rng.random() < 0.15:  # wrong extension: decoded by content, not by name
            others = [ext for _, ext in _ROUND_FORMATS if ext != suffix]
            suffix = others[int(rng.integers(0, len(others)))]
            kind += "+wrong_extension"
        (root / "ref" / f"p{i:03d}{suffix}").write_bytes(_encode(x, fmt))
        (root / "gen" / f"p{i:03d}{suffix}").write_bytes(data)
        kinds.append(kind)
    return kinds


def _decoded_or_none(path: Path) -> np.ndarray | None:
    try:
        return decode_image(path)
    except ImageDecodeError:
        return None


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_mutated_image_files_through_the_cli(tmp_path, round_, capsys):
    rng = np.random.default_rng(1000 + round_)
    kinds = _write_round(rng, tmp_path)
    out = tmp_path / "r.zarr"
    started = time.monotonic()
    code = main(["evaluate", str(tmp_path / "ref"), str(tmp_path / "gen"), "--out", str(out)])
    assert time.monotonic() - started < TIME_LIMIT_S
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1), err
    ds = sp.open_results(out).load()
    assert (code == 1) == bool((ds["status"].values != "ok").any())
    checked = 0
    for pair_id, status, reference, generated in zip(
        ds["image"].values,
        ds["status"].values,
        ds["reference"].values,
        ds["generated"].values,
        strict=True,
    ):
        ssim = ds["ssim"].sel(image=pair_id, region="all").item()
        if status != "ok":
            assert status and np.isnan(ssim) and ds["count"].sel(image=pair_id).sum() == 0
            continue
        x, y = decode_image(reference), _decoded_or_none(Path(generated))
        assert y is not None and y.shape == x.shape, f"{pair_id} ok but does not decode"
        expected = sp.ssim(x, y, channel_axis=-1 if x.ndim == 3 else None)
        assert abs(ssim - expected) < 1e-6, (pair_id, ssim, expected)
        checked += 1
    assert len(ds["image"]) + len(ds.attrs.get("unpaired_generated", [])) <= FILES_PER_ROUND
    failed = int((ds["status"].values != "ok").sum())
    assert checked + failed == len(ds["image"]) == len(kinds)
    record("fuzz", "image file (mutated or not) -> failed pair with a reason", failed)
    record("fuzz", "image file (mutated or not) -> decodes, score == ssim(decoded)", checked)


# ---------------------------------------------------------------------------
# mutated real photographs of every format, straight through the decoder

FUZZ_CASES = 800


def _photograph_files() -> dict[str, bytes]:
    """Crops of scikit-image's bundled photographs, encoded in every format Pillow writes."""
    from pipeline.testing import photograph

    sources = {
        "astronaut": photograph("astronaut")[100:148, 180:244],
        "camera": photograph("camera")[200:240, 200:256],
    }
    options = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80}, "AVIF": {"quality": 70}}
    files = {}
    for name, array in sources.items():
        for fmt, _ in _ROUND_FORMATS:
            if fmt == "TIFF":
                for compression in (None, "zlib"):
                    buffer = io.BytesIO()
                    photometric = "rgb" if array.ndim == 3 else "minisblack"
                    tifffile.imwrite(
                        buffer, array, photometric=photometric, compression=compression
                    )
                    files[f"{name}-{compression or 'raw'}.tif"] = buffer.getvalue()
                continue
            if fmt in ("WEBP", "AVIF") and array.ndim == 2:
                continue
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, fmt, **options.get(fmt, {}))
            suffix = dict(_ROUND_FORMATS)[fmt]
            files[f"{name}{suffix}"] = buffer.getvalue()
    return files


def _mutate_file(rng: np.random.Generator, data: bytes, other: bytes) -> tuple[str, bytes]:
    kind = str(
        rng.choice(
            ["flip", "flip_many", "truncate", "insert", "delete", "zero_run", "splice", "append"]
        )
    )
    out = bytearray(data)
    at = int(rng.integers(0, len(out)))
    if kind == "flip":
        out[at] ^= 1 << int(rng.integers(0, 8))
    elif kind == "flip_many":
        for _ in range(int(rng.integers(2, 60))):
            out[int(rng.integers(0, len(out)))] ^= 1 << int(rng.integers(0, 8))
    elif kind == "truncate":
        del out[at:]
    elif kind == "insert":  # an inserted chunk of random bytes, as a bad copy would make
        out[at:at] = rng.bytes(int(rng.integers(1, 300)))
    elif kind == "delete":
        del out[at : at + int(rng.integers(1, 300))]
    elif kind == "zero_run":
        length = int(rng.integers(1, 200))
        out[at : at + length] = bytes(len(out[at : at + length]))
    elif kind == "splice":  # the head of one format on the body of another
        out = out[:at] + bytearray(other[int(rng.integers(0, len(other))) :])
    else:
        out += rng.bytes(int(rng.integers(1, 5000)))
    return kind, bytes(out)


def test_mutated_photographs_of_every_format_decode_or_fail_cleanly(tmp_path):
    rng = np.random.default_rng(2004_0413)
    files = _photograph_files()
    names = sorted(files)
    suffixes = sorted({Path(name).suffix for name in names} | {".png", ".jpeg", ".tiff"})
    outcomes: dict[str, int] = {}
    started = time.monotonic()
    for case in range(FUZZ_CASES):
        name = names[int(rng.integers(0, len(names)))]
        other = files[names[int(rng.integers(0, len(names)))]]
        if case % 10 == 0:  # intact, but renamed to another format's extension
            kind, data = "renamed", files[name]
            suffix = suffixes[int(rng.integers(0, len(suffixes)))]
        else:
            kind, data = _mutate_file(rng, files[name], other)
            suffix = Path(name).suffix
        path = tmp_path / f"case{case:04d}{suffix}"
        path.write_bytes(data)
        try:
            header = read_header(path)
        except ImageDecodeError as error:
            header = error
        try:
            array = decode_image(path)
        except ImageDecodeError as error:
            assert str(error).startswith(str(path)), error
            assert error.reason
            outcomes["refused"] = outcomes.get("refused", 0) + 1
            continue
        # Whatever decodes is an image in the documented layout, as its header said.
        assert array.ndim in (2, 3) and (array.ndim == 2 or array.shape[2] == 3), (kind, name)
        assert array.dtype in (np.uint8, np.uint16, np.int32, np.float32), (kind, name)
        if not isinstance(header, ImageDecodeError):
            assert header == (array.shape, array.dtype), (kind, name)
        if kind == "renamed":
            assert array.size, name
        outcomes["decoded"] = outcomes.get("decoded", 0) + 1
        path.unlink()
    assert time.monotonic() - started < TIME_LIMIT_S
    assert outcomes.get("refused", 0) > FUZZ_CASES // 4 and outcomes.get("decoded", 0) > 0
    record("fuzz", "mutated photograph (8 formats) -> refused with a reason", outcomes["refused"])
    record(
        "fuzz", "mutated photograph (8 formats) -> decodes as its header says", outcomes["decoded"]
    )


_VALUES = [
    0,
    -1,
    1,
    7,
    2.5,
    float("nan"),
    float("inf"),
    "",
    "7x7",
    "labels",
    "wang2004",
    "zarr",
    None,
    True,
    [],
    [1, 2, 3],
    {},
    {"a": 1},
    "x" * 300,
]
_VALID = [
    ("hist_bins", 7),
    ("k1", 0.02),
    ("regions", "3x3"),
    ("nan_policy", "mask"),
    ("profile", "skimage"),
    ("win_size", 7),
    ("batch_images", 1),
    ("chunks", [1, 12, 12]),
]
_KEYS = [
    "profile",
    "win_size",
    "sigma",
    "k1",
    "k2",
    "data_range",
    "regions",
    "hist_bins",
    "chunks",
    "batch_images",
    "nan_policy",
    "color_mode",
    "engine",
    "scheduler",
    "cluster",
    "ms_ssim",
    "label_names",
    "output_format",
    "zarr_format",
    "win_sise",
    "",
    "7",
]


def test_mutated_configs_through_the_cli_and_the_api(tmp_path, capsys, rng):
    x = rng.integers(0, 256, (2, 24, 24), dtype=np.uint8)
    for name, data in (("ref", x), ("gen", 255 - x)):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(data[i]).save(tmp_path / name / f"{i}.png")
    base = yaml.safe_dump({"regions": "2x2", "hist_bins": 10})
    outcomes = {0: 0, 1: 0, 2: 0}
    for case in range(CONFIGS):
        path = tmp_path / f"c{case}.yaml"
        if case % 3 == 2:  # byte-level mutation of a valid file
            text = bytearray(base.encode())
            for _ in range(int(rng.integers(1, 6))):
                text[int(rng.integers(0, len(text)))] = int(rng.integers(0, 256))
            path.write_bytes(bytes(text))
        elif case % 3 == 1:  # valid settings, recombined
            picks = rng.choice(len(_VALID), size=int(rng.integers(1, 4)), replace=False)
            path.write_text(yaml.safe_dump(dict(_VALID[int(i)] for i in picks)))
        else:
            keys = rng.choice(_KEYS, size=int(rng.integers(1, 4)), replace=False)
            mapping = {str(k): _VALUES[int(rng.integers(0, len(_VALUES)))] for k in keys}
            path.write_text(yaml.safe_dump(mapping))
        out = tmp_path / f"r{case}.zarr"
        started = time.monotonic()
        argv = ["evaluate", str(tmp_path / "ref"), str(tmp_path / "gen")]
        code = main([*argv, "--out", str(out), "--config", str(path), "--quiet"])
        assert time.monotonic() - started < TIME_LIMIT_S
        err = capsys.readouterr().err
        assert code in outcomes and "Traceback" not in err, (path.read_bytes(), err)
        if code == 2:
            assert "error:" in err
        outcomes[code] += 1
        try:  # the API: a configuration error is a ValueError/TypeError, nothing else
            sp.load_config(path)
        except (ValueError, TypeError) as error:
            assert str(error)
    assert outcomes[2] > 0 and outcomes[0] > 0
    record("fuzz", "mutated configs (CLI + API)", CONFIGS)
