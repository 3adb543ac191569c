"""The figures of ``ds.review``: histograms, regions, one pair with its maps.

They reuse the report's drawing code (:mod:`pipeline.report.figures`) and return
``matplotlib.figure.Figure`` objects built on the Agg canvas; matplotlib is
imported only when a plot is asked for (this module imports nothing of it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.reductions.regions import ALL_REGION
from pipeline.results.schema import (
    CONTRAST,
    GENERATED,
    IMAGE,
    LUMINANCE,
    REFERENCE,
    REGION,
    SSIM,
    STRUCTURE,
)
from pipeline.review.maps import MapsSource
from pipeline.review.tables import _strings, image_ids, image_position, region_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_hist", "plot_regions", "show_pair"]

_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)


def plot_hist(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_hist``: merged histograms beside the image scores."""
    from pipeline.report.figures import _histogram_figure
    from pipeline.report.inputs import _scan

    if image is None:
        return _histogram_figure(_scan(ds, 1))
    k = image_position(ds, image)
    return _histogram_figure(_scan(ds.isel({IMAGE: [k]}), 1))


def plot_regions(ds: xr.Dataset, image: str | int | None = None) -> Figure:
    """The figure of ``ds.review.plot_regions``: mean SSIM per region, heatmap or bars."""
    from pipeline.report.figures import _DATA_TEXT, _grid_shape, _region_bars, _region_figure
    from pipeline.report.inputs import _pair_rows, _printable, _scan

    others = [r for r in region_names(ds) if r != ALL_REGION]
    if not others:
        raise ValueError(
            "the results have no region besides 'all'; evaluate with regions='4x4' "
            "(a grid), '256px' (tiles) or 'labels' (a label mask)"
        )
    if image is not None and _grid_shape(others) is None:
        k = image_position(ds, image)
        values = np.asarray(ds[SSIM].sel({REGION: others}).values[k], dtype=np.float64)
        bars = _region_bars(others, values)
        bars.axes[0].set_title(f"SSIM per region: {_printable(image_ids(ds)[k])}", **_DATA_TEXT)
        bars.axes[0].set_xlabel("mean SSIM in region")
        return bars
    data = _scan(ds, 4)
    shown = data.worst if image is None else _pair_rows(ds, np.array([image_position(ds, image)]))
    figure = _region_figure(data.regions, data.region_mean, shown)
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
    from pipeline.report.figures import (
        _DATA_TEXT,
        _display,
        _draw_ssim_map,
        _new_figure,
        _note,
        _ssim_colorbar,
    )
    from pipeline.report.inputs import _printable
    from pipeline.review.maps import _pair_view

    k = image_position(ds, image)
    ids = image_ids(ds)
    view = _pair_view(ds, k, maps, reference, generated)
    found, source = view.maps, view.source
    problems = "; ".join(_printable(p) for p in view.problems)
    score = float(ds[SSIM].sel({REGION: ALL_REGION}).values[k])
    components = all(name in found for name in _COMPONENTS)
    rows = 2 if components else 1
    figure = _new_figure(11, 3.4 * rows)
    axes = np.asarray(figure.subplots(rows, 3, squeeze=False))
    names = _strings(ds[REFERENCE].values[k]) + _strings(ds[GENERATED].values[k])
    for axis, side, picture, name in zip(
        axes[0, :2],
        ("reference", "generated"),
        (view.reference, view.generated),
        names,
        strict=True,
    ):
        if picture is None:
            _note(
                axis, f"{side} not available (pass {side}=)" + (f": {problems}" if problems else "")
            )
        else:
            shown, cmap = _display(picture)
            axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
        axis.set_title(f"{side}\n{_printable(Path(name).name, 44)}", fontsize=9, **_DATA_TEXT)
        axis.set_axis_off()
    panels = [(axes[0, 2], SSIM, f"SSIM map ({source}), score {score:.3f}")]
    if components:
        panels += [(axes[1, j], name, f"{name} ({source})") for j, name in enumerate(_COMPONENTS)]
    for axis, name, title in panels:
        axis.set_axis_off()
        axis.set_title(title, fontsize=9)
        if name not in found:
            _note(axis, "SSIM map not available" + (f": {problems}" if problems else ""))
            continue
        values = found[name]
        if name == SSIM:
            # The report's one scale for every SSIM map, its legend beside it.
            _draw_ssim_map(axis, values)
            _ssim_colorbar(figure, axis)
            continue
        # l, c, s stretched: l is usually within a few percent of 1 and would show
        # as one flat colour on the SSIM scale.
        low = min(float(np.nanmin(values)), 1.0 - 1e-3)
        mappable = axis.imshow(values, cmap="magma", vmin=low, vmax=1.0)
        figure.colorbar(mappable, ax=axis, shrink=0.85)
    figure.suptitle(f"pair {_printable(ids[k], 80)}", **_DATA_TEXT)
    return figure
