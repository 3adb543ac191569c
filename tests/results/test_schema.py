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
    MAP_X,
    MAP_Y,
    MEAN_MAP_COUNT,
    MEAN_MAP_VARIABLES,
    REGION,
    REQUIRED_ATTRS,
    SIZE_GROUP,
    SSIM_HIST,
    mean_map_dataset,
    template_dataset,
    validate_dataset,
)


def test_schema_of_a_real_result(result):
    validate_dataset(result)
    # Mean maps are on by default ("auto"): one size group of 32 x 40 images.
    assert result.sizes == {IMAGE: 3, REGION: 5, BIN: 16, SIZE_GROUP: 1, MAP_Y: 22, MAP_X: 30}
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


def test_mean_map_variables_are_optional_and_checked(rng):
    x = rng.integers(0, 256, (3, 32, 40), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    result = sp.evaluate(x, y, regions="2x2", hist_bins=16, mean_maps=True)
    # The mean maps add their own dimensions: the valid map of a 32x40 image, 11x11 window.
    assert result.sizes == {IMAGE: 3, REGION: 5, BIN: 16, SIZE_GROUP: 1, MAP_Y: 22, MAP_X: 30}
    assert result[MEAN_MAP_COUNT].values.tolist() == [3]
    without = result.drop_vars(
        [*MEAN_MAP_VARIABLES, SIZE_GROUP, "map_offset", "map_height", "map_width"]
    )
    validate_dataset(without)  # results written without mean maps
    broken = result.drop_vars("map_offset")
    with pytest.raises(ValueError, match="missing coordinate 'map_offset' of the mean maps"):
        validate_dataset(broken)
    float_count = result.assign({MEAN_MAP_COUNT: result[MEAN_MAP_COUNT].astype(float)})
    with pytest.raises(ValueError, match="'mean_map_count' must be integer"):
        validate_dataset(float_count)


def test_mean_map_dataset_pads_smaller_groups_with_nan():
    means = [np.ones((5, 2, 3)), np.full((5, 4, 1), 2.0)]
    ds = mean_map_dataset(["4x5x1", "6x3x1"], [(2, 3), (4, 1)], 1, means, [2, 7])
    assert ds.sizes == {SIZE_GROUP: 2, MAP_Y: 4, MAP_X: 3}
    values = ds["mean_ssim_map"].values
    assert (values[0, :2, :3] == 1).all() and np.isnan(values[0, 2:]).all()
    assert (values[1, :, :1] == 2).all() and np.isnan(values[1, :, 1:]).all()
    assert ds["map_height"].values.tolist() == [2, 4] and ds[MEAN_MAP_COUNT].values.tolist() == [
        2,
        7,
    ]
