"""The figures of ``ds.review``: histograms, regions, one pair with its maps.

They reuse the report's drawing code (:mod:`pipeline.report_figures`) and return
``matplotlib.figure.Figure`` objects built on the Agg canvas; matplotlib is
imported only when a plot is asked for (this module imports nothing of it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.dataset import (
    CONTRAST,
    GENERATED,
    IMAGE,
    LUMINANCE,
    REFERENCE,
    REGION,
    SSIM,
    STRUCTURE,
)
from pipeline.regions import ALL_REGION
from pipeline.review_maps import MapsSource, pair_data
from pipeline.review_tables import (
    _strings,
    image_ids,
    image_position,
    ok_mask,
    ranked_pairs,
    region_names,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_hist", "plot_regions", "show_pair"]

_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)


def plot_hist(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_hist``: merged histograms beside the image scores."""
    from pipeline.report_figures import _histogram_figure

    ok = ok_mask(ds)
    if image is None:
        return _histogram_figure(ds, ok)
    k = image_position(ds, image)
    return _histogram_figure(ds.isel({IMAGE: [k]}), ok[[k]])


def plot_regions(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_regions``: mean SSIM per region, heatmap or bars."""
    from pipeline.report_figures import _grid_shape, _region_bars, _region_figure
    from pipeline.report_inputs import _WorstPair

    others = [r for r in region_names(ds) if r != ALL_REGION]
    if not others:
        raise ValueError(
            "the results have no region besides 'all'; evaluate with regions='4x4' "
            "(a grid), '256px' (tiles) or 'labels' (a label mask)"
        )
    ok = ok_mask(ds)
    if image is None:
        pairs = ranked_pairs(ds, 4, ALL_REGION, SSIM, descending=False) if ok.any() else None
        positions = [] if pairs is None else [int(p) for p in pairs["position"]]
    else:
        positions = [image_position(ds, image)]
    ids = image_ids(ds)
    if image is not None and _grid_shape(others) is None:
        k = positions[0]
        values = np.asarray(ds[SSIM].sel({REGION: others}).values[k], dtype=np.float64)
        bars = _region_bars(others, values)
        bars.axes[0].set_title(f"SSIM per region: {ids[k]}")
        bars.axes[0].set_xlabel("mean SSIM in region")
        return bars
    scores = np.asarray(ds[SSIM].sel({REGION: ALL_REGION}).values, dtype=np.float64)
    references = _strings(ds[REFERENCE].values)
    generated = _strings(ds[GENERATED].values)
    pairs_shown = [
        _WorstPair(ids[k], references[k], generated[k], float(scores[k])) for k in positions
    ]
    figure = _region_figure(ds, ok, pairs_shown)
    assert figure is not None  # regions besides 'all' exist (checked above)
    return figure


def show_pair(
    ds: xr.Dataset,
    image: str | int,
    *,
    maps: MapsSource = None,
    reference: Any = None,
    generated: Any = None,
) -> Figure:
    """The figure of ``ds.review.show_pair``: both images, the SSIM map, l, c, s maps."""
    from pipeline.report_figures import _display, _new_figure

    k = image_position(ds, image)
    ids = image_ids(ds)
    *images, found, source = pair_data(ds, k, maps=maps, reference=reference, generated=generated)
    score = float(ds[SSIM].sel({REGION: ALL_REGION}).values[k])
    components = all(name in found for name in _COMPONENTS)
    rows = 2 if components else 1
    figure = _new_figure(11, 3.4 * rows)
    axes = np.asarray(figure.subplots(rows, 3, squeeze=False))
    names = _strings(ds[REFERENCE].values[k]) + _strings(ds[GENERATED].values[k])
    for axis, side, picture, name in zip(
        axes[0, :2], ("reference", "generated"), images, names, strict=True
    ):
        if picture is None:
            axis.text(0.5, 0.5, f"{side} not available\n(pass {side}=)", ha="center", va="center")
        else:
            shown, cmap = _display(picture)
            axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
        axis.set_title(f"{side}\n{Path(name).name}", fontsize=9)
        axis.set_axis_off()
    panels = [(axes[0, 2], SSIM, f"SSIM map ({source}), score {score:.3f}")]
    if components:
        panels += [(axes[1, j], name, f"{name} ({source})") for j, name in enumerate(_COMPONENTS)]
    for axis, name, title in panels:
        axis.set_axis_off()
        axis.set_title(title, fontsize=9)
        if name not in found:
            axis.text(0.5, 0.5, "SSIM map not available", ha="center", va="center")
            continue
        values = found[name]
        # SSIM on the scale that makes maps comparable; l, c, s stretched, as l is
        # usually within a few percent of 1 and would show as one flat colour.
        low = min(0.0, float(np.nanmin(values))) if name == SSIM else float(np.nanmin(values))
        low = min(low, 1.0 - 1e-3)
        mappable = axis.imshow(values, cmap="magma", vmin=low, vmax=1.0)
        figure.colorbar(mappable, ax=axis, shrink=0.85)
    figure.suptitle(f"pair {ids[k]!r}")
    return figure
