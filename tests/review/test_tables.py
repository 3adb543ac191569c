"""pipeline.review.tables: ranked pairs, map quantiles, image lookups and their errors.

Called through ``ds.review`` (``worst``, ``best``, ``quantile``, ``position``), the
methods that delegate to :mod:`pipeline.review.tables`; the fixtures are in conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline

N_IMAGES = 4  # the pairs of the ``results`` fixture (conftest.py)
SIDE = 64  # their side, in pixels
BIN_WIDTH = 2 / 100  # the default hist_bins


def _maps(stacks, side: str) -> list[dict[str, np.ndarray]]:
    out = []
    for x, y in zip(stacks["reference"], stacks[side], strict=True):
        _, maps = pipeline.ssim(x, y, full=True)
        out.append(maps)
    return out


# -- ranked pairs --------------------------------------------------------------


def test_worst_and_best_follow_the_sorted_scores(results):
    ds, _ = results
    scores = ds.ssim.sel(region="all")
    ascending = [str(i) for i in scores.sortby(scores).image.values]
    assert ds.review.worst(3).index.tolist() == ascending[:3]
    assert ds.review.best(2).index.tolist() == ascending[::-1][:2]
    table = ds.review.worst(N_IMAGES)
    np.testing.assert_array_equal(table["ssim"].values, np.sort(scores.values))
    assert set(table.columns) >= {"position", "ssim", "luminance", "worst_region", "reference"}


def test_worst_by_region_and_worst_region_column(results):
    ds, _ = results
    tile = ds.ssim.sel(region="r1c0")
    assert ds.review.worst(1, region="r1c0").index[0] == str(int(np.argmin(tile.values)))
    first = ds.review.worst(1)
    k = int(first["position"].iloc[0])
    regions = ds.ssim.isel(image=k).drop_sel(region="all")
    assert first["worst_region"].iloc[0] == str(
        regions.region.values[int(np.argmin(regions.values))]
    )


def test_failed_pairs_are_left_out_of_the_ranking(results):
    ds, _ = results
    failed = ds.copy()
    failed["status"] = failed.status.copy(data=np.array(["ok", "corrupt", "ok", "ok"], object))
    failed["ssim"] = failed.ssim.where(failed.image != 1)
    assert "1" not in failed.review.worst(N_IMAGES).index
    assert failed.review.summary()["ok"] == N_IMAGES - 1


# -- quantiles -----------------------------------------------------------------


def test_quantile_is_within_one_bin_of_the_maps(results, stacks):
    # The bin holding the q-quantile is where the cumulative count first reaches q * N,
    # the bin of the inverted-CDF order statistic; NumPy's default (linear) quantile
    # may fall in a run of empty bins beyond it.
    ds, _ = results
    pixels = np.concatenate([m["ssim"].ravel() for m in _maps(stacks, "a")])
    levels = [0.0, 0.01, 0.1, 0.5, 0.9, 1.0]
    got = ds.review.quantile(levels)
    assert got.dims == ("quantile",)
    assert got.attrs["resolution"] == pytest.approx(BIN_WIDTH)
    np.testing.assert_allclose(
        got.values, np.quantile(pixels, levels, method="inverted_cdf"), atol=BIN_WIDTH
    )


def test_quantile_per_image_and_per_region(results, stacks):
    ds, _ = results
    maps = _maps(stacks, "a")
    per_image = ds.review.quantile(0.25, by_image=True)
    assert per_image.dims == ("image",)
    expected = [np.quantile(m["ssim"], 0.25, method="inverted_cdf") for m in maps]
    np.testing.assert_allclose(per_image.values, expected, atol=BIN_WIDTH)
    # Tile r0c0 holds the valid-map pixels whose window centre is in the top-left quadrant.
    radius, half = 5, SIDE // 2
    tile = np.concatenate([m["ssim"][: half - radius, : half - radius].ravel() for m in maps])
    got = float(ds.review.quantile(0.5, region="r0c0"))
    assert got == pytest.approx(np.quantile(tile, 0.5, method="inverted_cdf"), abs=BIN_WIDTH)


@pytest.mark.parametrize("q", [1.5, -0.1, [[0.5]]])
def test_quantile_rejects_levels_outside_unit_interval(results, q):
    ds, _ = results
    with pytest.raises(ValueError, match=r"q must be a level or a list of levels in \[0, 1\]"):
        ds.review.quantile(q)


# -- lookups and errors --------------------------------------------------------


def test_image_by_id_or_position(results):
    ds, _ = results
    assert ds.review.position("2") == ds.review.position(2) == ds.review.position(-2) == 2
    with pytest.raises(KeyError, match=r"image 'cat.png' is not in the results; valid ids: '0'"):
        ds.review.position("cat.png")
    with pytest.raises(IndexError, match=r"image position 9 is out of range for 4 pairs"):
        ds.review.plot_hist(9)
    with pytest.raises(TypeError, match=r"image must be an id .*\(got float\)"):
        ds.review.position(1.0)


def test_bad_arguments_are_named(results):
    ds, _ = results
    with pytest.raises(ValueError, match=r"k must be a positive integer \(got 0\)"):
        ds.review.worst(0)
    with pytest.raises(ValueError, match="by must be one of ssim"):
        ds.review.best(2, by="lpips")
    with pytest.raises(KeyError, match="region 'r9c9' is not in the results; valid regions"):
        ds.review.worst(2, region="r9c9")


def test_tables_show_and_rank_by_mse_and_psnr(results):
    ds, _ = results
    psnr = ds.psnr.sel(region="all").values
    worst = ds.review.worst(4, by="psnr")
    assert worst["psnr"].tolist() == sorted(psnr.tolist())
    np.testing.assert_allclose(worst["mse"].values, ds.mse.sel(region="all").values[worst.position])
    # MSE: lower is better, so the worst pairs have the largest MSE.
    by_mse = ds.review.worst(2, by="mse")
    assert by_mse["mse"].tolist() == sorted(ds.mse.sel(region="all").values.tolist())[::-1][:2]
    assert ds.review.best(1, by="mse").index[0] == ds.review.best(1, by="psnr").index[0]


def test_results_without_mse_and_psnr_still_rank_by_ssim(results):
    old = results[0].drop_vars(["mse", "psnr"])
    table = old.review.worst(2)
    assert "psnr" not in table.columns and "ssim" in table.columns
    with pytest.raises(ValueError, match=r"by='psnr': these results have no 'psnr' variable"):
        old.review.worst(2, by="psnr")
    assert old.review.summary()["psnr"] is None
