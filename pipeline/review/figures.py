"""The figures of ``ds.review`` and of the report, drawn on matplotlib's object API.

* :func:`histogram_figure` -- the pooled ``ssim_hist`` of region ``all`` (the
  SSIM of every valid pixel) beside the histogram of the per-image scores, and
  of the per-image PSNR when the results have it;
* :func:`region_figure` -- mean SSIM per grid region (``r{i}c{j}``) as heatmaps,
  for all successful pairs and for each of the worst pairs, or
  :func:`region_bars` for label regions;
* :func:`worst_figure` -- the worst pairs side by side: reference, generated,
  SSIM map, found or recomputed by :mod:`pipeline.review.maps`;
* :func:`region_winner_figure` -- grid regions coloured by the model of best mean
  SSIM, and :func:`disagreement_figure` -- the references several models disagree
  on most, beside each model's output (the report of several models).
* :func:`mean_map_figure` -- where in the frame the pairs fail: per size group,
  the mean SSIM map over the mean reference image (results with mean maps).

Every figure is a ``Figure`` on the Agg canvas from :func:`new_figure`, at most
:data:`PAGE_WIDTH_PX` wide so that the page shows it at full size (its numbers
stay readable); matplotlib is imported inside the functions, so the global
backend of a notebook or application is never touched and importing this module
does not import it. Text that comes from the results (file names, region names)
goes through :func:`pipeline.results.text.printable_text` and is drawn with
:data:`DATA_TEXT`: never parsed as mathtext or LaTeX, so ``$`` is a dollar.
Every SSIM map is drawn on one colour scale, :data:`SSIM_RANGE`, with values
below it in their own colour. :mod:`pipeline.review.plots` draws ``ds.review``'s
plots with these functions; :mod:`pipeline.report.build` draws the report's figures
with them and writes them with :func:`png_bytes`.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.results.schema import (
    ALL_REGION,
    MAP_HEIGHT,
    MAP_OFFSET,
    MAP_WIDTH,
    MEAN_MAP_COUNT,
    MEAN_MAPS,
    MEAN_REFERENCE,
    MODEL,
    PSNR,
    SIZE_GROUP,
    SSIM,
)
from pipeline.results.summary import PairRow, ResultsScan
from pipeline.results.text import printable_text, text_values
from pipeline.review.maps import pair_view

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

_GRID_REGION = re.compile(r"^r(\d+)c(\d+)$")
DPI = 100
#: Widest figure in pixels: the report page's content width (its CSS), so no
#: figure is shrunk by the browser and 8-point text stays 11 pixels high.
PAGE_WIDTH_PX = 1100
#: The one colour scale of every SSIM map (the colour bar says so); lower values
#: (SSIM reaches -1) are drawn in :data:`_SSIM_UNDER`.
SSIM_RANGE = (0.0, 1.0)
_SSIM_UNDER = "#2b8cbe"
_SSIM_LEGEND = "local SSIM, one scale for every map (blue: below 0)"
#: Properties of every text drawn from data: shown as it is, never interpreted.
DATA_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}
# Longest name drawn in a figure (the page's tables hold the whole name).
NAME_LIMIT = 44
_HEATMAP_COLUMNS = 3
# zlib level of the figures' PNG files: 1 of 9, the fastest (see png_bytes).
_PNG_LEVEL = 1


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout ``Figure`` of ``width`` x ``height`` inches, at most the page wide."""
    from matplotlib.figure import Figure

    width = min(width, PAGE_WIDTH_PX / DPI)
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png_bytes(figure: Figure, path: Path) -> bytes:
    """Draw ``figure`` once and write it to ``path`` as PNG; return the file's bytes.

    The pixels are those ``savefig`` gives at :data:`DPI`, for less work:
    ``savefig`` draws a constrained-layout figure twice (a pass to lay it out,
    then the picture), where one draw lays it out and paints it; and an opaque
    figure (the usual white face) is stored as RGB at a fast zlib level, which
    encodes several times faster than matplotlib's RGBA at zlib's default and
    still gives a smaller file (photographs in the worst-pairs figure barely
    compress at any level).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image, PngImagePlugin

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    image = Image.fromarray(rgba, "RGBA")
    if (rgba[..., 3] == 255).all():
        image = image.convert("RGB")
    info = PngImagePlugin.PngInfo()
    # The text chunk savefig writes.
    info.add_text(
        "Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_LEVEL, pnginfo=info, dpi=(DPI, DPI))
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def _ssim_colormap() -> Colormap:
    from matplotlib import colormaps

    return colormaps["magma"].with_extremes(under=_SSIM_UNDER)


def draw_ssim_map(axis: Axes, values: np.ndarray) -> Any:
    """Draw an SSIM map on the one scale :data:`SSIM_RANGE`; return the image artist."""
    return axis.imshow(values, cmap=_ssim_colormap(), vmin=SSIM_RANGE[0], vmax=SSIM_RANGE[1])


def ssim_colorbar(figure: Figure, axes: Any) -> None:
    """The legend of every SSIM map in ``figure``: one bar, the one scale."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scale = ScalarMappable(Normalize(*SSIM_RANGE), _ssim_colormap())
    figure.colorbar(scale, ax=axes, shrink=0.8, extend="min", label=_SSIM_LEGEND)


def draw_note(axis: Axes, text: str) -> None:
    """A message in place of a panel's picture, wrapped to the panel."""
    axis.text(
        0.5,
        0.5,
        textwrap.fill(text, 38),
        ha="center",
        va="center",
        fontsize=8,
        transform=axis.transAxes,
        **DATA_TEXT,
    )


def histogram_figure(data: ResultsScan) -> Figure:
    """The pooled SSIM-map histogram beside the histograms of the per-image SSIM (and PSNR)."""
    from matplotlib.ticker import MaxNLocator

    pooled, edges = data.pooled_hist, data.edges
    psnr = data.scores.get(PSNR) if PSNR in data.ok_values else None
    if psnr is None:
        figure = new_figure(10, 3.6)
        left, right = figure.subplots(1, 2)
    else:
        figure = new_figure(14, 3.6)
        left, right, third = figure.subplots(1, 3)
        _psnr_panel(third, psnr, data.n_identical)
    total = pooled.sum()
    density = pooled / (total * np.diff(edges)) if total > 0 else pooled
    left.stairs(density, edges, fill=True, color="#4c72b0")
    left.set_xlim(_histogram_xlim(pooled, edges))
    left.set_xlabel("local SSIM (every valid pixel, all pairs)")
    left.set_ylabel("density")
    left.set_title(f"SSIM map values ({int(total):,} pixels)")
    scores = data.scores[SSIM]
    right.hist(scores, bins=min(30, max(5, scores.size)), color="#dd8452", edgecolor="white")
    if scores.size:
        right.axvline(float(scores.mean()), color="black", linestyle="--", label="mean")
        right.legend(loc="upper left")
    # A count of pairs is a whole number: no tick at 2.5 pairs.
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlabel("SSIM per image (region 'all')")
    right.set_ylabel("pairs")
    right.set_title(f"Image scores ({scores.size:,} pairs)")
    return figure


def _psnr_panel(axes: Axes, psnr: np.ndarray, n_identical: int) -> None:
    """The per-image PSNR histogram (finite values; identical pairs named in the title)."""
    from matplotlib.ticker import MaxNLocator

    axes.hist(psnr, bins=min(30, max(5, psnr.size)), color="#55a868", edgecolor="white")
    if psnr.size:
        axes.axvline(float(psnr.mean()), color="black", linestyle="--", label="mean")
        axes.legend(loc="upper left")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("PSNR per image, dB (every pixel)")
    axes.set_ylabel("pairs")
    title = f"PSNR ({psnr.size:,} pairs"
    title += f"; {n_identical:,} identical)" if n_identical else ")"
    axes.set_title(title)


def _histogram_xlim(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Zoom on the occupied part of [-1, 1] (most GAN outputs live above 0)."""
    occupied = np.flatnonzero(counts > 0)
    if occupied.size == 0:
        return -1.0, 1.0
    low = max(-1.0, float(edges[occupied[0]]) - 0.05)
    return low, 1.0


def grid_shape(regions: Sequence[str]) -> tuple[int, int] | None:
    """``(rows, columns)`` of grid regions ``r{i}c{j}``; None when any region is not one."""
    cells = [_GRID_REGION.match(name) for name in regions if name != ALL_REGION]
    if not cells or not all(cells):
        return None
    rows = 1 + max(int(m.group(1)) for m in cells if m)
    cols = 1 + max(int(m.group(2)) for m in cells if m)
    return rows, cols


def _grid_values(values: np.ndarray, regions: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    grid = np.full(shape, np.nan)
    for value, name in zip(values, regions, strict=True):
        match = _GRID_REGION.match(name)
        if match:
            grid[int(match.group(1)), int(match.group(2))] = value
    return grid


def _cell_fontsize(shape: tuple[int, int]) -> float:
    """Points for the numbers in heatmap cells: as large as the cells let them be."""
    side = max(shape)
    return 11.0 if side <= 4 else 9.0 if side <= 6 else 8.0


def region_figure(
    regions: Sequence[str], mean: np.ndarray, worst: Sequence[PairRow]
) -> Figure | None:
    """Heatmaps (grid regions) or bars (label regions) of the mean SSIM per region."""
    if not regions:
        return None
    shape = grid_shape(regions)
    if shape is None:
        return region_bars(regions, mean)
    panels = [("mean of all pairs", np.asarray(mean, dtype=np.float64))]
    for pair in worst[:4]:
        title = f"{printable_text(pair.image, NAME_LIMIT)}\n(SSIM {pair.score:.3f})"
        panels.append((title, np.asarray(pair.region_values, dtype=np.float64)))
    finite = np.concatenate([p[1][np.isfinite(p[1])] for p in panels])
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = max(1e-6 + vmin, float(finite.max())) if finite.size else 1.0
    # At most three panels a row: five in one row would be shrunk to two thirds on the page.
    columns = min(_HEATMAP_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(3.4 * columns + 1.0, 3.5 * rows + 0.5)
    axes = np.asarray(figure.subplots(rows, columns, squeeze=False)).ravel()
    fontsize = _cell_fontsize(shape)
    image = None
    for axis, (title, row) in zip(axes, panels, strict=False):
        grid = _grid_values(row, regions, shape)
        image = axis.imshow(grid, cmap="RdYlGn", vmin=vmin, vmax=vmax)
        axis.set_title(title, fontsize=10, **DATA_TEXT)
        axis.set_xticks(range(shape[1]), [f"c{j}" for j in range(shape[1])], fontsize=9)
        axis.set_yticks(range(shape[0]), [f"r{i}" for i in range(shape[0])], fontsize=9)
        if shape[0] * shape[1] <= 64:
            for (i, j), value in np.ndenumerate(grid):
                if np.isfinite(value):
                    # Light text on the dark ends of the colour map, dark text elsewhere.
                    shade = (value - vmin) / (vmax - vmin)
                    colour = "white" if shade < 0.2 or shade > 0.85 else "black"
                    axis.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=fontsize,
                        color=colour,
                    )
    for axis in axes[len(panels) :]:
        axis.set_axis_off()
    if image is not None:
        figure.colorbar(image, ax=list(axes), shrink=0.8, label="mean SSIM in region")
    figure.suptitle("SSIM per region (lower = where the generator fails)")
    return figure


def region_bars(names: Sequence[str], mean: np.ndarray) -> Figure:
    """Bars of the mean SSIM per (label) region."""
    figure = new_figure(7, 0.35 * len(names) + 1.5)
    axis = figure.subplots()
    positions = np.arange(len(names))
    axis.barh(positions, mean, color="#55a868")
    # Label names come from the user's mask: shown, never parsed.
    labels = [printable_text(name, NAME_LIMIT) for name in names]
    axis.set_yticks(positions, labels, **DATA_TEXT)
    axis.invert_yaxis()
    axis.set_xlabel("mean SSIM over all pairs")
    axis.set_title("SSIM per region")
    return figure


def display_scaled(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image scaled to [0, 1] for imshow, and the colour map for grey."""
    values = image.astype(np.float64)
    if image.dtype.kind in "ui":
        values /= np.iinfo(image.dtype).max
    else:
        span = float(values.max() - values.min()) or 1.0
        values = (values - values.min()) / span
    return np.clip(values, 0.0, 1.0), ("gray" if image.ndim == 2 else None)


def worst_figure(ds: xr.Dataset, worst: Sequence[PairRow]) -> tuple[Figure | None, list[str]]:
    """The worst pairs side by side, and a note per pair on where its map came from.

    A pair whose files are gone, unreadable or changed since the run shows why in
    its panels (and its note); the other pairs are drawn as usual.
    """
    if not worst:
        return None, []
    figure = new_figure(11, 3.3 * len(worst) + 0.4)
    axes = np.asarray(figure.subplots(len(worst), 3, squeeze=False))
    notes = []
    for row, pair in zip(axes, worst, strict=True):
        # pipeline.review.maps owns where maps and images are found (saved maps,
        # files, Zarr stacks) and how a missing map is recomputed.
        view = pair_view(ds, pair.position, None, None, None, (pair.reference, pair.generated))
        ssim_map = view.maps.get(SSIM)
        problems = "; ".join(printable_text(p) for p in view.problems)
        note = view.source if ssim_map is not None else "unavailable"
        notes.append(f"{note}: {problems}" if problems else note)
        for axis, title, image in (
            (row[0], f"reference\n{printable_text(pair.image, NAME_LIMIT)}", view.reference),
            (
                row[1],
                f"generated\n{printable_text(Path(pair.generated).name, NAME_LIMIT)}",
                view.generated,
            ),
        ):
            if image is None:
                draw_note(axis, problems or "file not readable")
            else:
                shown, cmap = display_scaled(image)
                axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
            axis.set_title(title, fontsize=9, **DATA_TEXT)
            axis.set_axis_off()
        if ssim_map is None:
            draw_note(row[2], "SSIM map unavailable" + (f": {problems}" if problems else ""))
        else:
            draw_ssim_map(row[2], ssim_map)
        row[2].set_title(f"SSIM map ({note}), score {pair.score:.3f}", fontsize=9)
        row[2].set_axis_off()
    ssim_colorbar(figure, axes[:, 2])
    return figure, notes


# -- several models ------------------------------------------------------------

# Categorical colours of the models in the region-winner map (matplotlib's tab10 order).
_MODEL_COLOURS = "tab10"


def region_winner_figure(
    regions: Sequence[str], region_mean: np.ndarray, winners: Sequence[str], models: Sequence[str]
) -> Figure | None:
    """Grid regions coloured by the model of best mean score; None for label regions.

    ``regions`` are the regions besides ``all``; ``region_mean`` is ``(model,
    region)`` over them and ``winners`` the winning model's name per region (``""``:
    none). Each cell says the winner and its mean.
    """
    shape = grid_shape(regions)
    if shape is None:
        return None
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    palette = colormaps[_MODEL_COLOURS]
    colours = [palette(k % palette.N) for k in range(len(models))]
    index = {name: k for k, name in enumerate(models)}
    codes = np.asarray([index.get(name, np.nan) for name in winners], dtype=np.float64)
    grid = _grid_values(codes, regions, shape)
    figure = new_figure(1.2 * shape[1] + 3.5, 1.0 * shape[0] + 1.2)
    axis = figure.subplots()
    axis.imshow(
        grid, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(models) - 0.5, interpolation="none"
    )
    axis.set_xticks(range(shape[1]), [f"c{j}" for j in range(shape[1])], fontsize=9)
    axis.set_yticks(range(shape[0]), [f"r{i}" for i in range(shape[0])], fontsize=9)
    if shape[0] * shape[1] <= 64:
        fontsize = _cell_fontsize(shape)
        for name, winner, column in zip(regions, winners, region_mean.T, strict=True):
            match = _GRID_REGION.match(name)
            if match is None or not winner:
                continue
            value = column[index[winner]]
            axis.text(
                int(match.group(2)),
                int(match.group(1)),
                f"{printable_text(winner, 12)}\n{value:.3f}",
                ha="center",
                va="center",
                fontsize=fontsize - 2,
                **DATA_TEXT,
            )
    handles = [
        Patch(color=colours[k], label=printable_text(name, NAME_LIMIT))
        for k, name in enumerate(models)
    ]
    legend = axis.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, title="model"
    )
    for text in legend.get_texts():
        text.set(**DATA_TEXT)
    axis.set_title("Best model per region (mean SSIM over the shared references)", fontsize=10)
    return figure


def disagreement_figure(
    runs: Sequence[tuple[str, xr.Dataset]],
    images: Sequence[str],
    positions: np.ndarray,
    scores: np.ndarray,
) -> tuple[Figure | None, list[str]]:
    """Reference and every model's output of the references the models disagree on most.

    ``runs`` are ``(name, single-model results)``; ``images`` the references' ids,
    ``positions`` and ``scores`` their ``(reference, model)`` positions in each
    model's results and scores. Images are found as the worst pairs' are
    (:func:`pipeline.review.maps.pair_images`); returns None when not one is found
    (in-memory inputs), and a note per reference on what was missing.
    """
    from pipeline.review.maps import pair_images

    if not len(images):
        return None, []
    views = [
        [pair_images(results, int(positions[row, m])) for m, (_, results) in enumerate(runs)]
        for row in range(len(images))
    ]
    notes = []
    for row_views in views:
        problems = sorted({p for view in row_views for p in view.problems})
        notes.append("; ".join(printable_text(p) for p in problems))
    if not any(view.generated is not None for row_views in views for view in row_views):
        return None, notes
    columns = len(runs) + 1
    figure = new_figure(2.3 * columns, 2.5 * len(images) + 0.3)
    axes = np.asarray(figure.subplots(len(images), columns, squeeze=False))
    for row, (image, row_views) in enumerate(zip(images, views, strict=True)):
        panels = [(f"reference\n{printable_text(image, 24)}", row_views[0].reference, "")]
        panels += [
            (
                f"{printable_text(name, 20)}\nSSIM {scores[row, m]:.3f}",
                view.generated,
                "; ".join(view.problems),
            )
            for m, ((name, _), view) in enumerate(zip(runs, row_views, strict=True))
        ]
        for axis, (title, picture, problem) in zip(axes[row], panels, strict=True):
            if picture is None:
                draw_note(axis, problem or "file not readable")
            else:
                shown, cmap = display_scaled(picture)
                axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
            axis.set_title(title, fontsize=8, **DATA_TEXT)
            axis.set_axis_off()
    figure.suptitle("Where the models disagree most: reference, then each model's output")
    return figure, notes


# Size groups drawn by mean_map_figure (the most pairs first); the rest are listed.
MEAN_MAP_GROUPS = 4
# Opacity of the mean SSIM heat map over the mean reference image.
_MEAN_MAP_ALPHA = 0.65


def mean_map_figure(ds: xr.Dataset, max_groups: int = MEAN_MAP_GROUPS) -> Figure | None:
    """Per size group (and model), the mean reference image and the mean SSIM map over it.

    Reads only the mean-map variables (one ``(y, x)`` image per group and model);
    None when the results have none or no group has an ``ok`` pair. The groups with
    the most pairs come first, at most ``max_groups`` per model; with several models
    (a ``model`` dimension) each model has its own rows, titled with its name. Map
    pixel ``(i, j)`` is the window centred on image pixel ``(i + map_offset, j +
    map_offset)``: the map and the backdrop are the valid region, the border band of
    half a window cut.
    """
    if MEAN_MAPS[0] not in ds or SIZE_GROUP not in ds.coords:
        return None
    several = MODEL in ds[MEAN_MAPS[0]].dims
    models: list[str | None] = list(text_values(ds[MODEL].values)) if several else [None]
    panels = []
    for model in models:
        one = ds if model is None else ds.isel({MODEL: models.index(model)})
        counts = np.asarray(one[MEAN_MAP_COUNT].values, dtype=np.int64)
        order = [int(g) for g in np.argsort(-counts, kind="stable") if counts[g] > 0]
        panels += [(model, one.isel({SIZE_GROUP: g}), int(counts[g])) for g in order[:max_groups]]
    if not panels:
        return None
    figure = new_figure(11, 4.2 * len(panels) + 0.4)
    axes = np.asarray(figure.subplots(len(panels), 2, squeeze=False))
    for row, (model, group, count) in zip(axes, panels, strict=True):
        h, w = int(group[MAP_HEIGHT]), int(group[MAP_WIDTH])
        backdrop = np.asarray(group[MEAN_REFERENCE].values, dtype=np.float64)[:h, :w]
        ssim_map = np.asarray(group[MEAN_MAPS[0]].values, dtype=np.float64)[:h, :w]
        shown, _ = display_scaled(backdrop)
        name = printable_text(str(group[SIZE_GROUP].values), NAME_LIMIT)
        if model is not None:
            name = f"{printable_text(model, NAME_LIMIT)}, {name}"
        row[0].imshow(shown, cmap="gray", vmin=0.0, vmax=1.0)
        row[0].set_title(f"mean reference, {name} ({count:,} pairs)", fontsize=9, **DATA_TEXT)
        row[1].imshow(shown, cmap="gray", vmin=0.0, vmax=1.0)
        image = draw_ssim_map(row[1], ssim_map)
        image.set_alpha(_MEAN_MAP_ALPHA)
        offset = int(group[MAP_OFFSET])
        prefix = "mean SSIM map" if model is None else f"{printable_text(model, NAME_LIMIT)}:"
        row[1].set_title(
            f"{prefix} (mean {np.nanmean(ssim_map):.3f}, min {np.nanmin(ssim_map):.3f}); "
            f"valid region, {offset} px border cut",
            fontsize=9,
        )
        for axis in row:
            axis.set_axis_off()
    ssim_colorbar(figure, axes[:, 1])
    return figure
