"""pipeline.review.maps: one pair's SSIM maps, recomputed or read back from the saved maps.

The fixtures are in conftest.py; ``store`` holds the maps the run saved.
"""

from __future__ import annotations

import pytest

import pipeline
from pipeline.review.maps import recompute_maps


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
