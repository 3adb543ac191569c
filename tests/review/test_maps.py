"""pipeline.review.maps: one pair's SSIM maps, recomputed or read back from the saved maps.

The fixtures are in conftest.py; ``store`` holds the maps the run saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import pipeline
from pipeline.review.maps import pair_view, recompute_maps
from pipeline.review.models import split_models

MODEL_NAMES = ("mild", "patchy", "heavy")  # conftest.model_stacks' models


def test_show_pair_recomputes_the_maps_the_engine_measured(results, stacks):
    ds, _ = results
    maps = recompute_maps(ds, stacks["reference"][1], stacks["a"][1])
    assert maps["ssim"].mean() == pytest.approx(float(ds.ssim.sel(image=1, region="all")))


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


# -- several models: each model's own saved maps -------------------------------------------


@pytest.fixture(scope="module")
def models_store(model_arrays, tmp_path_factory) -> Path:
    """A run of the three models with ``save_maps``: ``maps/<model>/ssim`` ..."""
    reference, generated = model_arrays
    path = tmp_path_factory.mktemp("models_maps") / "results.zarr"
    pipeline.evaluate(
        reference,
        {name: generated[name] for name in MODEL_NAMES},
        output=str(path),
        save_maps=True,
        maps=("ssim", "luminance", "contrast", "structure"),
    )
    return path


def test_pair_data_of_several_models_reads_each_models_saved_maps(models_store):
    ds = pipeline.open_results(models_store)
    seen = []
    for k, name in enumerate(MODEL_NAMES):
        saved = zarr.open_group(str(models_store / "maps" / name), mode="r")["ssim"][3]
        for model in (name, k):
            _, _, maps, source = ds.review.pair_data(3, model=model)
            assert source == "saved"
            np.testing.assert_array_equal(maps["ssim"], saved)
        # The report's lookup: each model's results as split for its section.
        results = dict(split_models(ds))[name]
        np.testing.assert_array_equal(pair_view(results, 3, None, None, None).maps["ssim"], saved)
        seen.append(float(saved.mean()))
        assert np.isfinite(saved).all()
    assert len(set(seen)) == 3  # three models, three different maps
    titles = [axis.get_title() for axis in ds.review.show_pair(3, model="heavy").axes]
    assert "SSIM map (saved), score" in titles[2]
    assert {"luminance (saved)", "contrast (saved)", "structure (saved)"} <= set(titles)
    # An explicit maps path: the maps store (the model's group is found in it) or the group.
    detached = ds.load().copy()
    detached.encoding = {}
    for path in (models_store / "maps", models_store / "maps" / "patchy"):
        _, _, maps, source = detached.review.pair_data(3, model="patchy", maps=path)
        assert source == "saved"
        saved = zarr.open_group(str(models_store / "maps" / "patchy"), mode="r")["ssim"][3]
        np.testing.assert_array_equal(maps["ssim"], saved)


def test_pair_methods_of_several_models_need_a_model(models_store, store):
    ds = pipeline.open_results(models_store)
    with pytest.raises(ValueError, match=r"hold 3 models .*pass model= .* to show_pair"):
        ds.review.show_pair(0)
    with pytest.raises(ValueError, match=r"no model 'nope'; the results have"):
        ds.review.pair_data(0, model="nope")
    with pytest.raises(ValueError, match=r"model must be a name or a position among 3 models"):
        ds.review.pair_data(0, model=3)
    one = pipeline.open_results(store)
    with pytest.raises(ValueError, match=r"these results hold one model; model must be None"):
        one.review.pair_data(0, model="mild")
