"""pipeline.review.comparison: two models' results on the same references, pair by pair.

Called through ``ds.review.compare``, which delegates to
:func:`pipeline.review.comparison.compare_results`; the fixtures are in conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

N_IMAGES = 4  # the pairs of the ``results`` fixture (conftest.py)


def test_compare_differences_winners_and_paired_test(results):
    ds_a, ds_b = results
    result = ds_a.review.compare(ds_b, names=("noise", "blur"))
    expected = ds_a.ssim - ds_b.ssim
    np.testing.assert_allclose(result.difference.values, expected.values)
    winner = np.where(expected.values > 0, "noise", "blur")
    np.testing.assert_array_equal(result.winner.values, winner)
    overall = result.sel(region="all")
    assert int(overall.wins_a) == int((expected.sel(region="all") > 0).sum())
    assert int(overall.wins_a + overall.wins_b + overall.ties) == N_IMAGES
    reference = stats.ttest_rel(ds_a.ssim.sel(region="all"), ds_b.ssim.sel(region="all"))
    assert float(overall.t_statistic) == pytest.approx(reference.statistic)
    assert float(overall.p_value) == pytest.approx(reference.pvalue)
    assert result.attrs["same_references"] is True


def test_compare_aligns_on_shared_images(results):
    ds_a, ds_b = results
    subset = ds_b.isel(image=[3, 1])
    result = ds_a.review.compare(subset)
    assert result.image.values.tolist() == [1, 3]
    np.testing.assert_allclose(
        result.difference.values, (ds_a.ssim.sel(image=[1, 3]) - ds_b.ssim.sel(image=[1, 3]))
    )


def test_compare_without_shared_images_is_a_clear_error(results):
    ds_a, ds_b = results
    renamed = ds_b.assign_coords(image=[f"other{k}" for k in range(N_IMAGES)])
    with pytest.raises(ValueError, match=r"share no image id.*'other0'"):
        ds_a.review.compare(renamed)


def test_compare_refuses_other_ssim_settings_and_non_datasets(results):
    ds_a, ds_b = results
    other = ds_b.assign_attrs(ssim_win_size=7)
    with pytest.raises(ValueError, match="ssim_win_size: 11 vs 7"):
        ds_a.review.compare(other)
    assert ds_a.review.compare(other, check_params=False).sizes["image"] == N_IMAGES
    with pytest.raises(TypeError, match=r"other must be an xarray.Dataset.*got DataArray"):
        ds_a.review.compare(ds_b.ssim)


def test_compare_by_mse_lower_wins_and_old_results_are_named(results):
    ds_a, ds_b = results
    result = ds_a.review.compare(ds_b, names=("noise", "blur"), variable="mse")
    difference = (ds_a.mse - ds_b.mse).values
    np.testing.assert_allclose(result.difference.values, difference)
    np.testing.assert_array_equal(result.winner.values, np.where(difference < 0, "noise", "blur"))
    with pytest.raises(ValueError, match=r"variable 'psnr' is missing from results 'b'"):
        ds_a.review.compare(ds_b.drop_vars(["mse", "psnr"]), variable="psnr")
