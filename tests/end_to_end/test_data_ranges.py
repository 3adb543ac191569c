"""Data ranges per dtype: a folder that mixes bit depths and float files never shares one L.

Reference scores come from scikit-image's ``structural_similarity`` (an independent
implementation) with the wang2004 settings (``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False``) and the data range each pair should have been given.

End to end: folders of several dtypes (:mod:`pipeline.inputs.folders`), the range
lookup (:mod:`pipeline.metrics.checks`), the plan of each size group
(:mod:`pipeline.engine.plan`) and the CLI's exit status, through ``evaluate`` and ``main``.
The lookup's own rules (``lookup_data_range``) are tested in tests/metrics/test_checks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import pipeline as sp
from pipeline.testing import skimage_wang2004

# The result attr naming each dtype's data range (pipeline.engine.plan.DATA_RANGE_BY_DTYPE).
DATA_RANGE_BY_DTYPE = "data_range_by_dtype"

SHAPE = (24, 28)


@pytest.fixture
def mixed_depths(tmp_path: Path, rng: np.random.Generator) -> dict[str, tuple]:
    """A folder pair holding a uint8 PNG, a uint16 PNG and a float32 TIFF pair (other sizes)."""
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    x8 = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    y8 = np.clip(x8 + rng.integers(-20, 21, SHAPE), 0, 255).astype(np.uint8)
    x16 = rng.integers(0, 65536, (26, 30), dtype=np.uint16)
    y16 = np.clip(x16 + rng.integers(-4000, 4001, (26, 30)), 0, 65535).astype(np.uint16)
    xf = rng.random((22, 32), dtype=np.float32)
    yf = np.clip(xf + 0.1 * rng.standard_normal((22, 32)), 0, 1).astype(np.float32)
    for side, a8, a16, af in ((ref, x8, x16, xf), (gen, y8, y16, yf)):
        Image.fromarray(a8).save(side / "a8.png")
        Image.fromarray(a16).save(side / "b16.png")
        tifffile.imwrite(side / "cfloat.tif", af, photometric="minisblack")
    return {"root": (ref, gen), "uint8": (x8, y8), "uint16": (x16, y16), "float32": (xf, yf)}


def _score(ds, name: str) -> float:
    return float(ds.ssim.sel(image=name, region="all"))


def test_float_files_without_a_range_fail_alone_naming_their_files(mixed_depths):
    ref, gen = mixed_depths["root"]
    ds = sp.evaluate(ref, gen)
    status = dict(zip(ds.image.values.tolist(), ds.status.values.tolist(), strict=True))
    assert status["a8.png"] == "ok" and status["b16.png"] == "ok"
    assert status["cfloat.tif"] == (
        f"reference file {ref / 'cfloat.tif'} and generated file {gen / 'cfloat.tif'} are "
        "float32 with no data range given: set data_ranges: {float32: 1.0} to the span of "
        "their values (1.0 for [0, 1], 255.0 for [0, 255]); integer files keep their "
        "dtype's range"
    )
    assert np.isnan(_score(ds, "cfloat.tif"))
    # The integer pairs ran with their own dtype's range.
    assert _score(ds, "a8.png") == pytest.approx(
        skimage_wang2004(*mixed_depths["uint8"], data_range=255), abs=1e-5
    )
    assert _score(ds, "b16.png") == pytest.approx(
        skimage_wang2004(*mixed_depths["uint16"], data_range=65535), abs=1e-5
    )
    by_dtype = json.loads(ds.attrs[DATA_RANGE_BY_DTYPE])
    assert by_dtype == {
        "float32": {"data_range": None, "source": "missing: its pairs failed"},
        "uint16": {"data_range": 65535.0, "source": "dtype uint16"},
        "uint8": {"data_range": 255.0, "source": "dtype uint8"},
    }
    assert ds.attrs["data_range"] == "per dtype: none (float32), 65535 (uint16), 255 (uint8)"


def test_data_ranges_give_each_dtype_its_own_range(mixed_depths):
    ref, gen = mixed_depths["root"]
    ds = sp.evaluate(ref, gen, data_ranges={"float32": 1.0, "uint16": 4095})
    assert ds.status.values.tolist() == ["ok"] * 3
    assert _score(ds, "cfloat.tif") == pytest.approx(
        skimage_wang2004(*mixed_depths["float32"], data_range=1.0), abs=1e-5
    )
    assert _score(ds, "a8.png") == pytest.approx(
        skimage_wang2004(*mixed_depths["uint8"], data_range=255), abs=1e-5
    )
    # data_ranges wins over the dtype's own range (12-bit data stored as uint16).
    assert _score(ds, "b16.png") == pytest.approx(
        skimage_wang2004(*mixed_depths["uint16"], data_range=4095), abs=1e-5
    )
    by_dtype = json.loads(ds.attrs[DATA_RANGE_BY_DTYPE])
    assert by_dtype["uint16"] == {"data_range": 4095.0, "source": "data_ranges[uint16]"}
    assert by_dtype["uint8"] == {"data_range": 255.0, "source": "dtype uint8"}
    groups = {g["dtype"]: g for g in json.loads(ds.attrs["size_groups"])}
    assert groups["float32"]["data_range"] == 1.0
    assert groups["float32"]["data_range_source"] == "data_ranges[float32]"


def test_a_scalar_data_range_over_mixed_dtypes_is_refused_before_reading(mixed_depths):
    ref, gen = mixed_depths["root"]
    # The advice a float-only run gets (data_range: 1.0) must never give uint8 pairs L = 1.
    with pytest.raises(
        ValueError,
        match=(
            r"data_range=1 would score every pair with one L, but the folder mixes dtypes "
            r"float32, uint16, uint8 and its integer files have their own range "
            r"\(uint16: 65535, uint8: 255\); set data_ranges: \{float32: 1\} instead of "
            r"data_range \(integer dtypes then keep their full range\)"
        ),
    ):
        sp.evaluate(ref, gen, data_range=1.0)
    # Every integer dtype covered by data_ranges: the scalar only reaches the float files.
    ds = sp.evaluate(ref, gen, data_range=1.0, data_ranges={"uint8": 255, "uint16": 65535})
    assert ds.status.values.tolist() == ["ok"] * 3
    assert _score(ds, "cfloat.tif") == pytest.approx(
        skimage_wang2004(*mixed_depths["float32"], data_range=1.0), abs=1e-5
    )
    assert json.loads(ds.attrs[DATA_RANGE_BY_DTYPE])["float32"]["source"] == "given"


def test_a_scalar_over_integer_dtypes_only_says_to_drop_it(tmp_path, rng):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    for name, dtype in (("a.png", np.uint8), ("b.png", np.uint16)):
        x = rng.integers(0, np.iinfo(dtype).max, SHAPE, dtype=dtype)
        Image.fromarray(x).save(ref / name)
        Image.fromarray(x).save(gen / name)
    with pytest.raises(
        ValueError, match=r"drop data_range \(each integer dtype then takes its full range\)"
    ):
        sp.evaluate(ref, gen, data_range=255)


def test_a_scalar_data_range_applies_to_a_single_dtype_folder(tmp_path, rng):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    x = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    y = np.clip(x + rng.integers(-20, 21, SHAPE), 0, 255).astype(np.uint8)
    Image.fromarray(x).save(ref / "a.png")
    Image.fromarray(y).save(gen / "a.png")
    ds = sp.evaluate(ref, gen, data_range=100.0)
    assert float(ds.ssim[0, 0]) == pytest.approx(skimage_wang2004(x, y, data_range=100.0), abs=1e-5)
    assert ds.attrs["data_range"] == 100.0 and ds.attrs["data_range_source"] == "given"


def test_in_memory_float_arrays_without_a_range_stop_up_front_naming_the_setting(rng):
    x = rng.random((2, 16, 16), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=(
            r"data_range is required for floating-point images \(got dtypes float32 and "
            r"float32\); .* \(in a run's settings: data_ranges=\{'float32': 1.0\}\)"
        ),
    ):
        sp.evaluate(x, x)
    ds = sp.evaluate(x, x, data_ranges={"float32": 1.0})
    assert ds.attrs["data_range"] == 1.0
    assert ds.attrs["data_range_source"] == "data_ranges[float32]"


def test_cli_exit_status_follows_the_ranges(mixed_depths, tmp_path, capsys):
    from pipeline.cli.main import main

    ref, gen = (str(p) for p in mixed_depths["root"])
    out = tmp_path / "out"
    # No range for the float files: they fail (exit 1, listed), the integer pairs run.
    assert main(["evaluate", ref, gen, "--out", f"{out}1.zarr", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: cfloat.tif: reference file" in err and "data_ranges: {float32: 1.0}" in err
    # The advised scalar would have scored the uint8 pair with L = 1: refused (exit 2).
    config = tmp_path / "scalar.yaml"
    config.write_text("data_range: 1.0\n")
    assert main(["evaluate", ref, gen, "--out", f"{out}2.zarr", "--config", str(config)]) == 2
    assert "set data_ranges: {float32: 1} instead of data_range" in capsys.readouterr().err
    config.write_text("data_ranges: {float32: 1.0}\n")
    argv = ["evaluate", ref, gen, "--out", f"{out}3.zarr", "--config", str(config), "--quiet"]
    assert main(argv) == 0
