"""``ds.review.mean_map()`` / ``plot_mean_map()`` and the report's mean-map figure.

Reference values: the per-pair valid SSIM maps of :func:`pipeline.ssim`
(``full=True``, reference engine) averaged with NumPy; the figure's pixels are
checked against the stored variables it draws.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import pipeline as sp
from pipeline.report.build import REPORT_FILES, write_report
from pipeline.review.figures import mean_map_figure
from pipeline.testing import degrade, photograph

# Mean maps are on by default ("auto"); said here so that the tests do not depend on it.
evaluate = functools.partial(sp.evaluate, mean_maps="auto")


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    camera = photograph("camera")
    x = np.stack([camera[40 * k : 40 * k + 48, 100:152] for k in range(3)])
    rng = np.random.default_rng(3)
    y = np.stack([degrade(c, "noise", strength=20.0, rng=rng) for c in x])
    y[:, 20:30, 10:20] = 0  # the same damaged patch in every output: low mean SSIM there
    return x, y


def test_mean_map_is_the_mean_of_the_pairs_maps(pairs) -> None:
    x, y = pairs
    ds = evaluate(x, y, engine="reference", chunks=(1, 24, 26))
    got = ds.review.mean_map()
    expected = np.mean(
        [
            sp.ssim(a, b, engine="reference", full=True)[1]["ssim"]
            for a, b in zip(x, y, strict=True)
        ],
        axis=0,
    )
    assert got.dims == ("map_y", "map_x") and got.shape == (38, 42)
    np.testing.assert_allclose(got.values, expected, atol=1e-9)
    # The damaged patch (image rows 20..29, cols 10..19) is where the mean map is lowest.
    i, j = np.unravel_index(np.argmin(got.values), got.shape)
    assert 20 - 5 - 5 <= i + 5 <= 29 + 5 and 10 - 5 <= j + 5 <= 19 + 5
    np.testing.assert_allclose(
        ds.review.mean_map("48x52x1", "reference").values, x[:, 5:-5, 5:-5].mean(axis=0)
    )
    with pytest.raises(ValueError, match="no size group '1x1x1'"):
        ds.review.mean_map("1x1x1")
    with pytest.raises(ValueError, match="component must be one of"):
        ds.review.mean_map(component="cs")


def test_plot_and_report_show_the_mean_map(pairs, tmp_path) -> None:
    x, y = pairs
    ds = evaluate(x, y, chunks=(1, 24, 26))
    figure = mean_map_figure(ds)
    assert figure is not None
    heat = figure.axes[1].get_images()[-1].get_array()
    np.testing.assert_array_equal(np.asarray(heat), ds.mean_ssim_map.values[0])
    assert type(ds.review.plot_mean_map()).__name__ == "Figure"
    page = write_report(ds, tmp_path / "on")
    assert (tmp_path / "on" / REPORT_FILES["mean_maps"]).stat().st_size > 0
    assert "Where in the frame" in page.read_text()


def test_results_without_mean_maps_still_report(pairs, tmp_path) -> None:
    x, y = pairs
    ds = evaluate(x, y, mean_maps=False)
    assert mean_map_figure(ds) is None
    with pytest.raises(ValueError, match="no mean maps"):
        ds.review.mean_map()
    page = write_report(ds, tmp_path / "off")
    assert not (tmp_path / "off" / REPORT_FILES["mean_maps"]).exists()
    assert "Where in the frame" not in page.read_text()


def test_mean_maps_of_several_models_one_per_model(pairs, tmp_path) -> None:
    x, y = pairs
    worse = np.clip(y.astype(int) // 2, 0, 255).astype(np.uint8)
    ds = evaluate(x, {"good": y, "bad": worse}, engine="reference", chunks=(1, 24, 26))
    both = ds.review.mean_map()
    assert both.dims == ("model", "map_y", "map_x") and both.shape == (2, 38, 42)
    for name, generated in (("good", y), ("bad", worse)):
        expected = np.mean(
            [
                sp.ssim(a, b, engine="reference", full=True)[1]["ssim"]
                for a, b in zip(x, generated, strict=True)
            ],
            axis=0,
        )
        np.testing.assert_allclose(ds.review.mean_map(model=name).values, expected, atol=1e-9)
    np.testing.assert_array_equal(ds.review.mean_map(model=1).values, both.values[1])
    with pytest.raises(ValueError, match="no model 'ugly'; the results have good, bad"):
        ds.review.mean_map(model="ugly")
    # One row per model in the figure, each drawing its own model's map.
    figure = ds.review.plot_mean_map()
    heats = [axis.get_images()[-1].get_array() for axis in figure.axes[1:4:2]]
    for k, heat in enumerate(heats):
        np.testing.assert_array_equal(np.asarray(heat), ds.mean_ssim_map.values[k, 0])
    assert "bad" in figure.axes[2].get_title()
    only = ds.review.plot_mean_map(model="bad")
    assert len(only.axes) == 3  # one row (two panels) and the colour bar
    # The report: each model's section has its own heat map file.
    page = write_report(ds, tmp_path / "models")
    for k in range(2):
        assert (tmp_path / "models" / f"model{k}_{REPORT_FILES['mean_maps']}").stat().st_size > 0
    assert page.read_text().count("Where in the frame") == 2
