"""Folder sources: pairing, size groups, per-pair failures, unpaired files, resume."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline as sp
import pipeline.inputs.folders as folders
from pipeline.inputs.images import decode_image
from pipeline.results.schema import SIZE_GROUPS, UNPAIRED_GENERATED, UNPAIRED_REFERENCE


def _save(path: Path, array: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def _pair(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-30, 31, shape)
    return x, np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)


def _expected(ds, k: int) -> float:
    x = decode_image(str(ds.reference.values[k]))
    y = decode_image(str(ds.generated.values[k]))
    return float(sp.ssim(x, y, channel_axis=-1 if x.ndim == 3 else None))


def _check_values(ds) -> None:
    for k in range(ds.sizes["image"]):
        if ds.status.values[k] == "ok":
            assert float(ds.ssim.sel(region="all")[k]) == pytest.approx(_expected(ds, k), abs=1e-5)


@pytest.fixture
def mixed(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """Grey 40x48, RGB 40x48 and RGB 32x64 pairs, one pair by stem (png vs jpg), nested."""
    ref, gen = tmp_path / "real", tmp_path / "fake"
    for name, shape in [
        ("grey/a.png", (40, 48)),
        ("grey/b.png", (40, 48)),
        ("rgb/c.png", (40, 48, 3)),
        ("rgb/d.png", (40, 48, 3)),
        ("wide/e.png", (32, 64, 3)),
    ]:
        x, y = _pair(rng, shape)
        _save(ref / name, x)
        _save(gen / name, y)
    x, y = _pair(rng, (40, 48, 3))
    _save(ref / "rgb/f.png", x)
    _save(gen / "rgb/f.jpg", y, "JPEG")
    return ref, gen


def test_pairs_by_stem_and_size_groups_match_in_memory_ssim(mixed: tuple[Path, Path]) -> None:
    ds = sp.evaluate(*mixed)
    assert sorted(ds.image.values.tolist()) == [
        "grey/a.png",
        "grey/b.png",
        "rgb/c.png",
        "rgb/d.png",
        "rgb/f.png",
        "wide/e.png",
    ]
    assert list(ds.status.values) == ["ok"] * 6
    k = list(ds.image.values).index("rgb/f.png")
    assert str(ds.generated.values[k]).endswith("rgb/f.jpg")
    import json

    groups = json.loads(ds.attrs[SIZE_GROUPS])
    assert sorted((tuple(g["shape"]), g["pairs"]) for g in groups) == [
        ((32, 64, 3), 1),
        ((40, 48, 1), 2),
        ((40, 48, 3), 3),
    ]
    _check_values(ds)


def test_bad_files_fail_their_pair_only(tmp_path: Path, rng: np.random.Generator) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(8):
        x, y = _pair(rng, (40, 48, 3))
        _save(ref / f"p{i}.png", x)
        _save(gen / f"p{i}.png", y)
    (gen / "p1.png").write_bytes((gen / "p1.png").read_bytes()[:300])  # truncated
    (gen / "p2.png").write_bytes(b"")  # zero bytes
    (gen / "p3.png").write_text("not an image")
    data = bytearray((gen / "p4.png").read_bytes())
    data[-200:-150] = bytes(50)  # pixel stream damaged: only decoding finds it
    (gen / "p4.png").write_bytes(bytes(data))
    _save(gen / "p5.png", rng.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    (gen / "p6.png").unlink()
    os.symlink(tmp_path / "missing.png", gen / "p6.png")  # unreadable: dangling link
    ds = sp.evaluate(ref, gen, batch_images=3, regions="2x2")
    status = dict(zip(ds.image.values.tolist(), ds.status.values.tolist(), strict=True))
    assert status["p0.png"] == status["p7.png"] == "ok"
    assert "truncated" in status["p1.png"] and "p1.png" in status["p1.png"]
    assert "empty file (0 bytes)" in status["p2.png"]
    assert "not a supported image file" in status["p3.png"]
    assert "corrupt or truncated" in status["p4.png"] or "truncated" in status["p4.png"]
    assert "shape mismatch" in status["p5.png"]
    assert "(40, 48, 3)" in status["p5.png"] and "(30, 30, 3)" in status["p5.png"]
    assert "file not found" in status["p6.png"]
    failed = [k for k, v in enumerate(ds.status.values) if v != "ok"]
    assert np.isnan(ds.ssim.values[failed]).all()
    assert (ds["count"].values[failed] == 0).all()
    assert (ds["ssim_hist"].values[failed] == 0).all()
    _check_values(ds)


def test_unpaired_and_ambiguous_files_are_listed(tmp_path: Path, rng: np.random.Generator) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    x, y = _pair(rng, (32, 32))
    _save(ref / "a.png", x)
    _save(gen / "a.png", y)
    _save(ref / "only_ref.png", x)
    _save(gen / "only_gen.png", y)
    _save(ref / "amb.png", x)
    _save(gen / "amb.jpg", y, "JPEG")
    _save(gen / "amb.bmp", y, "BMP")
    ds = sp.evaluate(ref, gen)
    assert ds.image.values.tolist() == ["a.png"]
    assert ds.attrs[UNPAIRED_REFERENCE] == ["amb.png", "only_ref.png"]
    assert ds.attrs[UNPAIRED_GENERATED] == ["amb.bmp", "amb.jpg", "only_gen.png"]
    assert "amb" in ds.attrs["ambiguous"][0]


def test_each_file_is_decoded_once(
    mixed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = folders.decode_batch

    def counting(paths, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(str(p) for p in paths)
        return original(paths, **kwargs)

    monkeypatch.setattr(folders, "decode_batch", counting)
    ds = sp.evaluate(*mixed, batch_images=1, regions="2x2", chunk_pixels=600)
    files = [*ds.reference.values.tolist(), *ds.generated.values.tolist()]
    assert sorted(seen) == sorted(files)  # every file once, tiles and batches included


def test_alpha_is_dropped_and_luma_handles_grey(tmp_path: Path, rng: np.random.Generator) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    x, y = _pair(rng, (32, 40, 4))
    _save(ref / "rgba.png", x)
    _save(gen / "rgba.png", y)
    g1, g2 = _pair(rng, (32, 40))
    _save(ref / "grey.png", g1)
    _save(gen / "grey.png", g2)
    ds = sp.evaluate(ref, gen)
    k = ds.image.values.tolist().index("rgba.png")
    expected = sp.ssim(x[..., :3], y[..., :3], channel_axis=-1)
    assert float(ds.ssim.sel(region="all")[k]) == pytest.approx(expected, abs=1e-5)
    luma = sp.evaluate(ref, gen, color_mode="luma")
    assert luma.attrs["color_mode"] == "luma"
    assert (luma.status.values == "ok").all()


def test_tile_regions_union_over_size_groups(mixed: tuple[Path, Path]) -> None:
    ds = sp.evaluate(*mixed, regions="32px")
    assert ds.region.values.tolist()[:1] == ["all"]
    k = ds.image.values.tolist().index("wide/e.png")  # 32x64: tiles r0c0, r0c1 only
    counts = dict(zip(ds.region.values.tolist(), ds["count"].values[k].tolist(), strict=True))
    assert counts["r1c0"] == 0 and counts["r0c1"] > 0


def test_save_maps_needs_one_size(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="save_maps needs images of one size"):
        sp.evaluate(*mixed, save_maps=True, output=str(tmp_path / "r.zarr"))


def test_missing_and_empty_folders(tmp_path: Path, mixed: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="generated folder not found"):
        sp.evaluate(mixed[0], tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        sp.evaluate(mixed[0], tmp_path / "empty")


def test_resume_on_folders(mixed: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.zarr"
    full = sp.evaluate(*mixed, batch_images=1, regions="2x2").load()

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int, n: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        sp.evaluate(*mixed, batch_images=1, regions="2x2", output=str(out), on_batch=stop_after_two)
    partial = sp.open_results(out)
    assert (partial.status.values == "pending").sum() == 4
    with pytest.raises(FileExistsError, match="resume"):
        sp.evaluate(*mixed, batch_images=1, regions="2x2", output=str(out))
    done = sp.evaluate(*mixed, batch_images=1, regions="2x2", output=str(out), resume=True).load()
    assert done.image.values.tolist() == full.image.values.tolist()
    np.testing.assert_array_equal(done.ssim.values, full.ssim.values)
    np.testing.assert_array_equal(done["ssim_hist"].values, full["ssim_hist"].values)
    # Another file content: the store is refused rather than mixed.
    target = mixed[1] / "grey/a.png"
    _save(target, np.zeros((40, 48), np.uint8))
    with pytest.raises(ValueError, match="different sources"):
        sp.evaluate(*mixed, batch_images=1, regions="2x2", output=str(out), resume=True)


# ---------------------------------------------------------------------------
# hostile folders: special files, odd names, files that change, decoder crashes


def test_odd_names_and_special_files_through_evaluate(tmp_path: Path, rng) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    names = [b"caf\xe9.png", b"line\nbreak $HOME #1.png", b"esc\x1b[2J.png", b"plain.png"]
    try:
        for raw in names:
            x, y = _pair(rng, (24, 24))
            _save(Path(os.fsdecode(os.fsencode(ref) + b"/" + raw)), x)
            _save(Path(os.fsdecode(os.fsencode(gen) + b"/" + raw)), y)
    except (OSError, UnicodeError):
        pytest.skip("the file system refuses names that are not UTF-8")
    if hasattr(os, "mkfifo"):
        os.mkfifo(gen / "pipe.png")
    os.symlink("/dev/zero", gen / "zero.png")
    out = tmp_path / "r.zarr"
    sp.evaluate(ref, gen, output=str(out))
    ds = sp.open_results(out).load()
    assert list(ds.status.values) == ["ok"] * 4
    ids = ds.image.values.tolist()
    assert "caf\\xe9.png" in ids and "line\nbreak $HOME #1.png" in ids
    for text in [*ids, *ds.reference.values.tolist(), *ds.generated.values.tolist()]:
        text.encode("utf-8")
    skipped = ds.attrs["skipped_files"]
    assert f"{gen}/zero.png (a character device, not a regular file (never opened))" in skipped
    for k, pair_id in enumerate(ids):
        # The id shows the name's bytes that are not UTF-8 as \xNN; the files are read
        # under their real names.
        (raw,) = [n for n in names if n.decode("utf-8", "backslashreplace") == pair_id]
        x = decode_image(os.fsdecode(os.fsencode(ref) + b"/" + raw))
        y = decode_image(os.fsdecode(os.fsencode(gen) + b"/" + raw))
        assert float(ds.ssim.sel(region="all")[k]) == pytest.approx(sp.ssim(x, y), abs=1e-5)


def test_file_changed_after_pairing_fails_its_pair_transiently(tmp_path: Path, rng) -> None:
    from pipeline.inputs.files import is_transient_status
    from pipeline.inputs.options import InputOptions

    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(3):
        x, y = _pair(rng, (24, 24))
        _save(ref / f"{i}.png", x)
        _save(gen / f"{i}.png", y)
    source = folders.open_folder_pair(ref, gen, None, InputOptions())
    assert source is not None
    x, y = _pair(rng, (24, 24))
    _save(gen / "1.png", np.zeros((24, 24), np.uint8) + 9)  # rewritten after its header was read
    (gen / "2.png").unlink()  # vanished
    status = source.groups[0].read_status.compute().tolist()
    assert status[0] == "ok"
    assert "1.png: " in status[1] and "since its header was read" in status[1]
    assert "2.png: file not found" in status[2]
    assert is_transient_status(status[1]) and is_transient_status(status[2])


def test_max_image_pixels_setting_reaches_folder_sources(tmp_path: Path, rng) -> None:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for name, shape in (("small.png", (20, 20)), ("large.png", (24, 30))):
        x, y = _pair(rng, shape)
        _save(ref / name, x)
        _save(gen / name, y)
    ds = sp.evaluate(ref, gen, max_image_pixels=600)
    status = dict(zip(ds.image.values.tolist(), ds.status.values.tolist(), strict=True))
    assert status["small.png"] == "ok"
    assert (
        "large.png: declares 30x24 pixels (720), more than max_image_pixels (600)"
        in (status["large.png"])
    )


def test_decoder_crash_inside_pillow_fails_that_pair_only(
    tmp_path: Path, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import PngImagePlugin

    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for i in range(4):
        x, y = _pair(rng, (24, 24, 3))
        _save(ref / f"{i}.png", x)
        _save(gen / f"{i}.png", y)
    real = PngImagePlugin.PngImageFile.load_end
    calls = {"n": 0}

    def crashing_third(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise IndexError("an exception nobody anticipated")
        return real(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_end", crashing_third)
    ds = sp.evaluate(ref, gen, scheduler="synchronous")
    failed = [s for s in ds.status.values.tolist() if s != "ok"]
    assert len(failed) == 1
    assert "corrupt or truncated image (IndexError: an exception nobody anticipated)" in failed[0]
    assert int((ds.status.values == "ok").sum()) == 3


# -- folders behind URLs -----------------------------------------------------------------


def test_folder_url_pairs_and_scores_like_the_local_folder(
    tmp_path: Path, rng: np.random.Generator, s3_bucket: str
) -> None:
    from s3_server import upload

    for name, shape in [("a.png", (32, 40, 3)), ("sub/b.png", (32, 40, 3)), ("g.png", (24, 24))]:
        x, y = _pair(rng, shape)
        _save(tmp_path / "ref" / name, x)
        _save(tmp_path / "gen" / Path(name).with_suffix(".bmp"), y, "BMP")  # paired by stem
    _save(tmp_path / "ref" / "only_ref.png", _pair(rng, (8, 8))[0])
    (tmp_path / "ref" / "notes.txt").write_text("not an image")
    (tmp_path / "ref" / ".hidden").mkdir()
    _save(tmp_path / "ref" / ".hidden" / "h.png", _pair(rng, (8, 8))[0])
    upload(tmp_path / "ref", f"s3://{s3_bucket}/ref")
    upload(tmp_path / "gen", f"s3://{s3_bucket}/gen")
    local = sp.evaluate(tmp_path / "ref", tmp_path / "gen")
    remote = sp.evaluate(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/gen")
    assert (
        remote.image.values.tolist()
        == local.image.values.tolist()
        == [
            "a.png",
            "sub/b.png",
            "g.png",
        ]
    )
    np.testing.assert_array_equal(remote.ssim.values, local.ssim.values)
    for name in (UNPAIRED_REFERENCE, UNPAIRED_GENERATED, SIZE_GROUPS):
        assert remote.attrs[name] == local.attrs[name]
    assert sorted(remote.attrs["skipped_files"]) == [
        f"s3://{s3_bucket}/ref/.hidden (hidden folder)",
        f"s3://{s3_bucket}/ref/notes.txt (extension '.txt' is not an image type)",
    ]
    assert remote.generated.values[0] == f"s3://{s3_bucket}/gen/a.bmp"


def test_object_that_vanishes_after_planning_fails_its_pair_only(
    tmp_path: Path, rng: np.random.Generator, s3_bucket: str
) -> None:
    from s3_server import upload

    from pipeline.inputs.files import is_transient_status
    from pipeline.inputs.opening import open_pair
    from pipeline.storage.locations import filesystem, location

    for name in ("a.png", "b.png", "c.png"):
        x, y = _pair(rng, (16, 16))
        _save(tmp_path / "ref" / name, x)
        _save(tmp_path / "gen" / name, y)
    upload(tmp_path / "ref", f"s3://{s3_bucket}/ref")
    upload(tmp_path / "gen", f"s3://{s3_bucket}/gen")
    pair = open_pair(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/gen")
    filesystem(location(f"s3://{s3_bucket}")).rm(f"{s3_bucket}/gen/b.png")
    status = pair.groups[0].read_status.compute().tolist()
    assert status[0] == status[2] == "ok"
    assert status[1].startswith(f"s3://{s3_bucket}/gen/b.png: object not found")
    assert is_transient_status(status[1])


def test_folder_url_errors_name_the_url(s3_bucket: str, tmp_path: Path) -> None:
    from s3_server import upload

    from pipeline.inputs.pairing import pair_folders

    _save(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    upload(tmp_path / "a.png", f"s3://{s3_bucket}/ref/a.png")
    (tmp_path / "n.txt").write_text("x")
    upload(tmp_path / "n.txt", f"s3://{s3_bucket}/text/n.txt")
    with pytest.raises(
        FileNotFoundError, match=f"generated folder: no object or prefix at s3://{s3_bucket}/gen"
    ):
        pair_folders(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/gen")
    with pytest.raises(
        NotADirectoryError, match="generated must be a folder of images, got an object"
    ):
        pair_folders(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/ref/a.png")
    with pytest.raises(
        ValueError, match=f"generated folder s3://{s3_bucket}/text contains no images"
    ):
        pair_folders(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/text")


def test_graph_of_a_folder_url_pickles_for_distributed_workers(
    tmp_path: Path, rng: np.random.Generator, s3_bucket: str
) -> None:
    import pickle

    from s3_server import upload

    from pipeline.inputs.opening import open_pair

    x, y = _pair(rng, (16, 16))
    _save(tmp_path / "ref" / "a.png", x)
    _save(tmp_path / "gen" / "a.png", y)
    upload(tmp_path / "ref", f"s3://{s3_bucket}/ref")
    upload(tmp_path / "gen", f"s3://{s3_bucket}/gen")
    part = open_pair(f"s3://{s3_bucket}/ref", f"s3://{s3_bucket}/gen").groups[0]
    # What a distributed scheduler does with the tasks: pickle them, run them elsewhere.
    copy = pickle.loads(pickle.dumps(part.generated))
    np.testing.assert_array_equal(copy.compute(scheduler="sync")[0, ..., 0], y)
