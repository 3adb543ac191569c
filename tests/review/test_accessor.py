"""``ds.review``: tables, histogram quantiles, model comparison and figures on real results."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import pipeline
from pipeline.results.summary import summarize
from pipeline.review.maps import recompute_maps
from pipeline.testing import degrade, photograph

N_IMAGES = 4
SIDE = 64
BIN_WIDTH = 2 / 100  # the default hist_bins


def _stack(strengths: tuple[float, ...], kind: str) -> tuple[np.ndarray, np.ndarray]:
    camera = photograph("camera")
    crops = [camera[64 * k : 64 * k + SIDE, 100 : 100 + SIDE] for k in range(N_IMAGES)]
    reference = np.stack(crops)
    rng = np.random.default_rng(7)
    generated = np.stack(
        [degrade(c, kind, strength=s, rng=rng) for c, s in zip(crops, strengths, strict=True)]
    )
    return reference, generated


@pytest.fixture(scope="module")
def stacks() -> dict[str, np.ndarray]:
    reference, noisy = _stack((4.0, 30.0, 12.0, 60.0), "noise")
    _, blurred = _stack((8.0, 20.0, 5.0, 12.0), "blur")
    return {"reference": reference, "a": noisy, "b": blurred}


@pytest.fixture(scope="module")
def results(stacks) -> tuple[xr.Dataset, xr.Dataset]:
    ds_a = pipeline.evaluate(stacks["reference"], stacks["a"], regions="2x2")
    ds_b = pipeline.evaluate(stacks["reference"], stacks["b"], regions="2x2")
    return ds_a, ds_b


@pytest.fixture(scope="module")
def store(stacks, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("accessor") / "results.zarr"
    pipeline.evaluate(
        stacks["reference"],
        stacks["a"],
        regions="2x2",
        output=str(path),
        save_maps=True,
        maps=("ssim", "luminance", "contrast", "structure"),
    )
    return path


def _maps(stacks, side: str) -> list[dict[str, np.ndarray]]:
    out = []
    for x, y in zip(stacks["reference"], stacks[side], strict=True):
        _, maps = pipeline.ssim(x, y, full=True)
        out.append(maps)
    return out


# -- tables ---------------------------------------------------------------------


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


def test_summary_is_the_shared_summarize_and_agrees_with_quantile(results):
    ds, _ = results
    summary = ds.review.summary(worst=2)
    assert summary == summarize(ds, worst=2)
    assert summary["pairs"] == summary["ok"] == N_IMAGES
    assert [row["image"] for row in summary["worst"]] == ds.review.worst(2).index.tolist()
    levels = [float(q) for q in summary["quantiles"]]
    np.testing.assert_allclose(
        ds.review.quantile(levels).values, list(summary["quantiles"].values())
    )


# -- quantiles ------------------------------------------------------------------


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


# -- compare --------------------------------------------------------------------


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


# -- lookups and errors -----------------------------------------------------------


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
        ds.review.best(2, by="psnr")
    with pytest.raises(KeyError, match="region 'r9c9' is not in the results; valid regions"):
        ds.review.worst(2, region="r9c9")


def test_accessor_refuses_a_dataset_without_the_schema():
    with pytest.raises(ValueError, match="results Dataset lacks ssim"):
        _ = xr.Dataset({"x": ("i", [1, 2])}).review


# -- figures --------------------------------------------------------------------


def test_plots_return_figures(results, stacks):
    from matplotlib.figure import Figure

    ds, _ = results
    assert isinstance(ds.review.plot_hist(), Figure)
    assert isinstance(ds.review.plot_hist("1"), Figure)
    heatmap = ds.review.plot_regions()
    assert isinstance(heatmap, Figure)
    assert heatmap.axes[0].get_title() == "mean of all pairs"
    one = ds.review.plot_regions(3)
    assert one.axes[1].get_title().startswith("3\n")
    pair = ds.review.show_pair("1", reference=stacks["reference"], generated=stacks["a"])
    titles = [axis.get_title() for axis in pair.axes]
    assert "SSIM map (recomputed), score" in titles[2]
    assert "structure (recomputed)" in titles


def test_show_pair_recomputes_the_maps_the_engine_measured(results, stacks):
    ds, _ = results
    maps = recompute_maps(ds, stacks["reference"][1], stacks["a"][1])
    assert maps["ssim"].mean() == pytest.approx(float(ds.ssim.sel(image=1, region="all")))


def test_show_pair_without_images_or_maps_says_so(results):
    ds, _ = results
    figure = ds.review.show_pair(0)
    titles = [axis.get_title() for axis in figure.axes]
    assert "SSIM map (unavailable)" in titles[2]


def test_plot_regions_needs_regions(stacks):
    ds = pipeline.evaluate(stacks["reference"][:2], stacks["a"][:2])
    with pytest.raises(ValueError, match="no region besides 'all'; evaluate with regions="):
        ds.review.plot_regions()


def test_label_regions_plot_as_bars(stacks):
    labels = np.zeros((SIDE, SIDE), dtype=np.uint8)
    labels[:, SIDE // 2 :] = 1
    labels[: SIDE // 4] = 2
    ds = pipeline.evaluate(
        stacks["reference"][:2],
        stacks["a"][:2],
        regions="labels",
        labels=labels,
        label_names={1: "right", 2: "top"},
    )
    figure = ds.review.plot_regions(1)
    assert figure.axes[0].get_title() == "SSIM per region: 1"
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["right", "top"]


# -- Zarr round trip ------------------------------------------------------------


def test_zarr_store_opens_lazily_and_works_with_the_accessor(store, results):
    ds_memory, _ = results
    ds = pipeline.open_results(store)
    assert ds.ssim.chunks is not None and ds.ssim_hist.chunks is not None
    assert (
        ds.review.worst(N_IMAGES).index.tolist() == ds_memory.review.worst(N_IMAGES).index.tolist()
    )
    np.testing.assert_allclose(
        ds.review.quantile([0.1, 0.5]).values, ds_memory.review.quantile([0.1, 0.5]).values
    )
    assert ds.review.quantile(0.5, by_image=True).chunks is not None  # still lazy
    compared = ds.review.compare(ds_memory)
    np.testing.assert_allclose(compared.difference.values, 0.0, atol=1e-12)
    assert int(compared.ties.sel(region="all")) == N_IMAGES


def test_show_pair_uses_the_saved_maps(store):
    ds = pipeline.open_results(store)
    figure = ds.review.show_pair(2)
    titles = [axis.get_title() for axis in figure.axes]
    assert "SSIM map (saved), score" in titles[2]
    assert {"luminance (saved)", "contrast (saved)", "structure (saved)"} <= set(titles)
    # Also from an explicit maps path, after the store's own location is lost.
    detached = ds.load().copy()
    detached.encoding = {}
    titles = [a.get_title() for a in detached.review.show_pair(2, maps=store / "maps").axes]
    assert "SSIM map (saved), score" in titles[2]
    with pytest.raises(FileNotFoundError, match=r"maps path .* is not a Zarr group folder"):
        detached.review.show_pair(2, maps=store / "nowhere")


def test_matplotlib_is_imported_only_for_plots(store):
    script = textwrap.dedent(
        f"""
        import sys
        import pipeline
        ds = pipeline.open_results({str(store)!r})
        ds.review.summary(); ds.review.worst(2); ds.review.quantile(0.5)
        ds.review.compare(ds)
        assert "matplotlib" not in sys.modules, "imported by summary/worst/quantile/compare"
        ds.review.plot_hist()
        assert "matplotlib" in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_docstring_examples_run():
    import doctest

    import pipeline.review.accessor

    failures, tried = doctest.testmod(pipeline.review.accessor)
    assert tried > 0 and failures == 0
