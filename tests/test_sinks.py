"""Sinks: resumable Zarr store, refusal of other configurations, NetCDF and CSV export."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import pipeline as sp
from pipeline.sinks import export_csv, export_netcdf, open_results


@pytest.fixture
def pair(rng):
    x = rng.integers(0, 256, (6, 24, 24), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    return x, y


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def _failing_after(array: np.ndarray, first_bad_image: int) -> da.Array:
    """A source whose reads fail from one image on: an interruption mid-run."""

    def read(block, block_info=None):
        start = block_info[0]["array-location"][0][0]
        if start >= first_bad_image:
            raise OSError(f"simulated failure reading image {start}")
        return block

    return da.from_array(array, chunks=(1, 24, 24)).map_blocks(read, dtype=array.dtype)


def test_resume_after_interruption_equals_uninterrupted_run(pair, tmp_path):
    x, y = pair
    settings = {"regions": "2x2", "batch_images": 2, "chunks": (1, 12, 12), "engine": "reference"}
    healthy = da.from_array(y, chunks=(1, 24, 24))
    whole = sp.evaluate(x, healthy, output=str(tmp_path / "whole.zarr"), **settings)

    out = str(tmp_path / "partial.zarr")
    with pytest.raises(OSError, match=r"simulated failure reading image [45]"):
        sp.evaluate(x, _failing_after(y, 4), output=out, **settings)
    partial = open_results(out)
    assert partial["status"].values.tolist() == ["ok", "ok", "ok", "ok", "", ""]
    assert np.isnan(partial["ssim"].values[4:]).all()  # readable, and visibly pending

    batches = []
    resumed = sp.evaluate(
        x, healthy, output=out, resume=True, on_batch=lambda d, t, n: batches.append(t), **settings
    )
    assert batches == [1]  # only the missing batch was computed
    xr.testing.assert_identical(_without_time(resumed), _without_time(whole))


def test_existing_store_needs_resume_or_overwrite(pair, tmp_path):
    x, y = pair
    out = str(tmp_path / "r.zarr")
    sp.evaluate(x, y, output=out)
    with pytest.raises(
        FileExistsError, match=r"already exists \(same configuration\); pass resume"
    ):
        sp.evaluate(x, y, output=out)
    done = sp.evaluate(x, y, output=out, resume=True)  # nothing left to do
    assert (done["status"].values == "ok").all()


def test_different_configuration_is_refused_naming_both_fingerprints(pair, tmp_path):
    x, y = pair
    out = str(tmp_path / "r.zarr")
    first = sp.evaluate(x, y, output=out)
    other = sp.RunConfig(win_size=7).fingerprint()
    with pytest.raises(
        ValueError,
        match=rf"different configuration \(config_fingerprint "
        rf"'{first.attrs['config_fingerprint']}' in the store, '{other}' for this run\)",
    ):
        sp.evaluate(x, y, output=out, win_size=7, resume=True)
    with pytest.raises(ValueError, match=r"written from different sources \(source_fingerprint"):
        sp.evaluate(x[:5], y[:5], output=out, resume=True)
    replaced = sp.evaluate(x, y, output=out, win_size=7, overwrite=True)
    assert replaced.attrs["ssim_win_size"] == 7


def test_output_that_is_not_a_store_is_refused(pair, tmp_path):
    x, y = pair
    (tmp_path / "notes.zarr").mkdir()
    with pytest.raises(FileExistsError, match=r"exists and is not a Zarr store"):
        sp.evaluate(x, y, output=str(tmp_path / "notes.zarr"), overwrite=True)


def test_zarr_format_2_store(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, output=str(tmp_path / "v2.zarr"), zarr_format=2)
    assert (tmp_path / "v2.zarr" / ".zgroup").exists()
    assert ds["ssim"].sel(region="all").notnull().all()


def test_netcdf_export_round_trip(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2", output=str(tmp_path / "r.nc"))
    back = open_results(tmp_path / "r.nc")
    xr.testing.assert_identical(back, ds)
    with pytest.raises(FileExistsError, match=r"r\.nc' already exists; pass overwrite=True"):
        sp.evaluate(x, y, output=str(tmp_path / "r.nc"))
    export_netcdf(ds, tmp_path / "again.nc")


def test_csv_export(pair, tmp_path):
    x, y = pair
    ds = sp.evaluate(x, y, regions="2x2", output=str(tmp_path / "r.csv"))
    table = pd.read_csv(tmp_path / "r.csv", comment="#")
    assert len(table) == 6 * 5
    assert list(table.columns[:4]) == ["image", "reference", "generated", "region"]
    row = table[(table.image == 3) & (table.region == "r1c0")].iloc[0]
    assert row.ssim == ds["ssim"].sel(image=3, region="r1c0").item()  # printed with %.17g
    assert row.status == "ok"
    header = (tmp_path / "r.csv").read_text().splitlines()[0]
    assert header == "# profile: wang2004"
    export_csv(ds, tmp_path / "again.csv")
