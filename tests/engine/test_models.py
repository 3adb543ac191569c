"""Several generated sources (models) against one reference in one run.

The reference values are each model's own single run (``pipeline.evaluate`` with that
generated source alone), which is checked against scikit-image throughout the rest of
the suite; here a run of several models must equal them exactly.
"""

from __future__ import annotations

import json
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
from pipeline.results.schema import MODEL, MODELS, validate_dataset
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
    decoded: Counter[str] = Counter()
    real = folders.decode_batch

    def counting(paths: Any, **kwargs: Any) -> Any:
        decoded.update(str(Path(p).parent.name) + "/" + Path(p).name for p in paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(folders, "decode_batch", counting)
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
    decoded: Counter[str] = Counter()
    real = folders.decode_batch

    def counting(paths: Any, **kwargs: Any) -> Any:
        decoded.update(str(Path(p).parent.name) + "/" + Path(p).name for p in paths)
        return real(paths, **kwargs)

    monkeypatch.setattr(folders, "decode_batch", counting)
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


def test_models_in_another_image_order_are_refused_with_the_names(tmp_path: Path) -> None:
    reference, models = _photo_folders(tmp_path, n=3)
    big = np.zeros((64, 64, 3), dtype=np.uint8)
    _save(reference / "zbig.png", big)  # a second size group, after the first
    _save(models[0] / "zbig.png", big)
    _save(models[1] / "zbig.png", big[:40])  # fails from headers: moved to the first group
    with pytest.raises(
        ValueError, match="'noise' and 'blur' pair the same images in other size groups"
    ):
        sp.evaluate(reference, models[:2])


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


def test_saved_maps_of_one_model_per_run_are_refused_with_several(rng, tmp_path) -> None:
    x = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    output = {"output": str(tmp_path / "r.zarr")}
    with pytest.raises(ValueError, match=r"one model per run.*model-0, model-1"):
        sp.evaluate(x, [x, 255 - x], save_maps=True, **output)
    # Mean maps are one per model (tests/reductions/test_mean_maps.py checks the values).
    for setting in (True, "auto"):
        ds = sp.evaluate(x, [x, 255 - x], mean_maps=setting)
        assert ds.mean_ssim_map.dims == ("model", "size_group", "map_y", "map_x")
        assert np.allclose(ds.mean_ssim_map.sel(model="model-0").values[0], 1.0)
