"""``ds.review.mean_map()`` and ``ds.review.plot_mean_map()``: the size groups' mean maps.

The variables are those of the ``mean_maps`` setting (see
:mod:`pipeline.results.schema`); the figure is
:func:`pipeline.review.figures.mean_map_figure`, as in the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    MAP_HEIGHT,
    MAP_WIDTH,
    MAP_X,
    MAP_Y,
    MEAN_MAPS,
    MEAN_REFERENCE,
    MODEL,
    SIZE_GROUP,
)
from pipeline.results.text import text_values
from pipeline.review.figures import mean_map_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["mean_map", "plot_mean_map"]

_VARIABLES = {
    "ssim": MEAN_MAPS[0],
    "luminance": MEAN_MAPS[1],
    "contrast": MEAN_MAPS[2],
    "structure": MEAN_MAPS[3],
    "reference": MEAN_REFERENCE,
}


def _check(ds: xr.Dataset) -> None:
    if MEAN_MAPS[0] not in ds or SIZE_GROUP not in ds.coords:
        raise ValueError(
            "these results have no mean maps (variables mean_ssim_map ...): the run had "
            "mean_maps off, or predates them; evaluate again with mean_maps=True"
        )


def _one_model(ds: xr.Dataset, model: str | int | None) -> xr.Dataset:
    """``ds`` with the mean maps of ``model`` only (all models when None)."""
    several = MODEL in ds[MEAN_MAPS[0]].dims
    if model is None or not several:
        if model is not None:
            raise ValueError(f"these results hold one model; model must be None (got {model!r})")
        return ds
    names = text_values(ds[MODEL].values)
    if isinstance(model, str):
        if model not in names:
            raise ValueError(f"no model {model!r}; the results have {', '.join(names)}")
        position = names.index(model)
    elif isinstance(model, int | np.integer) and -len(names) <= model < len(names):
        position = int(model)
    else:
        raise ValueError(f"model must be a name or a position among {len(names)} models")
    return ds.isel({MODEL: position})


def mean_map(
    ds: xr.Dataset,
    size_group: str | int = 0,
    component: str = "ssim",
    model: str | int | None = None,
) -> xr.DataArray:
    """One size group's mean map, cropped to the group's own map shape.

    With several models: ``(model, map_y, map_x)``, or ``model``'s own map.
    """
    _check(ds)
    if component not in _VARIABLES:
        raise ValueError(f"component must be one of {', '.join(_VARIABLES)} (got {component!r})")
    ds = _one_model(ds, model)
    names = [str(name) for name in np.asarray(ds[SIZE_GROUP].values).ravel()]
    if isinstance(size_group, str):
        if size_group not in names:
            raise ValueError(f"no size group {size_group!r}; the results have {', '.join(names)}")
        position = names.index(size_group)
    elif isinstance(size_group, int | np.integer) and -len(names) <= size_group < len(names):
        position = int(size_group)
    else:
        raise ValueError(f"size_group must be a name or a position among {len(names)} groups")
    group = ds.isel({SIZE_GROUP: position})
    h, w = int(group[MAP_HEIGHT]), int(group[MAP_WIDTH])
    return group[_VARIABLES[component]].isel({MAP_Y: slice(0, h), MAP_X: slice(0, w)}).load()


def plot_mean_map(ds: xr.Dataset, model: str | int | None = None) -> Figure:
    """Per size group, the mean SSIM map over the mean reference image (rows per model)."""
    _check(ds)
    figure = mean_map_figure(_one_model(ds, model))
    if figure is None:
        raise ValueError("no size group has an ok pair: there is no mean map to draw")
    return figure
