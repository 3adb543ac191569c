"""pipeline.review.figures: the report's PNG files.

The pixels matplotlib's savefig gives, written with less work.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.review.figures import DPI, draw_ssim_map, new_figure, png_bytes, ssim_colorbar


def _figure(rng: np.random.Generator):
    # Constrained layout, titles, an image, a colour bar: what the report draws.
    figure = new_figure(4, 2.5)
    left, right = figure.subplots(1, 2)
    left.plot(rng.normal(size=20))
    left.set_title("a line")
    draw_ssim_map(right, rng.uniform(-0.2, 1.0, (12, 16)))
    right.set_title("a map")
    ssim_colorbar(figure, right)
    return figure


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_png_has_the_pixels_of_savefig(tmp_path: Path) -> None:
    expected = io.BytesIO()
    _figure(np.random.default_rng(5)).savefig(expected, format="png", dpi=DPI)
    data = png_bytes(_figure(np.random.default_rng(5)), tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes() == data
    np.testing.assert_array_equal(_pixels(data), _pixels(expected.getvalue()))
    # An opaque figure is stored without its alpha channel, at the figure's resolution.
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGB"
    assert image.size == (400, 250)


def test_a_transparent_figure_keeps_its_alpha(tmp_path: Path) -> None:
    figure = new_figure(2, 1)
    figure.patch.set_alpha(0.0)
    figure.subplots().plot([0, 1])
    image = Image.open(io.BytesIO(png_bytes(figure, tmp_path / "clear.png")))
    assert image.mode == "RGBA"
    assert np.asarray(image)[..., 3].min() == 0


def test_region_winner_map_colours_each_cell_by_its_winner():
    from matplotlib import colormaps

    from pipeline.review.figures import region_winner_figure

    regions = ["r0c0", "r0c1", "r1c0", "r1c1"]
    mean = np.array([[0.9, 0.2, 0.8, 0.7], [0.1, 0.6, 0.3, 0.2]])
    figure = region_winner_figure(regions, mean, ["a", "b", "a", "a"], ["a", "b"])
    axis = figure.axes[0]
    grid = np.asarray(axis.images[0].get_array())
    np.testing.assert_array_equal(grid, [[0, 1], [0, 0]])  # model positions
    cells = sorted(text.get_text() for text in axis.texts)
    assert cells == ["a\n0.700", "a\n0.800", "a\n0.900", "b\n0.600"]
    palette = colormaps["tab10"]
    assert axis.images[0].cmap(1) == palette(1)
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["a", "b"]
    assert region_winner_figure(["sky", "road"], mean[:, :2], ["a", "b"], ["a", "b"]) is None
