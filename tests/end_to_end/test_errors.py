"""Error cases (catalogue: docs/errors.md): each message checked with match=."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image
from reliability_counts import record

import pipeline as sp
from pipeline.engine.settings import RunConfig, load_config
from pipeline.inputs.files import is_transient_status
from pipeline.kernels.backend import gpu_available


@pytest.fixture
def floats(rng):
    x = rng.random((3, 32, 32))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    return x, y


def test_config_typo_names_the_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown configuration key\(s\) win_sise; valid keys: "):
        RunConfig.from_mapping({"win_sise": 7})
    path = tmp_path / "run.yaml"
    path.write_text("regoins: 2x2\n")
    with pytest.raises(ValueError, match=rf"in configuration file '{path}': unknown .*regoins"):
        load_config(path)
    with pytest.raises(TypeError, match=r"unknown setting\(s\) nan_polcy; valid settings"):
        sp.evaluate(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), nan_polcy="mask")
    record("bad_input", "config typo", 3)


def test_config_file_that_is_not_text_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"regions: \xe3\x28 2x2\n")
    with pytest.raises(
        ValueError, match=rf"cannot read configuration file '{path}': 'utf-8' codec"
    ):
        load_config(path)
    record("bad_input", "config file not UTF-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sigma: .nan", r"sigma must be a positive finite number \(got nan\)"),
        ("data_range: .inf", r"data_range must be a positive finite number \(got inf\)"),
        ("k1: -.inf", r"k1 must be a positive finite number \(got -inf\)"),
        ("k2: 0", r"k2 must be a positive finite number \(got 0\)"),
    ],
)
def test_non_finite_config_values_are_refused(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=message):
        load_config(path)
    record("bad_input", "non-finite config value")


def test_data_range_is_never_guessed_for_floats(floats):
    x, y = floats
    with pytest.raises(ValueError, match=r"data_range is required for floating-point images"):
        sp.evaluate(x, y)
    with pytest.raises(ValueError, match=r"data_range is required for floating-point images"):
        sp.ssim(x[0], y[0])
    record("bad_input", "data_range missing for floats", 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_fail_their_pair_by_default(floats, bad):
    x, y = floats
    y = y.copy()
    y[1, 5, 7] = bad
    y[1, 20, 20] = bad
    ds = sp.evaluate(x, y, data_range=1.0, regions="2x2")
    status = ds["status"].values
    assert status[0] == status[2] == "ok"
    assert status[1] == (
        "non-finite pixels: reference has 0 NaN or Inf pixel(s), generated 2; fix the images "
        "or set nan_policy='mask' to leave out the windows that touch them"
    )
    assert np.isnan(ds["ssim"].values[1]).all() and (ds["count"].values[1] == 0).all()
    np.testing.assert_allclose(ds["ssim"].values[0, 0], sp.ssim(x[0], y[0], data_range=1.0))
    with pytest.raises(ValueError, match=r"y contains 2 NaN or Inf value\(s\)"):
        sp.ssim(x[1], y[1], data_range=1.0)
    record("bad_input", "non-finite pixels (fail)", 2)


def test_nan_policy_mask_leaves_out_touched_windows_and_counts_them(floats):
    x, y = floats
    x = x.copy()
    x[2, 16, 16] = np.nan
    x[2, 0, 31] = np.inf
    ds = sp.evaluate(
        x,
        y,
        data_range=1.0,
        regions="2x2",
        chunks=(1, 9, 13),
        engine="reference",
        nan_policy="mask",
    )
    assert (ds["status"].values == "ok").all()
    # Valid-map window (i, j) covers image rows i..i+10 and columns j..j+10 (22x22 map):
    # (16, 16) is in the windows i, j = 6..16 (121 of them); (0, 31) only in window (0, 21).
    assert ds["nan_masked"].values.tolist() == [0, 0, 122]
    _, maps = sp.ssim(np.nan_to_num(x[2], posinf=0.0), y[2], data_range=1.0, full=True)
    keep = np.ones(maps["ssim"].shape, bool)
    keep[6:17, 6:17] = False
    keep[0, 21] = False
    np.testing.assert_allclose(ds["ssim"].values[2, 0], maps["ssim"][keep].mean(), atol=1e-9)
    assert ds["count"].values[2, 0] == keep.sum()
    assert ds["count"].values[2, 1:].sum() == keep.sum()  # regions still partition
    np.testing.assert_allclose(ds["ssim"].values[0, 0], sp.ssim(x[0], y[0], data_range=1.0))
    with pytest.raises(ValueError, match=r"nan_policy must be one of fail, mask \(got 'skip'\)"):
        sp.evaluate(x, y, data_range=1.0, nan_policy="skip")
    with pytest.raises(ValueError, match=r"nan_policy='mask' works on 2-D SSIM statistics only"):
        sp.evaluate(x, y, data_range=1.0, nan_policy="mask", ms_ssim=True)
    record("bad_input", "non-finite pixels (mask)", 3)


def test_images_smaller_than_the_window(tmp_path, rng):
    small = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        sp.evaluate(small, small)
    # In a folder, the small pair fails (reason in status); the others are computed.
    for side in ("ref", "gen"):
        (tmp_path / side).mkdir()
        Image.fromarray(small[0]).save(tmp_path / side / "small.png")
        for i in range(2):
            image = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / side / f"big{i}.png")
    ds = sp.evaluate(str(tmp_path / "ref"), str(tmp_path / "gen"), regions="2x2")
    by_id = dict(zip(ds["image"].values.tolist(), ds["status"].values.tolist(), strict=True))
    assert by_id["small.png"] == (
        "image of 8x8 pixels is smaller than the 11x11 window; use a smaller odd win_size or "
        "larger images"
    )
    assert by_id["big0.png"] == by_id["big1.png"] == "ok"
    failed = ds["status"].values != "ok"
    assert np.isnan(ds["ssim"].values[failed]).all()
    assert np.isfinite(ds["ssim"].values[~failed, 0]).all()
    record("bad_input", "image smaller than the window", 2)


def test_label_mask_with_unnamed_labels_is_refused(rng):
    x = rng.integers(0, 256, (2, 24, 24), dtype=np.uint8)
    mask = np.zeros((24, 24), np.int32)
    mask[:12] = 1
    mask[12:, :5] = 7
    with pytest.raises(ValueError, match=r"hold value\(s\) 7 that label_names does not name"):
        sp.evaluate(x, x, regions="labels", labels=mask, label_names={1: "sky"})
    ds = sp.evaluate(x, x, regions="labels", labels=mask, label_names={1: "sky", 7: "tree"})
    assert ds["region"].values.tolist() == ["all", "sky", "tree"]
    record("bad_input", "label mask with unnamed labels")


@pytest.mark.skipif(gpu_available(), reason="checks the machine without a GPU; gpu tests cover one")
def test_gpu_device_without_a_gpu_fails_before_any_work(tmp_path, floats):
    # Was a ModuleNotFoundError ('cupy') from inside the first task, after the store existed.
    x, y = floats
    out = tmp_path / "r.zarr"
    with pytest.raises(RuntimeError, match=r"device='gpu' needs CuPy and a CUDA device"):
        sp.evaluate(x, y, data_range=1.0, device="gpu", output=str(out))
    assert not out.exists()
    record("bad_input", "device gpu without a GPU")


def test_corrupt_zarr_chunk_fails_its_pair_and_the_run_goes_on(tmp_path, rng):
    # Was a ValueError from the read task that stopped the run at the third batch.
    x = rng.integers(0, 256, (6, 24, 24), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    zarr.create_array(tmp_path / "x.zarr", data=x, chunks=(1, 24, 24))
    zarr.create_array(tmp_path / "y.zarr", data=y, chunks=(1, 24, 24))
    sources = (str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr"))
    expected = sp.evaluate(*sources, batch_images=2)
    chunk = tmp_path / "y.zarr" / "c" / "4" / "0" / "0"  # image 4: the third batch
    good = chunk.read_bytes()
    chunk.write_bytes(good[: len(good) // 2])  # a truncated zstd frame
    out = tmp_path / "r.zarr"
    ds = sp.evaluate(*sources, output=str(out), batch_images=2)
    status = ds["status"].values.tolist()
    assert status[:4] + status[5:] == ["ok"] * 5
    assert status[4].startswith(
        f"Zarr chunk 'c/4/0/0' of array {tmp_path / 'y.zarr'} could not be decoded (RuntimeError"
    )
    assert not is_transient_status(status[4])  # the same bytes fail again
    kept = [0, 1, 2, 3, 5]
    np.testing.assert_array_equal(ds["ssim"].values[kept], expected["ssim"].values[kept])
    assert np.isnan(ds["ssim"].values[4]).all()
    # Not retried by resume: a permanent failure stays recorded until the run is redone.
    chunk.write_bytes(good)
    resumed = sp.evaluate(*sources, output=str(out), resume=True, batch_images=2)
    assert resumed["status"].values.tolist() == status
    redone = sp.evaluate(*sources, output=str(out), overwrite=True, batch_images=2)
    np.testing.assert_array_equal(redone["ssim"].values, expected["ssim"].values)
    record("bad_input", "corrupt Zarr chunk (its pair fails, named; the run goes on)")
