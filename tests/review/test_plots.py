"""pipeline.review.plots: the figures of ``ds.review`` (histograms, regions, one pair).

Called through ``ds.review.plot_hist``, ``plot_regions`` and ``show_pair``, which
delegate to :mod:`pipeline.review.plots`; the fixtures are in conftest.py. Where the
maps of ``show_pair`` come from is tested in test_maps.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline

SIDE = 64  # the side of the ``stacks`` fixture's images (conftest.py)


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
