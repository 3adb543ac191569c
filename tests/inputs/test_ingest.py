"""ingest: folder -> Zarr stack; evaluating the stacks equals evaluating the folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from PIL import Image

import pipeline as sp
from pipeline.cli.main import main
from pipeline.inputs.ingest import FORMAT_ATTR, IMAGES, STACK_FILE, ingest_folder
from pipeline.results.schema import STATUS
from pipeline.testing import degrade, photograph


@pytest.fixture
def folders(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for name, shape in [("a.png", (30, 40, 3)), ("b/c.png", (30, 40, 3)), ("g.png", (24, 24))]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
        for root, image in ((ref, x), (gen, y)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name)
    return ref, gen


def test_stack_equals_folder(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ref_stack = ingest_folder(folders[0], tmp_path / "ref.zarr")
    gen_stack = ingest_folder(folders[1], tmp_path / "gen.zarr")
    assert set(ref_stack.arrays) == {"30x40x3_uint8", "24x24x1_uint8"}
    assert not ref_stack.failed and not gen_stack.failed
    by_folder = sp.evaluate(*folders, regions="2x2").load()
    for group in ref_stack.arrays:
        stored = xr.open_zarr(tmp_path / "ref.zarr", group=group, consolidated=False)
        files = stored.file.values.tolist()
        assert (stored.status.values == "ok").all()
        ds = sp.evaluate(
            tmp_path / "ref.zarr" / group / "images",
            tmp_path / "gen.zarr" / group / "images",
            channel_axis=-1,
            regions="2x2",
        )
        expected = by_folder.sel(image=files)
        for name in ("ssim", "luminance", "contrast", "structure", "count", "ssim_hist"):
            np.testing.assert_array_equal(ds[name].values, expected[name].values)


def test_ingest_marks_bad_files_and_refuses_existing(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    data = bytearray((folders[0] / "a.png").read_bytes())
    data[-100:-60] = bytes(40)
    (folders[0] / "a.png").write_bytes(bytes(data))
    (folders[0] / "empty.png").write_bytes(b"")
    result = ingest_folder(folders[0], tmp_path / "s.zarr")
    assert set(result.failed) == {"a.png", "empty.png"}
    stored = xr.open_zarr(tmp_path / "s.zarr", group="30x40x3_uint8", consolidated=False)
    status = dict(zip(stored.file.values.tolist(), stored.status.values.tolist(), strict=True))
    assert status["b/c.png"] == "ok" and status["a.png"] != "ok"
    with pytest.raises(FileExistsError, match="already exists"):
        ingest_folder(folders[0], tmp_path / "s.zarr")
    ingest_folder(folders[0], tmp_path / "s.zarr", overwrite=True)


# Crops of real photographs (scikit-image's bundled data): two colour, two grey, 48x64.
PHOTOS = {"astronaut.png": "astronaut", "sub/coffee.png": "coffee", "camera.png": "camera"}
PHOTOS.update({"sub/moon.png": "moon", "chelsea.png": "chelsea", "coins.png": "coins"})


@pytest.fixture
def photo_folders(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for name, photo in PHOTOS.items():
        image = photograph(photo)[100:148, 100:164]
        for root, pixels in ((ref, image), (gen, degrade(image, "noise", rng=rng))):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / name)
    return ref, gen


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100:-60] = bytes(40)  # inside the last IDAT: the header still reads
    path.write_bytes(bytes(data))


def test_ingest_stores_keep_their_failures_and_equal_the_folders(
    photo_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, gen = photo_folders
    _corrupt(gen / "chelsea.png")
    ref_store = ingest_folder(ref, tmp_path / "ref.zarr")
    gen_store = ingest_folder(gen, tmp_path / "gen.zarr")
    assert list(gen_store.failed) == ["chelsea.png"]
    stores = sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr", regions="2x2").load()
    by_folder = sp.evaluate(ref, gen, regions="2x2").load()
    assert sorted(stores.image.values.tolist()) == sorted(PHOTOS)  # file names, not 0, 1, 2
    failed = stores.sel(image="chelsea.png")
    assert str(failed.status.values) == gen_store.failed["chelsea.png"]
    assert np.isnan(failed.ssim.values).all() and (failed["count"].values == 0).all()
    ok = [name for name in PHOTOS if name != "chelsea.png"]
    assert (stores.sel(image=ok).status == "ok").all()
    for name in ("ssim", "luminance", "contrast", "structure", "count", "ssim_hist"):
        np.testing.assert_array_equal(
            stores.sel(image=ok)[name].values, by_folder.sel(image=ok)[name].values
        )
    assert len(json.loads(stores.attrs["size_groups"])) == 2 == len(ref_store.arrays)


def test_cli_evaluates_two_ingest_stores(
    photo_folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _corrupt(photo_folders[1] / "camera.png")
    for side, folder in zip(("ref", "gen"), photo_folders, strict=True):
        ingest_folder(folder, tmp_path / f"{side}.zarr")
    out = tmp_path / "results.zarr"
    args = ["evaluate", str(tmp_path / "ref.zarr"), str(tmp_path / "gen.zarr"), "--out", str(out)]
    assert main([*args, "--quiet"]) == 1  # one failed pair
    assert "camera.png" in capsys.readouterr().err
    ds = sp.open_results(out)
    assert dict(zip(ds.image.values, ds.status.values == "ok", strict=True)) == {
        name: name != "camera.png" for name in PHOTOS
    }


def test_mismatches_between_stores_are_reported(
    photo_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, gen = photo_folders
    (ref / "only_ref.png").write_bytes((ref / "camera.png").read_bytes())
    Image.fromarray(photograph("camera")[:40, :40]).save(gen / "sub" / "moon.png")
    (gen / "coins.png").write_bytes(b"")  # no header: in no stack, recorded at the root
    ingest_folder(ref, tmp_path / "ref.zarr")
    result = ingest_folder(gen, tmp_path / "gen.zarr")
    ds = sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr")
    status = dict(zip(ds.image.values.tolist(), ds.status.values.tolist(), strict=True))
    assert status["sub/moon.png"] == (
        "shape mismatch: reference (48, 64, 1) uint8, generated (40, 40, 1) uint8"
    )
    assert status["coins.png"] == result.failed["coins.png"]
    assert status["astronaut.png"] == "ok"
    assert ds.attrs["unpaired_reference"] == ["only_ref.png"]


def test_missing_chunk_of_an_ingest_store_fails_its_pair(
    photo_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    for side, folder in zip(("ref", "gen"), photo_folders, strict=True):
        ingest_folder(folder, tmp_path / f"{side}.zarr")
    group = tmp_path / "gen.zarr" / "48x64x3_uint8"
    files = xr.open_zarr(group.parent, group=group.name, consolidated=False).file.values.tolist()
    (group / "images" / "c" / str(files.index("chelsea.png")) / "0" / "0" / "0").unlink()
    ds = sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr")
    status = dict(zip(ds.image.values.tolist(), ds.status.values.tolist(), strict=True))
    assert f"of array {group / 'images'} is not in the store" in status.pop("chelsea.png")
    assert set(status.values()) == {"ok"}


def test_black_images_are_stored(tmp_path: Path) -> None:
    # Zarr leaves out chunks equal to the fill value unless told otherwise; a stack
    # must hold every image, or a black one would read as a missing chunk.
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "in" / "black.png")
    ingest_folder(tmp_path / "in", tmp_path / "s.zarr")
    assert (
        tmp_path / "s.zarr" / "16x16x1_uint8" / "images" / "c" / "0" / "0" / "0" / "0"
    ).is_file()
    ds = sp.evaluate(tmp_path / "s.zarr", tmp_path / "s.zarr", win_size=7)
    assert ds.status.values.tolist() == ["ok"]


def test_stores_without_the_format_marker_are_read(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    for side, folder in zip(("ref", "gen"), folders, strict=True):
        ingest_folder(folder, tmp_path / f"{side}.zarr")
        metadata = tmp_path / f"{side}.zarr" / "zarr.json"
        document = json.loads(metadata.read_text())
        document["attributes"] = {}  # as written before the root recorded its format
        metadata.write_text(json.dumps(document))
    ds = sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr")
    assert sorted(ds.image.values.tolist()) == ["a.png", "b/c.png", "g.png"]
    assert (ds.status == "ok").all()


def test_ingest_store_errors(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ingest_folder(folders[0], tmp_path / "ref.zarr")
    array = tmp_path / "ref.zarr" / "24x24x1_uint8" / "images"
    with pytest.raises(
        ValueError, match=r"reference '.*ref\.zarr' is an ingest store but generated"
    ):
        sp.evaluate(tmp_path / "ref.zarr", array)
    with pytest.raises(ValueError, match=r"channel_axis must be None or -1 for ingest stores"):
        sp.evaluate(tmp_path / "ref.zarr", tmp_path / "ref.zarr", channel_axis=0)
    with pytest.raises(ValueError, match=r"reference 30x40x3_uint8/images Zarr array .* declares"):
        sp.evaluate(tmp_path / "ref.zarr", tmp_path / "ref.zarr", max_input_elements=2000)


def test_stores_that_share_no_file_are_refused(folders: tuple[Path, Path], tmp_path: Path) -> None:
    ingest_folder(folders[0], tmp_path / "ref.zarr")
    (tmp_path / "other").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "other" / "z.png")
    ingest_folder(tmp_path / "other", tmp_path / "gen.zarr")
    with pytest.raises(
        ValueError, match=r"no image pairs: none of the 3 files of reference ingest"
    ):
        sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr")


def test_inconsistent_stores_are_refused_before_any_read(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    root = zarr.open_group(path, mode="w", attributes={FORMAT_ATTR: {"version": 1, "failed": {}}})
    group = root.create_group("g")
    group.create_array(IMAGES, data=np.zeros((2, 8, 8), np.uint8))
    group.create_array(STACK_FILE, shape=(3,), dtype=str)[:] = np.array(["a", "b", "c"], object)
    with pytest.raises(
        ValueError, match=r"g/images must be shaped \(file, y, x, channel\) \(got sh"
    ):
        sp.evaluate(path, path)
    group.create_array(IMAGES, data=np.zeros((2, 8, 8, 1), np.uint8), overwrite=True)
    with pytest.raises(ValueError, match=r"g/file has shape \(3,\), expected \(2,\) like g/images"):
        sp.evaluate(path, path)


def test_a_slot_without_status_fails(folders: tuple[Path, Path], tmp_path: Path) -> None:
    for side, folder in zip(("ref", "gen"), folders, strict=True):
        ingest_folder(folder, tmp_path / f"{side}.zarr")
    status = zarr.open_array(tmp_path / "gen.zarr" / "24x24x1_uint8" / STATUS, mode="r+")
    status[0] = ""  # what an ingest stopped before its end leaves
    ds = sp.evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr")
    assert str(ds.status.sel(image="g.png").values).endswith(
        "ingest recorded no status for g.png (an interrupted ingest?)"
    )
    assert (ds.status.sel(image=["a.png", "b/c.png"]) == "ok").all()


def test_one_stack_read_as_an_array_keeps_its_failures(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    _corrupt(folders[1] / "a.png")
    ingest_folder(folders[0], tmp_path / "ref.zarr")
    result = ingest_folder(folders[1], tmp_path / "gen.zarr")
    group = "30x40x3_uint8"
    ds = sp.evaluate(
        tmp_path / "ref.zarr" / group / IMAGES,
        zarr.open_array(tmp_path / "gen.zarr" / group / IMAGES, mode="r"),
        channel_axis=-1,
    )
    assert ds.image.values.tolist() == ["a.png", "b/c.png"]
    assert ds.status.values.tolist() == [result.failed["a.png"], "ok"]
    assert np.isnan(ds.ssim.values[0]).all()


def test_ingest_of_a_folder_url_and_ingest_stores_behind_urls(
    folders: tuple[Path, Path], tmp_path: Path, s3_bucket: str
) -> None:
    from s3_server import upload

    ref, gen = folders
    upload(ref, f"s3://{s3_bucket}/ref")
    local = ingest_folder(ref, tmp_path / "local.zarr")
    remote = ingest_folder(f"s3://{s3_bucket}/ref/", tmp_path / "remote.zarr")
    assert remote.arrays == local.arrays and remote.failed == {}
    for name in local.arrays:
        np.testing.assert_array_equal(
            zarr.open_array(tmp_path / "remote.zarr" / name / IMAGES)[:],
            zarr.open_array(tmp_path / "local.zarr" / name / IMAGES)[:],
        )
    # The two stores evaluated from the bucket give the values of the two folders.
    ingest_folder(gen, tmp_path / "gen.zarr")
    upload(tmp_path / "remote.zarr", f"s3://{s3_bucket}/ref.zarr")
    upload(tmp_path / "gen.zarr", f"s3://{s3_bucket}/gen.zarr")
    from_urls = sp.evaluate(f"s3://{s3_bucket}/ref.zarr", f"s3://{s3_bucket}/gen.zarr")
    from_folders = sp.evaluate(ref, gen)
    assert from_urls.image.values.tolist() == from_folders.image.values.tolist()
    np.testing.assert_array_equal(from_urls.ssim.values, from_folders.ssim.values)
    assert from_urls.reference.values[0].startswith(f"s3://{s3_bucket}/ref.zarr/")


def test_ingest_of_a_missing_folder_url_names_it(tmp_path: Path, s3_bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match=f"no object or prefix at s3://{s3_bucket}/none"):
        ingest_folder(f"s3://{s3_bucket}/none", tmp_path / "x.zarr")
