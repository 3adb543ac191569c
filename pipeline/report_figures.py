"""The report's figures, drawn on matplotlib's object API and shared with ``ds.review``.

* :func:`_histogram_figure` -- the pooled ``ssim_hist`` of region ``all`` (the
  SSIM of every valid pixel) beside the histogram of the per-image scores;
* :func:`_region_figure` -- mean SSIM per grid region (``r{i}c{j}``) as heatmaps,
  for all successful pairs and for each of the worst pairs, or
  :func:`_region_bars` for label regions;
* :func:`_worst_figure` -- the worst pairs side by side: reference, generated,
  SSIM map, found or recomputed by ``ds.review.pair_data``
  (:mod:`pipeline.review_maps`).

Every figure is a ``Figure`` on the Agg canvas from :func:`_new_figure`;
matplotlib is imported inside the functions, so the global backend of a notebook
or application is never touched and importing this module does not import it.
:mod:`pipeline.review_plots` draws ``ds.review``'s plots with the same functions.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.dataset import BIN_LOWER, BIN_UPPER, IMAGE, REGION, SSIM, SSIM_HIST
from pipeline.regions import ALL_REGION
from pipeline.report_inputs import _overall, _strings, _WorstPair

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

_GRID_REGION = re.compile(r"^r(\d+)c(\d+)$")
_DPI = 100


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _png_bytes(figure: Figure, path: Path) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def _histogram_figure(ds: xr.Dataset, ok: np.ndarray) -> Figure:
    hist = _overall(ds, SSIM_HIST)[ok]
    pooled = hist.sum(axis=0)
    if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
        edges = np.append(ds[BIN_LOWER].values, ds[BIN_UPPER].values[-1]).astype(float)
    else:  # DESIGN.md: fixed equal bins over [-1, 1]
        edges = np.linspace(-1.0, 1.0, pooled.shape[0] + 1)
    figure = _new_figure(10, 3.6)
    left, right = figure.subplots(1, 2)
    total = pooled.sum()
    density = pooled / (total * np.diff(edges)) if total > 0 else pooled
    left.stairs(density, edges, fill=True, color="#4c72b0")
    left.set_xlim(_histogram_xlim(pooled, edges))
    left.set_xlabel("local SSIM (every valid pixel, all pairs)")
    left.set_ylabel("density")
    left.set_title(f"SSIM map values ({int(total):,} pixels)")
    scores = _overall(ds, SSIM)[ok]
    right.hist(scores, bins=min(30, max(5, scores.size)), color="#dd8452", edgecolor="white")
    if scores.size:
        right.axvline(float(scores.mean()), color="black", linestyle="--", label="mean")
        right.legend(loc="upper left")
    right.set_xlabel("SSIM per image (region 'all')")
    right.set_ylabel("pairs")
    right.set_title(f"Image scores ({scores.size} pairs)")
    return figure


def _histogram_xlim(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Zoom on the occupied part of [-1, 1] (most GAN outputs live above 0)."""
    occupied = np.flatnonzero(counts > 0)
    if occupied.size == 0:
        return -1.0, 1.0
    low = max(-1.0, float(edges[occupied[0]]) - 0.05)
    return low, 1.0


def _grid_shape(regions: Sequence[str]) -> tuple[int, int] | None:
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


def _region_figure(ds: xr.Dataset, ok: np.ndarray, worst: Sequence[_WorstPair]) -> Figure | None:
    others = [r for r in _strings(ds[REGION].values) if r != ALL_REGION]
    if not others:
        return None
    table = ds[SSIM].sel({REGION: others})
    values = np.asarray(table.values, dtype=np.float64)[ok]
    mean = np.nanmean(values, axis=0) if values.size else np.full(len(others), np.nan)
    shape = _grid_shape(others)
    if shape is None:
        return _region_bars(others, mean)
    panels = [("mean of all pairs", mean)]
    image_ids = _strings(ds[IMAGE].values)
    for pair in worst[:4]:
        row = np.asarray(table.values[image_ids.index(pair.image)], dtype=np.float64)
        panels.append((f"{pair.image}\n(SSIM {pair.score:.3f})", row))
    finite = np.concatenate([p[1][np.isfinite(p[1])] for p in panels])
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = max(1e-6 + vmin, float(finite.max())) if finite.size else 1.0
    figure = _new_figure(3.2 * len(panels) + 0.8, 3.4)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    image = None
    for axis, (title, row) in zip(axes, panels, strict=True):
        grid = _grid_values(row, others, shape)
        image = axis.imshow(grid, cmap="RdYlGn", vmin=vmin, vmax=vmax)
        axis.set_title(title, fontsize=9)
        axis.set_xticks(range(shape[1]), [f"c{j}" for j in range(shape[1])], fontsize=7)
        axis.set_yticks(range(shape[0]), [f"r{i}" for i in range(shape[0])], fontsize=7)
        if shape[0] * shape[1] <= 64:
            for (i, j), value in np.ndenumerate(grid):
                if np.isfinite(value):
                    # Light text on the dark ends of the colour map, dark text elsewhere.
                    shade = (value - vmin) / (vmax - vmin)
                    colour = "white" if shade < 0.2 or shade > 0.85 else "black"
                    axis.text(
                        j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour
                    )
    if image is not None:
        figure.colorbar(image, ax=list(axes), shrink=0.8, label="mean SSIM in region")
    figure.suptitle("SSIM per region (lower = where the generator fails)")
    return figure


def _region_bars(names: Sequence[str], mean: np.ndarray) -> Figure:
    figure = _new_figure(7, 0.35 * len(names) + 1.5)
    axis = figure.subplots()
    axis.barh(list(names), mean, color="#55a868")
    axis.invert_yaxis()
    axis.set_xlabel("mean SSIM over all pairs")
    axis.set_title("SSIM per region")
    return figure


def _load_image(path: str) -> np.ndarray | None:
    from pipeline.images import ImageDecodeError, decode_image

    try:
        return decode_image(path)
    except ImageDecodeError:
        return None


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image scaled to [0, 1] for imshow, and the colour map for grey."""
    values = image.astype(np.float64)
    if image.dtype.kind in "ui":
        values /= np.iinfo(image.dtype).max
    else:
        span = float(values.max() - values.min()) or 1.0
        values = (values - values.min()) / span
    return np.clip(values, 0.0, 1.0), ("gray" if image.ndim == 2 else None)


def _worst_figure(ds: xr.Dataset, worst: Sequence[_WorstPair]) -> tuple[Figure | None, list[str]]:
    """The worst pairs side by side, and a note per pair on where its map came from."""
    if not worst:
        return None, []
    figure = _new_figure(11, 3.3 * len(worst))
    axes = np.asarray(figure.subplots(len(worst), 3, squeeze=False))
    notes = []
    for row, pair in zip(axes, worst, strict=True):
        # pipeline.review_maps (behind ds.review.pair_data) owns where maps and images are
        # found (saved maps, files, Zarr stacks) and how a missing map is recomputed.
        reference, generated, found, source = ds.review.pair_data(pair.image)
        ssim_map = found.get(SSIM)
        notes.append(source if ssim_map is not None else "unavailable")
        for axis, title, image in (
            (row[0], f"reference\n{pair.image}", reference),
            (row[1], f"generated\n{Path(pair.generated).name}", generated),
        ):
            if image is None:
                axis.text(0.5, 0.5, "file not readable", ha="center", va="center")
            else:
                shown, cmap = _display(image)
                axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
            axis.set_title(title, fontsize=9)
            axis.set_axis_off()
        if ssim_map is None:
            row[2].text(0.5, 0.5, "SSIM map unavailable", ha="center", va="center")
        else:
            low = min(0.0, float(ssim_map.min()))
            mappable = row[2].imshow(ssim_map, cmap="magma", vmin=low, vmax=1.0)
            figure.colorbar(mappable, ax=row[2], shrink=0.85)
        row[2].set_title(f"SSIM map ({notes[-1]}), score {pair.score:.3f}", fontsize=9)
        row[2].set_axis_off()
    return figure, notes
