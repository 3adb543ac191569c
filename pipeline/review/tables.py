"""Which pairs, ranked how: the per-pair lookups and tables behind ``ds.review``.

Pair ids, region names, the mask of successful pairs and the position of a pair
given by id or position; the ranking tables of :meth:`ReviewAccessor.worst` and
:meth:`ReviewAccessor.best`; the quantiles of the SSIM-map values.

Quantiles come from the merged ``ssim_hist`` histograms, interpolated linearly
inside the bin that holds the quantile; the whole map is never needed, but the
answer is exact only to the bin width (``2 / hist_bins``: 0.02 with the default
100 bins). pandas is imported only when a table is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    ALL_REGION,
    BIN,
    BIN_LOWER,
    BIN_UPPER,
    COMPONENTS,
    FLOAT_STATISTICS,
    GENERATED,
    IMAGE,
    MSE,
    OPTIONAL_VARIABLES,
    PSNR,
    REFERENCE,
    REGION,
    SSIM,
    SSIM_HIST,
    STATUS,
    STATUS_OK,
)
from pipeline.results.summary import histogram_edges, histogram_quantiles
from pipeline.results.text import text_values

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LOWER_IS_BETTER",
    "QUANTILE",
    "check_region",
    "image_ids",
    "image_position",
    "map_quantiles",
    "ok_mask",
    "preview_ids",
    "ranked_pairs",
    "region_names",
]

QUANTILE = "quantile"


def preview_ids(ids: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``ids`` for a message, and how many there are in all."""
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


# -- lookups -------------------------------------------------------------------


def image_ids(ds: xr.Dataset) -> list[str]:
    """The pair ids as strings, in Dataset order."""
    return text_values(ds[IMAGE].values)


def region_names(ds: xr.Dataset) -> list[str]:
    """The region names, ``all`` first."""
    return text_values(ds[REGION].values)


def ok_mask(ds: xr.Dataset) -> np.ndarray:
    """Boolean mask over ``image``: status ``ok`` and a finite score."""
    status = np.asarray(text_values(ds[STATUS].values), dtype=object)
    scores = np.asarray(ds[SSIM].sel({REGION: ALL_REGION}).values, dtype=np.float64)
    return (status == STATUS_OK) & np.isfinite(scores)


def image_position(ds: xr.Dataset, image: str | int) -> int:
    """Integer position of a pair given by id (``str``) or position (``int``).

    Raises ``KeyError`` for an unknown id (the message lists a few valid ids),
    ``IndexError`` for a position out of range and ``TypeError`` for anything else.
    """
    ids = image_ids(ds)
    if isinstance(image, bool) or not isinstance(image, str | int | np.integer):
        raise TypeError(
            f"image must be an id (str) or a position (int) (got {type(image).__name__})"
        )
    if isinstance(image, str):
        if image in ids:
            return ids.index(image)
        raise KeyError(f"image {image!r} is not in the results; valid ids: {preview_ids(ids)}")
    n = len(ids)
    if not -n <= int(image) < n:
        raise IndexError(
            f"image position {int(image)} is out of range for {n} pairs "
            f"(valid: {-n}..{n - 1} or an id among {preview_ids(ids)})"
        )
    return int(image) % n


def check_region(ds: xr.Dataset, region: str) -> str:
    """``region`` itself when the results have it; ``KeyError`` naming a few otherwise."""
    regions = region_names(ds)
    if region not in regions:
        raise KeyError(
            f"region {region!r} is not in the results; valid regions: {preview_ids(regions, 8)}"
        )
    return region


# -- tables --------------------------------------------------------------------


def _table(ds: xr.Dataset, order: np.ndarray, region: str) -> pd.DataFrame:
    import pandas as pd

    ids = image_ids(ds)
    columns: dict[str, Any] = {"position": order}
    for name in (SSIM, *COMPONENTS, MSE, PSNR):
        if name in OPTIONAL_VARIABLES and name not in ds.variables:
            continue  # results written before MSE and PSNR existed
        values = np.asarray(ds[name].sel({REGION: region}).values, dtype=np.float64)
        columns[name] = values[order]
    others = [r for r in region_names(ds) if r != ALL_REGION]
    if region == ALL_REGION and others:
        table = np.asarray(ds[SSIM].sel({REGION: others}).values, dtype=np.float64)[order]
        finite = np.isfinite(table).any(axis=1)
        lowest = np.argmin(np.where(np.isfinite(table), table, np.inf), axis=1)
        columns["worst_region"] = [
            others[j] if has else None for j, has in zip(lowest, finite, strict=True)
        ]
    columns[REFERENCE] = np.asarray(text_values(ds[REFERENCE].values), dtype=object)[order]
    columns[GENERATED] = np.asarray(text_values(ds[GENERATED].values), dtype=object)[order]
    frame = pd.DataFrame(columns, index=pd.Index([ids[k] for k in order], name=IMAGE))
    frame.attrs["region"] = region
    return frame


# Statistics where a lower value is a better pair.
LOWER_IS_BETTER = (MSE,)


def ranked_pairs(ds: xr.Dataset, k: int, region: str, by: str, *, descending: bool) -> pd.DataFrame:
    """The table of :meth:`ReviewAccessor.worst` (ascending) or ``best`` (descending).

    Ascending means worst first: for ``mse``, where lower is better, the order is
    reversed, so ``worst`` lists the largest MSE first. PSNR ``inf`` (identical
    pixels) ranks as the best value.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer (got {k!r})")
    if by not in FLOAT_STATISTICS:
        raise ValueError(f"by must be one of {', '.join(FLOAT_STATISTICS)} (got {by!r})")
    if by not in ds.variables:
        raise ValueError(
            f"by={by!r}: these results have no {by!r} variable (written by a version "
            "before MSE and PSNR were computed; evaluate again to rank by it)"
        )
    region = check_region(ds, region)
    scores = np.asarray(ds[by].sel({REGION: region}).values, dtype=np.float64)
    usable = np.flatnonzero(ok_mask(ds) & ~np.isnan(scores))
    if by in LOWER_IS_BETTER:
        descending = not descending
    key = -scores[usable] if descending else scores[usable]
    order = usable[np.argsort(key, kind="stable")][: int(k)]
    return _table(ds, order, region)


def map_quantiles(
    ds: xr.Dataset, q: float | Sequence[float], *, region: str, by_image: bool
) -> xr.DataArray:
    """The quantiles of :meth:`ReviewAccessor.quantile`, from the merged histograms."""
    levels = np.asarray(q, dtype=np.float64)
    if levels.ndim > 1 or not np.all((levels >= 0) & (levels <= 1)):
        raise ValueError(f"q must be a level or a list of levels in [0, 1] (got {q!r})")
    region = check_region(ds, region)
    selected = ds.sel({REGION: region})
    if not by_image:
        selected = selected.isel({IMAGE: np.flatnonzero(ok_mask(ds))})
    edges = histogram_edges(ds)
    hist = selected[SSIM_HIST].sum(IMAGE) if not by_image else selected[SSIM_HIST]

    def quantiles(counts: np.ndarray) -> np.ndarray:
        return np.asarray(histogram_quantiles(counts, edges, levels.reshape(-1).tolist()))

    result = xr.apply_ufunc(
        quantiles,
        hist,
        input_core_dims=[[BIN]],
        output_core_dims=[[QUANTILE]],
        vectorize=True,
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {QUANTILE: levels.size}},
    )
    result = result.assign_coords({QUANTILE: levels.reshape(-1)})
    result = result.drop_vars([BIN_LOWER, BIN_UPPER], errors="ignore")
    result.attrs = {"resolution": float(np.max(np.diff(edges)))}
    result.name = f"{SSIM}_quantile"
    return result.isel({QUANTILE: 0}) if levels.ndim == 0 else result
