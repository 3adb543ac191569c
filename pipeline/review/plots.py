"""The figures of ``ds.review``: histograms, regions, one pair with its maps.

They are drawn with :mod:`pipeline.review.figures` (as the report's are) and are
``matplotlib.figure.Figure`` objects built on the Agg canvas; matplotlib is
imported only when a plot is asked for (neither module imports it at import time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    ALL_REGION,
    COMPONENTS,
    GENERATED,
    IMAGE,
    REFERENCE,
    REGION,
    SSIM,
)
from pipeline.results.summary import REPORT_VARIABLES, pair_rows, scan_results
from pipeline.results.text import printable_text, text_values
from pipeline.review.figures import (
    DATA_TEXT,
    NAME_LIMIT,
    display_scaled,
    draw_note,
    draw_ssim_map,
    grid_shape,
    histogram_figure,
    new_figure,
    region_bars,
    region_figure,
    ssim_colorbar,
)
from pipeline.review.maps import MapsSource, pair_view
from pipeline.review.tables import image_ids, image_position, region_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_hist", "plot_regions", "show_pair"]


def plot_hist(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_hist``: merged histograms beside image SSIM (and PSNR)."""
    if image is None:
        return histogram_figure(scan_results(ds, 1, kept=REPORT_VARIABLES))
    k = image_position(ds, image)
    return histogram_figure(scan_results(ds.isel({IMAGE: [k]}), 1, kept=REPORT_VARIABLES))


def plot_regions(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_regions``: mean SSIM per region, heatmap or bars."""
    others = [r for r in region_names(ds) if r != ALL_REGION]
    if not others:
        raise ValueError(
            "the results have no region besides 'all'; evaluate with regions='4x4' "
            "(a grid), '256px' (tiles) or 'labels' (a label mask)"
        )
    if image is not None and grid_shape(others) is None:
        k = image_position(ds, image)
        values = np.asarray(ds[SSIM].sel({REGION: others}).values[k], dtype=np.float64)
        bars = region_bars(others, values)
        bars.axes[0].set_title(f"SSIM per region: {printable_text(image_ids(ds)[k])}", **DATA_TEXT)
        bars.axes[0].set_xlabel("mean SSIM in region")
        return bars
    data = scan_results(ds, 4)
    shown = data.worst if image is None else pair_rows(ds, np.array([image_position(ds, image)]))
    figure = region_figure(data.regions, data.region_mean, shown)
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
    k = image_position(ds, image)
    ids = image_ids(ds)
    view = pair_view(ds, k, maps, reference, generated)
    found, source = view.maps, view.source
    problems = "; ".join(printable_text(p) for p in view.problems)
    score = float(ds[SSIM].sel({REGION: ALL_REGION}).values[k])
    components = all(name in found for name in COMPONENTS)
    rows = 2 if components else 1
    figure = new_figure(11, 3.4 * rows)
    axes = np.asarray(figure.subplots(rows, 3, squeeze=False))
    names = text_values(ds[REFERENCE].values[k]) + text_values(ds[GENERATED].values[k])
    for axis, side, picture, name in zip(
        axes[0, :2],
        ("reference", "generated"),
        (view.reference, view.generated),
        names,
        strict=True,
    ):
        if picture is None:
            draw_note(
                axis, f"{side} not available (pass {side}=)" + (f": {problems}" if problems else "")
            )
        else:
            shown, cmap = display_scaled(picture)
            axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
        axis.set_title(
            f"{side}\n{printable_text(Path(name).name, NAME_LIMIT)}", fontsize=9, **DATA_TEXT
        )
        axis.set_axis_off()
    panels = [(axes[0, 2], SSIM, f"SSIM map ({source}), score {score:.3f}")]
    if components:
        panels += [(axes[1, j], name, f"{name} ({source})") for j, name in enumerate(COMPONENTS)]
    for axis, name, title in panels:
        axis.set_axis_off()
        axis.set_title(title, fontsize=9)
        if name not in found:
            draw_note(axis, "SSIM map not available" + (f": {problems}" if problems else ""))
            continue
        values = found[name]
        if name == SSIM:
            # The report's one scale for every SSIM map, its legend beside it.
            draw_ssim_map(axis, values)
            ssim_colorbar(figure, axis)
            continue
        # l, c, s stretched: l is usually within a few percent of 1 and would show
        # as one flat colour on the SSIM scale.
        low = min(float(np.nanmin(values)), 1.0 - 1e-3)
        mappable = axis.imshow(values, cmap="magma", vmin=low, vmax=1.0)
        figure.colorbar(mappable, ax=axis, shrink=0.85)
    figure.suptitle(f"pair {printable_text(ids[k], 80)}", **DATA_TEXT)
    return figure
