"""pipeline.review.accessor: the ``ds.review`` accessor itself.

Its registration and schema check, its delegation (the summary is the shared
``summarize``), a lazily opened Zarr store through every kind of method, matplotlib
imported only for plots, and the docstring examples. What each method computes is
tested with the module that implements it: test_tables.py, test_comparison.py,
test_plots.py and test_maps.py; the fixtures are in conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import pipeline
from pipeline.results.summary import summarize

N_IMAGES = 4  # the pairs of the ``results`` fixture (conftest.py)


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


def test_accessor_refuses_a_dataset_without_the_schema():
    with pytest.raises(ValueError, match="results Dataset lacks ssim"):
        _ = xr.Dataset({"x": ("i", [1, 2])}).review


# -- Zarr round trip -----------------------------------------------------------


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


def _write_store(ds: xr.Dataset, path) -> None:
    """``write_zarr``; where the results schema does not know ``model`` yet (it expects
    ``(image, region)``), xarray's own writer, what write_zarr calls after its check."""
    from pipeline.results.stores import write_zarr

    try:
        write_zarr(ds, path)
    except ValueError as error:
        if "expected ('image', 'region')" not in str(error):
            raise
        ds.to_zarr(path, zarr_format=3, consolidated=False)


def test_multi_model_store_compares_lazily_like_memory(multi, tmp_path):
    path = tmp_path / "models.zarr"
    _write_store(multi, path)
    ds = pipeline.open_results(path)
    assert ds.ssim.chunks is not None
    stored, memory = ds.review.compare(), multi.review.compare()
    assert stored.model.values.tolist() == memory.model.values.tolist()
    for name in ("ssim_mean", "ssim_ci_high", "psnr_mean", "wilcoxon_p_holm", "spread"):
        np.testing.assert_allclose(stored[name].values, memory[name].values)
    assert stored.region_winner.values.tolist() == memory.region_winner.values.tolist()
