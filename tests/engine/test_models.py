"""Several generated sources (models) against one reference in one run.

The reference values are each model's own single run (``pipeline.evaluate`` with that
generated source alone), which is checked against scikit-image throughout the rest of
the suite; here a run of several models must equal them exactly.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from PIL import Image

import pipeline as sp
import pipeline.inputs.folders as folders
from pipeline.inputs.images import ImageDecodeError, inspect_image
from pipeline.results.schema import MODEL, MODELS, validate_dataset
from pipeline.storage.locations import location, zarr_store
from pipeline.testing import degrade, photograph

KINDS = ("noise", "blur", "jpeg")


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _photo_folders(root: Path, n: int = 4, size: int = 48) -> tuple[Path, list[Path]]:
    """A reference folder of photograph crops and one folder per distortion of them."""
    rng = np.random.default_rng(1)
    base = photograph("astronaut")
    reference = root / "real"
    models = [root / kind for kind in KINDS]
    for i in range(n):
        top, left = rng.integers(0, base.shape[0] - size, 2)
        crop = np.ascontiguousarray(base[top : top + size, left : left + size])
        _save(reference / f"img{i}.png", crop)
        for kind, folder in zip(KINDS, models, strict=True):
            _save(folder / f"img{i}.png", degrade(crop, kind, rng=rng))
    return reference, models


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every file the folder decode tasks decode, as ``"folder/name"``."""
    decoded: Counter[str] = Counter()
    real = folders.decode_batch

    def counting(paths: Any, **kwargs: Any) -> Any:
        decoded.update(str(Path(p).parent.name) + "/" + Path(p).name for p in paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(folders, "decode_batch", counting)
    return decoded


def _same(multi: xr.Dataset, name: str, single: xr.Dataset) -> None:
    """``multi``'s model ``name`` equals ``single`` in every data variable and coordinate."""
    one = multi.sel({MODEL: name}, drop=True).load()
    single = single.load()
    one.attrs, single.attrs = {}, {}
    xr.testing.assert_identical(one, single)


def test_folders_of_photographs_equal_each_models_own_run(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path)
    settings: dict[str, Any] = {"regions": "2x2", "batch_images": 2}
    ds = sp.evaluate(reference, models, output=str(tmp_path / "multi.zarr"), **settings)
    assert ds[MODEL].values.tolist() == list(KINDS)
    assert json.loads(ds.attrs[MODELS]) == list(KINDS)
    assert ds.ssim.dims == (MODEL, "image", "region")
    assert ds.generated.dims == (MODEL, "image")
    validate_dataset(ds)
    for kind, folder in zip(KINDS, models, strict=True):
        _same(ds, kind, sp.evaluate(reference, folder, **settings))
    # Distortions differ: so do the models' scores.
    means = ds.ssim.sel(region="all").mean("image").values
    assert len(set(np.round(means, 6))) == 3


def test_each_reference_is_decoded_once_for_three_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, models = _photo_folders(tmp_path, n=5)
    decoded = _count_decodes(monkeypatch)
    sp.evaluate(reference, models, batch_images=2, output=str(tmp_path / "r.zarr"))
    assert {name: n for name, n in decoded.items() if name.startswith("real/")} == {
        f"real/img{i}.png": 1 for i in range(5)
    }
    for kind in KINDS:
        assert [decoded[f"{kind}/img{i}.png"] for i in range(5)] == [1] * 5


def test_stacks_in_memory_and_zarr_equal_their_own_runs(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = rng.integers(0, 256, (5, 40, 40), dtype=np.uint8)
    a = np.clip(x + rng.normal(0, 10, x.shape), 0, 255).astype(np.uint8)
    b = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    zarr.save_array(str(tmp_path / "b.zarr"), b)
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[:20] = 1
    settings: dict[str, Any] = {"regions": "labels", "labels": labels, "batch_images": 2}
    ds = sp.evaluate(x, {"a": a, "zb": str(tmp_path / "b.zarr")}, **settings)
    _same(ds, "a", sp.evaluate(x, a, **settings))
    _same(ds, "zb", sp.evaluate(x, str(tmp_path / "b.zarr"), **settings))
    named = sp.evaluate(x, [a, a], scheduler="synchronous")
    assert named[MODEL].values.tolist() == ["model-0", "model-1"]


def test_corrupt_file_of_one_model_fails_only_that_models_pair(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path)
    (models[1] / "img2.png").write_bytes(b"not a png at all")
    ds = sp.evaluate(reference, models[:2], output=str(tmp_path / "r.zarr")).load()
    status = ds.status
    assert (status.sel(model="noise") == "ok").all()
    bad = str(status.sel(model="blur", image="img2.png").values)
    assert "img2.png" in bad and bad != "ok"
    others = status.sel(model="blur").drop_sel(image="img2.png")
    assert (others == "ok").all()
    assert np.isnan(ds.ssim.sel(model="blur", image="img2.png", region="all"))
    single = sp.evaluate(reference, models[1])
    _same(ds, "blur", single)


def test_resume_after_a_failure_mid_run_gives_the_same_store(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=6)
    out = str(tmp_path / "r.zarr")

    def stop_after_first(done: int, total: int, images: int) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        sp.evaluate(reference, models, output=out, batch_images=2, on_batch=stop_after_first)
    partial = sp.open_results(out).status.values
    assert (partial[:, :2] == "ok").all() and not (partial[:, 2:] == "ok").any()
    resumed = sp.evaluate(reference, models, output=out, batch_images=2, resume=True)
    whole = sp.evaluate(reference, models, output=str(tmp_path / "w.zarr"), batch_images=2)
    resumed, whole = resumed.load(), whole.load()
    for ds in (resumed, whole):
        ds.attrs = {}
    xr.testing.assert_identical(resumed, whole)


def test_same_folder_names_get_distinct_model_names(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=2)
    other = tmp_path / "elsewhere" / "noise"
    for path in models[0].iterdir():
        _save(other / path.name, np.asarray(Image.open(path)))
    with pytest.warns(UserWarning, match="'noise' -> 'noise-2'"):
        ds = sp.evaluate(reference, [models[0], other])
    assert ds[MODEL].values.tolist() == ["noise", "noise-2"]
    np.testing.assert_array_equal(ds.ssim.values[0], ds.ssim.values[1])


def test_generated_folder_that_pairs_with_nothing_is_named(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=2)
    stray = tmp_path / "stray"
    _save(stray / "unrelated.png", np.zeros((48, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="'stray'") as caught:
        sp.evaluate(reference, [models[0], stray])
    assert str(stray) in str(caught.value)


def test_model_of_another_image_size_fails_its_pairs_naming_both_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, models = _photo_folders(tmp_path, n=3)
    small = tmp_path / "small"
    for path in models[0].iterdir():
        image = np.asarray(Image.open(path))
        _save(small / path.name, image[:32, :40] if path.name == "img1.png" else image)
    decoded = _count_decodes(monkeypatch)
    ds = sp.evaluate(reference, {"ok": models[0], "small": small}).load()
    assert (ds.status.sel(model="ok") == "ok").all()
    text = str(ds.status.sel(model="small", image="img1.png").values)
    assert "48" in text and "32" in text and "40" in text
    assert np.isnan(ds.ssim.sel(model="small", image="img1.png")).all()
    assert (ds.status.sel(model="small").drop_sel(image="img1.png") == "ok").all()
    # The failed pair does not make the references be decoded again for that model.
    assert [decoded[f"real/img{i}.png"] for i in range(3)] == [1, 1, 1]
    assert decoded["small/img1.png"] == 0
    monkeypatch.undo()
    _same(ds, "small", sp.evaluate(reference, small))


def test_a_reference_one_model_lacks_fails_that_models_row_only(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=3)
    (models[1] / "img1.png").unlink()
    ds = sp.evaluate(reference, models[:2]).load()
    assert ds.image.values.tolist() == ["img0.png", "img1.png", "img2.png"]
    status = ds.status.sel(model="blur", image="img1.png").values
    assert "'blur' has no generated file for reference img1.png" in str(status)
    assert ds.generated.sel(model="blur", image="img1.png").values == ""
    assert (ds.status.sel(model="noise") == "ok").all()
    own = sp.evaluate(reference, models[1]).load()
    assert own.image.values.tolist() == ["img0.png", "img2.png"]
    kept = ds.sel(model="blur", drop=True).drop_sel(image="img1.png")
    kept.attrs, own.attrs = {}, {}
    xr.testing.assert_identical(kept, own)
    per_model = json.loads(ds.attrs["model_attrs"])
    assert per_model["blur"]["unpaired_reference"] == ["img1.png"]
    assert per_model["noise"]["unpaired_reference"] == []


def test_plans_of_other_images_are_refused_naming_both_models(rng: np.random.Generator) -> None:
    # open_models gives every folder model the references' rows and size groups, and a
    # stack must match its reference's shape, so no run reaches this guard today; it
    # stays between the models' plans and a store whose rows would not line up.
    from pipeline.engine.models import _check_aligned
    from pipeline.engine.plan import plan_run
    from pipeline.engine.settings import RunConfig
    from pipeline.inputs.opening import open_pair

    x = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    config = RunConfig(batch_images=2)
    plans = [plan_run(config, open_pair(x, x)), plan_run(config, open_pair(x[:3], x[:3]))]
    with pytest.raises(ValueError, match=r"models 'a' and 'b' pair different images.*'b' lacks"):
        _check_aligned(["a", "b"], plans)
    plans[1] = plan_run(config.replace(batch_images=1), open_pair(x, x))
    with pytest.raises(ValueError, match=r"models 'a' and 'b' pair the same images in other"):
        _check_aligned(["a", "b"], plans)


def test_object_store_models_equal_local_ones(tmp_path: Path, s3_bucket: str) -> None:
    from s3_server import upload

    reference, models = _photo_folders(tmp_path, n=3)
    for folder in (reference, *models[:2]):
        upload(folder, f"s3://{s3_bucket}/{folder.name}")
    urls = [f"s3://{s3_bucket}/{folder.name}" for folder in models[:2]]
    out = f"s3://{s3_bucket}/results.zarr"
    remote = sp.evaluate(f"s3://{s3_bucket}/real", urls, output=out, batch_images=2)
    local = sp.evaluate(reference, models[:2], batch_images=2)
    assert remote[MODEL].values.tolist() == ["noise", "blur"]
    np.testing.assert_array_equal(remote.ssim.values, local.ssim.values)
    np.testing.assert_array_equal(remote.status.values, local.status.values)


def test_ms_ssim_and_progress_per_model(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (2, 180, 180), dtype=np.uint8)
    a = np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    b = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    calls: list[tuple[int, int, int]] = []
    ds = sp.evaluate(
        x, {"a": a, "b": b}, ms_ssim=True, batch_images=1, on_batch=lambda *c: calls.append(c)
    )
    assert calls == [(1, 2, 2), (2, 2, 2)]  # each batch: one image of each of the 2 models
    for name, generated in (("a", a), ("b", b)):
        _same(ds, name, sp.evaluate(x, generated, ms_ssim=True, batch_images=1))
    assert (ds.ms_ssim.sel(model="a") > ds.ms_ssim.sel(model="b")).all()


def test_mean_maps_are_one_per_model(rng) -> None:
    x = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    # Mean maps are one per model (tests/reductions/test_mean_maps.py checks the values).
    for setting in (True, "auto"):
        ds = sp.evaluate(x, [x, 255 - x], mean_maps=setting)
        assert ds.mean_ssim_map.dims == ("model", "size_group", "map_y", "map_x")
        assert np.allclose(ds.mean_ssim_map.sel(model="model-0").values[0], 1.0)


# -- one model's bad file, in a folder of two image sizes ---------------------------------
#
# The references come in two sizes, a 64x64 group first ("a_big.png", "c_big.png") and a
# 48x48 group ("b0.png" ...): a pair that fails from its headers sits in the first size
# group of its own single run, so a bad file in one model used to move its pair to another
# group than the other models' pairs of the same reference, and the run was refused.

BIG, SMALL = 64, 48
TWO_SIZES = {"a_big.png": BIG, "b0.png": SMALL, "b1.png": SMALL, "b2.png": SMALL, "c_big.png": BIG}


def _two_size_folders(root: Path) -> tuple[Path, dict[str, Path]]:
    """A reference folder of photograph crops of two sizes, and two distorted models of it."""
    rng = np.random.default_rng(7)
    base = photograph("coffee")
    reference = root / "real"
    models = {"noise": root / "noise", "blur": root / "blur"}
    for name, size in TWO_SIZES.items():
        top, left = rng.integers(0, min(base.shape[:2]) - size, 2)
        crop = np.ascontiguousarray(base[top : top + size, left : left + size])
        _save(reference / name, crop)
        for kind, folder in models.items():
            _save(folder / name, degrade(crop, kind, rng=rng))
    return reference, models


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """:func:`_two_size_folders`, made once: never changed (tests spoil their copies)."""
    return _two_size_folders(tmp_path_factory.mktemp("two-sizes"))


def _copies(
    two_sizes: tuple[Path, dict[str, Path]],
    root: Path,
    spoiled: tuple[str, ...] = ("noise", "blur"),
) -> tuple[Path, dict[str, Path]]:
    """The shared folders, with models ``spoiled`` copied into ``root`` (to be spoiled there)."""
    reference, models = two_sizes
    return reference, {
        name: Path(shutil.copytree(folder, root / name)) if name in spoiled else folder
        for name, folder in models.items()
    }


@pytest.fixture(scope="module")
def noise_run(two_sizes: tuple[Path, dict[str, Path]]) -> xr.Dataset:
    """The unspoiled 'noise' model's own run, with the settings of the bad-file cases."""
    reference, models = two_sizes
    return sp.evaluate(reference, models["noise"], regions="2x2", batch_images=2).load()


def _spoil(folder: Path, name: str, kind: str) -> Path:
    """Make ``folder/name`` bad as ``kind`` says; the bad file's path (or the missing one's)."""
    path = folder / name
    image = np.asarray(Image.open(path))
    stem = path.with_suffix("")
    if kind == "png-header":  # the signature and half the IHDR chunk: no header
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "png-pixels":  # the header is whole, the image data stops half way
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "jpeg-pixels":  # paired by stem: real b1.png, blur b1.jpg
        path.unlink()
        path = stem.with_suffix(".jpg")
        Image.fromarray(image).save(path, quality=90)
        data = path.read_bytes()
        # Cut at 90 %: the markers before the scan are whole, the scan is not.
        path.write_bytes(data[: len(data) * 9 // 10])
    elif kind == "size":
        Image.fromarray(np.ascontiguousarray(image[:40, :56])).save(path)
    elif kind == "channels":  # grey where the reference is colour
        Image.fromarray(image).convert("L").save(path)
    elif kind == "dtype":  # 16-bit colour TIFF where the reference is 8-bit
        import tifffile

        path.unlink()
        path = stem.with_suffix(".tif")
        tifffile.imwrite(path, image.astype(np.uint16) * 257, photometric="rgb")
    elif kind == "missing":
        path.unlink()
    else:
        raise AssertionError(kind)
    return path


def _same_rows(multi: xr.Dataset, name: str, single: xr.Dataset) -> None:
    """``multi``'s model ``name``, on the rows of ``single`` (in its order), equals ``single``."""
    one = multi.sel({MODEL: name}, drop=True).sel(image=single.image.values).load()
    single = single.load()
    one.attrs, single.attrs = {}, {}
    if "size_group" in single.dims:
        # A single run orders its size groups by its own first pair (a pair failed from its
        # headers sits in the first group); the models' run keeps the references' order.
        # The groups themselves (names, shapes, mean maps) must be the same.
        # Its batches differ too, so the mean maps' float64 sums are added in another
        # order: equal to rounding, not bit for bit.
        one = one.sortby("size_group")
        single = single.sortby("size_group")
        summed = [name for name in single.data_vars if name.startswith("mean_")]
        xr.testing.assert_allclose(one[summed], single[summed], rtol=1e-12, atol=0)
        one, single = one.drop_vars(summed), single.drop_vars(summed)
    xr.testing.assert_identical(one, single)


# One case per way a pair fails: from the headers (png-header), while decoded
# (png-pixels), paired by stem and failed while decoded (jpeg-pixels), shapes, channels
# or dtypes that differ (size, channels, dtype), no file (missing). A truncated JPEG
# header and a text file named .png fail from the headers as png-header does (the same
# ImageDecodeError before any read); tests/inputs cover how each is recognised.
SPOILED = ["png-header", "png-pixels", "jpeg-pixels", "size", "channels", "dtype", "missing"]


@pytest.mark.parametrize(
    ("kind", "where"),
    [(kind, "a_big.png") for kind in SPOILED]
    + [("png-header", "b1.png"), ("size", "b1.png"), ("missing", "c_big.png")],
)
def test_one_models_bad_file_fails_that_row_only(
    tmp_path: Path,
    two_sizes: tuple[Path, dict[str, Path]],
    noise_run: xr.Dataset,
    kind: str,
    where: str,
) -> None:
    reference, models = _copies(two_sizes, tmp_path, spoiled=("blur",))
    bad = _spoil(models["blur"], where, kind)
    if kind.endswith("-pixels"):  # fails while decoded, not from its header
        inspect_image(bad)
    elif kind.endswith("-header"):
        with pytest.raises(ImageDecodeError):
            inspect_image(bad)
    settings: dict[str, Any] = {"regions": "2x2", "batch_images": 2}
    ds = sp.evaluate(reference, models, output=str(tmp_path / "r.zarr"), **settings).load()
    validate_dataset(ds)
    assert ds.image.values.tolist() == ["a_big.png", "c_big.png", "b0.png", "b1.png", "b2.png"]
    status = ds.status.sel(model="blur", image=where).item()
    assert status != "ok"
    if kind == "missing":
        assert f"'blur' has no generated file for reference {where}" in status
    else:
        assert str(bad) in status  # the reason names the model's file
    if kind == "size":
        side = BIG if where != "b1.png" else SMALL
        assert f"({side}, {side}, 3)" in status and f"(40, {min(56, side)}, 3)" in status
    assert np.isnan(ds.ssim.sel(model="blur", image=where)).all()
    assert (ds.status.sel(model="blur").drop_sel(image=where) == "ok").all()
    assert (ds.status.sel(model="noise") == "ok").all()
    # Every other row equals the model's own run, the failed one too where that run has it.
    _same(ds, "noise", noise_run.copy())
    own = sp.evaluate(reference, models["blur"], **settings)
    _same_rows(ds, "blur", own)
    assert (where in own.image.values) == (kind != "missing")


def test_resume_with_one_models_bad_file_gives_the_same_store(
    tmp_path: Path, two_sizes: tuple[Path, dict[str, Path]]
) -> None:
    reference, models = _copies(two_sizes, tmp_path)
    _spoil(models["blur"], "a_big.png", "size")
    _spoil(models["noise"], "b2.png", "png-pixels")
    out = str(tmp_path / "r.zarr")

    def stop_after_first(done: int, total: int, images: int) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        sp.evaluate(reference, models, output=out, batch_images=2, on_batch=stop_after_first)
    resumed = sp.evaluate(reference, models, output=out, batch_images=2, resume=True).load()
    whole = sp.evaluate(reference, models, output=str(tmp_path / "w.zarr"), batch_images=2)
    whole = whole.load()
    for ds in (resumed, whole):
        ds.attrs = {}
    xr.testing.assert_identical(resumed, whole)
    assert resumed.status.sel(model="blur", image="a_big.png").item().startswith("shape mismatch")
    assert "truncated" in resumed.status.sel(model="noise", image="b2.png").item()
    assert int((resumed.status != "ok").sum()) == 2


def test_a_stack_that_cannot_be_scored_is_refused_naming_its_model(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    # A whole stack of another shape or dtype is a usage error seen before any pixel is
    # read, as in a run of that stack alone: the run stops, naming the model.
    x = rng.integers(0, 256, (3, 40, 40), dtype=np.uint8)
    zarr.save_array(str(tmp_path / "small.zarr"), x[:, :32, :32])
    with pytest.raises(ValueError, match=r"model 'small' \(.*small.zarr'\): .*\(3, 40, 40\) and"):
        sp.evaluate(x, {"ok": x, "small": str(tmp_path / "small.zarr")})
    with pytest.raises(ValueError, match=r"model 'deep': data_range cannot be taken from mismat"):
        sp.evaluate(x, {"ok": x, "deep": x.astype(np.uint16)})
    ds = sp.evaluate(x, {"ok": x, "deep": x.astype(np.uint16)}, data_range=255.0)
    assert (ds.status == "ok").all()


def test_object_store_model_with_a_bad_file_equals_the_local_run(
    tmp_path: Path, s3_bucket: str, two_sizes: tuple[Path, dict[str, Path]]
) -> None:
    from s3_server import upload

    reference, models = _copies(two_sizes, tmp_path)
    _spoil(models["blur"], "a_big.png", "size")
    _spoil(models["noise"], "b1.png", "png-header")
    for folder in (reference, *models.values()):
        upload(folder, f"s3://{s3_bucket}/{folder.name}")
    urls = [f"s3://{s3_bucket}/{name}" for name in models]
    remote = sp.evaluate(f"s3://{s3_bucket}/real", urls, batch_images=2).load()
    local = sp.evaluate(reference, list(models.values()), batch_images=2).load()
    np.testing.assert_array_equal(remote.ssim.values, local.ssim.values)
    np.testing.assert_array_equal(remote.status.values == "ok", local.status.values == "ok")
    bad = remote.status.sel(model="noise", image="b1.png").item()
    assert f"s3://{s3_bucket}/noise/b1.png" in bad
    assert remote.status.sel(model="blur", image="a_big.png").item().startswith("shape mismatch")


@pytest.mark.parametrize("scheduler", ["synchronous", "processes"])
def test_bad_files_give_the_same_results_on_every_local_scheduler(
    tmp_path: Path, scheduler: str, two_sizes: tuple[Path, dict[str, Path]]
) -> None:
    reference, models = _copies(two_sizes, tmp_path)
    _spoil(models["blur"], "a_big.png", "png-header")
    _spoil(models["noise"], "b2.png", "size")
    settings: dict[str, Any] = {"regions": "2x2", "batch_images": 2}
    threads = sp.evaluate(reference, models, **settings).load()
    other = sp.evaluate(reference, models, scheduler=scheduler, **settings).load()
    for ds in (threads, other):
        ds.attrs = {}
    xr.testing.assert_identical(other, threads)
    assert int((threads.status != "ok").sum()) == 2


# -- save_maps with several models ---------------------------------------------------------
#
# Each model's maps go to its own group of the maps store (``maps/<model>/ssim`` ..., the
# one-model layout inside); the reference values are each model's own single run's saved
# maps, themselves checked against ``sp.ssim(full=True)`` in tests/engine/test_run.py.

_SAVED = ("ssim", "structure")


def _saved_maps(path: str) -> dict[str, np.ndarray]:
    # Through the package's store, which closes an object store's connection when dropped.
    group = zarr.open_group(zarr_store(location(path), read_only=True), mode="r")
    return {name: np.asarray(group[name][...]) for name in _SAVED}


def _assert_same_maps(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for name in _SAVED:
        np.testing.assert_array_equal(found[name], expected[name])  # NaN where NaN


def test_saved_maps_of_each_model_equal_its_own_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, models = _photo_folders(tmp_path)
    (models[1] / "img2.png").write_bytes(b"not a png at all")  # blur's pair img2 fails
    settings: dict[str, Any] = {"save_maps": True, "maps": _SAVED, "batch_images": 3}
    decoded = _count_decodes(monkeypatch)
    out = str(tmp_path / "multi.zarr")
    ds = sp.evaluate(reference, models, output=out, **settings)
    # Maps and statistics in the same lockstep batches: every file decoded once.
    assert set(decoded.values()) == {1}
    assert {f"real/img{i}.png" for i in range(4)} <= set(decoded)
    monkeypatch.undo()  # the single runs below are not counted
    root = zarr.open_group(f"{out}/maps", mode="r")
    assert sorted(root.group_keys()) == sorted(KINDS)
    assert dict(root.attrs)["models"] == {kind: kind for kind in KINDS}
    per_model = json.loads(ds.attrs["model_attrs"])
    for kind, folder in zip(KINDS, models, strict=True):
        assert root[kind].attrs["model"] == kind
        assert per_model[kind]["maps_group"] == kind
        single = str(tmp_path / f"{kind}.zarr")
        sp.evaluate(reference, folder, output=single, **settings)
        _assert_same_maps(_saved_maps(f"{out}/maps/{kind}"), _saved_maps(f"{single}/maps"))
        assert root[kind]["ssim"].shape == (4, 38, 38)
    # The failed pair's maps are NaN in its model only (its blocks held no image of it).
    blur = _saved_maps(f"{out}/maps/blur")
    assert np.isnan(blur["ssim"][2]).all() and np.isfinite(blur["ssim"][[0, 1, 3]]).all()
    assert np.isfinite(_saved_maps(f"{out}/maps/noise")["ssim"]).all()


def test_saved_maps_resume_to_the_same_maps(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=6)
    (models[0] / "img4.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    settings: dict[str, Any] = {"save_maps": True, "maps": _SAVED, "batch_images": 2}

    def stop_after_first(done: int, total: int, images: int) -> None:
        raise RuntimeError("killed")

    out, maps = str(tmp_path / "r.zarr"), str(tmp_path / "maps.zarr")
    with pytest.raises(RuntimeError, match="killed"):
        sp.evaluate(
            reference, models, output=out, maps_output=maps, on_batch=stop_after_first, **settings
        )
    partial = _saved_maps(f"{maps}/jpeg")
    assert np.isfinite(partial["ssim"][:2]).all() and np.isnan(partial["ssim"][2:]).all()
    sp.evaluate(reference, models, output=out, maps_output=maps, resume=True, **settings)
    whole = str(tmp_path / "whole.zarr")
    sp.evaluate(reference, models, output=str(tmp_path / "w.zarr"), maps_output=whole, **settings)
    for kind in KINDS:
        _assert_same_maps(_saved_maps(f"{maps}/{kind}"), _saved_maps(f"{whole}/{kind}"))
    assert np.isnan(_saved_maps(f"{maps}/noise")["ssim"][4]).all()


def test_saved_maps_of_models_whose_names_are_not_group_names(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    x = rng.integers(0, 256, (3, 40, 36), dtype=np.uint8)
    models = {"GAN outputs": 255 - x, "gan/b": x // 2}
    settings: dict[str, Any] = {"save_maps": True, "maps": _SAVED, "chunks": (1, 16, 16)}
    maps = str(tmp_path / "maps.zarr")
    ds = sp.evaluate(x, models, output=str(tmp_path / "r.nc"), maps_output=maps, **settings)
    root = zarr.open_group(maps, mode="r")
    assert dict(root.attrs)["models"] == {"GAN outputs": "model0", "gan/b": "model1"}
    assert json.loads(ds.attrs["model_attrs"])["gan/b"]["maps_group"] == "model1"
    for k, generated in enumerate(models.values()):
        single = str(tmp_path / f"single{k}.zarr")
        sp.evaluate(x, generated, maps_output=single, **settings)
        assert root[f"model{k}"]["ssim"].chunks == (1, 16, 16)
        _assert_same_maps(_saved_maps(f"{maps}/model{k}"), _saved_maps(single))


def test_saved_maps_of_models_in_an_object_store(tmp_path: Path, s3_bucket: str) -> None:
    from s3_server import upload

    reference, models = _photo_folders(tmp_path, n=3)
    for folder in (reference, *models[:2]):
        upload(folder, f"s3://{s3_bucket}/{folder.name}")
    urls = [f"s3://{s3_bucket}/{folder.name}" for folder in models[:2]]
    out = f"s3://{s3_bucket}/results.zarr"
    settings: dict[str, Any] = {"save_maps": True, "maps": _SAVED, "batch_images": 2}
    sp.evaluate(f"s3://{s3_bucket}/real", urls, output=out, **settings)
    local = str(tmp_path / "local.zarr")
    sp.evaluate(reference, models[:2], output=local, **settings)
    for kind in KINDS[:2]:
        _assert_same_maps(_saved_maps(f"{out}/maps/{kind}"), _saved_maps(f"{local}/maps/{kind}"))


def test_saved_maps_of_another_shape_in_a_models_group_are_refused(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    x = rng.integers(0, 256, (2, 40, 36), dtype=np.uint8)
    maps = str(tmp_path / "maps.zarr")
    sp.evaluate(x, {"a": x, "b": 255 - x}, save_maps=True, maps_output=maps)
    small = x[:, :32, :32]
    with pytest.raises(ValueError, match=r"maps store '.*maps.zarr/a' holds 'ssim' of another"):
        sp.evaluate(small, {"a": small, "b": 255 - small}, save_maps=True, maps_output=maps)
