"""What the report reads: a results Dataset, opened from a path and checked.

:func:`_open_results` takes a Dataset as it is, or opens a saved Zarr store or
``.nc`` file; :func:`_check_schema` refuses a Dataset without the variables and
coordinates of the result schema (DESIGN.md) or without region ``all``. The
views the figures (:mod:`pipeline.report_figures`) and the page
(:mod:`pipeline.report_html`) read are here too: the mask of successful pairs,
one value per image in region ``all``, and the record of one of the worst pairs
that :func:`pipeline.report.write_report` picks. ``ds.review`` checks its
Datasets with the same :func:`_check_schema`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.dataset import (
    CONTRAST,
    GENERATED,
    IMAGE,
    LUMINANCE,
    REFERENCE,
    REGION,
    SSIM,
    SSIM_HIST,
    STATUS,
    STATUS_OK,
    STRUCTURE,
)
from pipeline.regions import ALL_REGION

if TYPE_CHECKING:
    import xarray as xr

_REQUIRED_VARIABLES = (SSIM, LUMINANCE, CONTRAST, STRUCTURE, SSIM_HIST, STATUS)
_REQUIRED_COORDS = (IMAGE, REGION, REFERENCE, GENERATED)
_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
# SSIM parameters as the result attrs record them (``ssim_`` + parameter name).
_SSIM_PARAMS = ("window", "win_size", "sigma", "k1", "k2", "covariance")


@dataclass(frozen=True)
class _WorstPair:
    image: str
    reference: str
    generated: str
    score: float


def _open_results(ds_or_path: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    import xarray as xr

    if isinstance(ds_or_path, xr.Dataset):
        return ds_or_path
    if not isinstance(ds_or_path, str | os.PathLike):
        raise TypeError(
            f"ds_or_path must be an xarray.Dataset or a path to results "
            f"(got {type(ds_or_path).__name__})"
        )
    path = Path(ds_or_path)
    if not path.exists():
        raise FileNotFoundError(f"results not found: {path}")
    if path.suffix in (".nc", ".nc4", ".netcdf"):
        return xr.open_dataset(path).load()
    if not path.is_dir():
        raise ValueError(f"results must be a Zarr store (a folder) or a .nc file (got {path})")
    # .load() keeps encoding["source"], by which saved maps beside the table are found.
    return xr.open_zarr(path, consolidated=False).load()


def _check_schema(ds: xr.Dataset) -> None:
    missing = [name for name in _REQUIRED_VARIABLES if name not in ds.variables]
    missing += [name for name in _REQUIRED_COORDS if name not in ds.coords]
    if missing:
        raise ValueError(
            f"results Dataset lacks {', '.join(missing)}; expected the schema of DESIGN.md "
            f"(variables {', '.join(_REQUIRED_VARIABLES)}; coords image, reference, generated, "
            f"region, bin)"
        )
    if ALL_REGION not in _strings(ds[REGION].values):
        raise ValueError(
            f"results Dataset has no region 'all' (got regions {_strings(ds[REGION].values)})"
        )


def _ok_mask(ds: xr.Dataset) -> np.ndarray:
    status = np.asarray(_strings(ds[STATUS].values), dtype=object)
    return (status == STATUS_OK) & np.isfinite(_overall(ds, SSIM))


def _strings(values: Any) -> list[str]:
    """Plain ``str`` items of an array of object, ``<U`` or NumPy ``StringDType`` strings."""
    return [str(v) for v in np.asarray(values).ravel()]


def _overall(ds: xr.Dataset, name: str) -> np.ndarray:
    """``name`` in region ``all``: one value per image (a histogram row for ``ssim_hist``)."""
    return np.asarray(ds[name].sel({REGION: ALL_REGION}).values, dtype=np.float64)
