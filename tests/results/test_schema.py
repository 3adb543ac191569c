"""The result Dataset: schema, names, provenance; Dataset -> Zarr -> Dataset round trip."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import pipeline as sp
from pipeline.results.schema import (
    BIN,
    IMAGE,
    REGION,
    REQUIRED_ATTRS,
    SSIM_HIST,
    template_dataset,
    validate_dataset,
)
from pipeline.results.stores import open_results, write_zarr


@pytest.fixture
def result(rng):
    x = rng.integers(0, 256, (3, 32, 40), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    return sp.evaluate(x, y, regions="2x2", hist_bins=16)


def test_schema_of_a_real_result(result):
    validate_dataset(result)
    assert result.sizes == {IMAGE: 3, REGION: 5, BIN: 16}
    assert result[SSIM_HIST].dims == (IMAGE, REGION, BIN)
    assert result["status"].values.tolist() == ["ok", "ok", "ok"]
    assert result["count"].dtype == np.int64
    assert "ms_ssim" not in result
    for name in REQUIRED_ATTRS:
        assert name in result.attrs
    assert result.attrs["data_range"] == 255.0
    assert result.attrs["data_range_source"] == "dtype uint8"
    assert result.attrs["ssim_win_size"] == 11
    assert result.attrs["package_version"] == sp.__version__
    assert result["bin_lower"].values[0] == -1.0 and result["bin_upper"].values[-1] == 1.0


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_round_trip_through_zarr_is_identical(result, tmp_path, zarr_format):
    path = tmp_path / "results.zarr"
    write_zarr(result, path, zarr_format=zarr_format)
    xr.testing.assert_identical(open_results(path).load(), result)


def test_validate_lists_every_problem(result):
    broken = result.drop_vars(["ssim_std", "region"]).assign(extra=((IMAGE,), np.zeros(3)))
    broken.attrs.pop("profile")
    with pytest.raises(
        ValueError,
        match=r"missing coordinate 'region'.*missing variable "
        r"'ssim_std'.*unexpected variable\(s\) extra.*missing attribute\(s\) "
        r"profile",
    ):
        validate_dataset(broken)
    with pytest.raises(ValueError, match=r"variable 'count' must be integer"):
        validate_dataset(result.assign(count=result["count"].astype(float)))


def test_template_is_lazy_and_pending(result):
    template = template_dataset(
        image=np.arange(3),
        reference=["a", "b", "c"],
        generated=["a", "b", "c"],
        regions=["all"],
        bins=8,
        batch_images=2,
        attrs=result.attrs,
    )
    validate_dataset(template)
    assert template["ssim"].chunks == ((2, 1), (1,))
    assert template["status"].values.tolist() == ["pending", "pending", "pending"]
