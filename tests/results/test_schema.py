"""pipeline.results.schema: the result Dataset's schema, names and provenance.

The ``result`` fixture is in conftest.py; its round trip through Zarr is tested in
test_stores.py.
"""

from __future__ import annotations

import numpy as np
import pytest

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


def test_mse_and_psnr_have_units_and_are_optional_for_earlier_results(result):
    assert result["mse"].dims == result["ssim"].dims == (IMAGE, REGION)
    assert result["psnr"].attrs["units"] == "dB"
    assert "all pixels" in result["mse"].attrs["description"]
    validate_dataset(result.drop_vars(["mse", "psnr"]))  # written by an earlier version
    with pytest.raises(ValueError, match=r"variable 'psnr' has dims \('image',\)"):
        validate_dataset(result.assign(psnr=((IMAGE,), np.zeros(3))))


def test_a_model_dimension_is_valid_only_leading_every_pair_variable(
    rng: np.random.Generator,
) -> None:
    from pipeline.results.schema import validate_dataset

    x = rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)
    ds = sp.evaluate(x, [x, 255 - x])
    validate_dataset(ds)
    assert ds.ssim.dims == ("model", "image", "region")
    broken = ds.assign(ssim=ds.ssim.transpose("image", "model", "region"))
    with pytest.raises(
        ValueError, match=r"'ssim' has dims .*expected \('model', 'image', 'region'\)"
    ):
        validate_dataset(broken)
