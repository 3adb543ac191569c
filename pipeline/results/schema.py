"""The result Dataset: names defined once, construction and a schema check.

One row per image pair, regions as a second dimension::

    coords  image, reference(image), generated(image), region, bin, bin_lower(bin), bin_upper(bin)
    vars    ssim, luminance, contrast, structure, ssim_std, ssim_min, ssim_max, mse, psnr,
            count (image, region); ssim_hist (image, region, bin); status (image); ms_ssim
            (image) when enabled
    attrs   provenance: profile and every SSIM parameter, data_range and its source, colour
            mode, package version, config fingerprint, creation time

``ssim_std`` is the population standard deviation of the map (NumPy's ``std``);
regions without a valid pixel have ``count`` 0 and NaN statistics; a failed pair
has NaN everywhere and its reason in ``status``.

``mse`` and ``psnr`` are not statistics of the SSIM map: they are taken over
*every* pixel of the image or region (every channel, the border band included,
no window), as scikit-image's ``mean_squared_error`` and
``peak_signal_noise_ratio(data_range=...)`` with the run's ``data_range``.
Identical images have ``mse`` 0 and ``psnr`` ``inf``. Results written before
these two variables existed lack them; readers treat them as optional
(:data:`OPTIONAL_VARIABLES`).

**Mean maps** (optional, :data:`MEAN_MAP_VARIABLES`; setting ``mean_maps``): per size
group, the pixel-wise mean over the group's ``ok`` pairs of the valid SSIM map and
of its luminance, contrast and structure maps, and the mean reference image at the
same pixels::

    coords  size_group (str "HxWxC"), map_y, map_x, map_offset(size_group),
            map_height(size_group), map_width(size_group)
    vars    mean_ssim_map, mean_luminance_map, mean_contrast_map, mean_structure_map,
            mean_reference (size_group, map_y, map_x); mean_map_count (size_group);
            with several models each leads with ``model`` (one map per model)

Map pixel ``(i, j)`` is the window centred on image pixel ``(i + map_offset, j +
map_offset)`` (the window's half-width); a group's map is ``map_height x map_width``
and NaN beyond it when groups differ in shape. A group with no ``ok`` pair has
count 0 and NaN maps. Results without these variables open as before.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from pipeline.kernels.statistics import bin_edges

__all__ = [
    "ALL_REGION",
    "AMBIGUOUS",
    "BIN",
    "BIN_LOWER",
    "BIN_UPPER",
    "COMPONENTS",
    "CONTRAST",
    "COUNT",
    "ERROR_STATISTICS",
    "FLOAT_STATISTICS",
    "GENERATED",
    "IMAGE",
    "LUMINANCE",
    "MAP_HEIGHT",
    "MAP_OFFSET",
    "MAP_WIDTH",
    "MAP_X",
    "MAP_Y",
    "MEAN_MAPS",
    "MEAN_MAP_COUNT",
    "MEAN_MAP_VARIABLES",
    "MEAN_REFERENCE",
    "MODEL",
    "MODELS",
    "MODEL_ATTRS",
    "MSE",
    "MS_SSIM",
    "NAN_MASKED",
    "OPTIONAL_VARIABLES",
    "PENDING",
    "PENDING_STATUSES",
    "PSNR",
    "REFERENCE",
    "REGION",
    "REQUIRED_ATTRS",
    "SCORE_ATTRS",
    "SIZE_GROUP",
    "SIZE_GROUPS",
    "SKIPPED_FILES",
    "SSIM",
    "SSIM_HIST",
    "SSIM_MAX",
    "SSIM_MIN",
    "SSIM_PARAMETERS",
    "SSIM_STD",
    "STATUS",
    "STATUS_OK",
    "STRUCTURE",
    "UNPAIRED_GENERATED",
    "UNPAIRED_REFERENCE",
    "build_dataset",
    "check_results",
    "mean_map_dataset",
    "package_version",
    "template_dataset",
    "validate_dataset",
]

IMAGE, REGION, BIN = "image", "region", "bin"
# Several models in one run: a leading ``model`` dimension on every per-pair variable
# (and on ``generated``); ``models`` (attr) the JSON list of names, ``model_attrs``
# (attr) each model's own pairing report (unpaired files, size groups...) as JSON.
MODEL, MODELS, MODEL_ATTRS = "model", "models", "model_attrs"
REFERENCE, GENERATED = "reference", "generated"
BIN_LOWER, BIN_UPPER = "bin_lower", "bin_upper"
SSIM, LUMINANCE, CONTRAST, STRUCTURE = "ssim", "luminance", "contrast", "structure"
SSIM_STD, SSIM_MIN, SSIM_MAX, COUNT = "ssim_std", "ssim_min", "ssim_max", "count"
SSIM_HIST, STATUS, MS_SSIM = "ssim_hist", "status", "ms_ssim"
# Pixel-error scores over every pixel of the image or region (not the SSIM map).
MSE, PSNR = "mse", "psnr"
# Windows left out of a pair's statistics because they touch a NaN/Inf pixel
# (``nan_policy="mask"`` only; the variable exists only then).
NAN_MASKED = "nan_masked"
_NAN_MASKED_DESCRIPTION = "valid windows left out because they touch a NaN or Inf pixel"
STATUS_OK = "ok"
# The first region of every result: the whole image, whose SSIM is the standard score.
ALL_REGION = "all"
# Result attrs of folder sources: images that were not evaluated, never dropped silently
# (lists of relative paths), the stems paired ambiguously, and the size groups.
UNPAIRED_REFERENCE, UNPAIRED_GENERATED = "unpaired_reference", "unpaired_generated"
AMBIGUOUS, SKIPPED_FILES, SIZE_GROUPS = "ambiguous", "skipped_files", "size_groups"
# Status of a pair not computed yet: what an interrupted store holds until resumed.
PENDING = "pending"
# Stores written by earlier versions marked pending pairs with an empty status.
PENDING_STATUSES = (PENDING, "")

# MSE and PSNR, per image and region like the SSIM statistics.
ERROR_STATISTICS = (MSE, PSNR)
FLOAT_STATISTICS = (
    SSIM,
    LUMINANCE,
    CONTRAST,
    STRUCTURE,
    SSIM_STD,
    SSIM_MIN,
    SSIM_MAX,
    *ERROR_STATISTICS,
)
# Variables a result may lack because an earlier version wrote it: readers check.
OPTIONAL_VARIABLES = ERROR_STATISTICS
# Mean maps per size group (optional): the stacked components' variables, in the order of
# pipeline.reductions.mean_maps.COMPONENTS, then the count of pairs averaged.
SIZE_GROUP, MAP_Y, MAP_X = "size_group", "map_y", "map_x"
MAP_OFFSET, MAP_HEIGHT, MAP_WIDTH = "map_offset", "map_height", "map_width"
MEAN_MAPS = ("mean_ssim_map", "mean_luminance_map", "mean_contrast_map", "mean_structure_map")
MEAN_REFERENCE, MEAN_MAP_COUNT = "mean_reference", "mean_map_count"
MEAN_MAP_VARIABLES = (*MEAN_MAPS, MEAN_REFERENCE, MEAN_MAP_COUNT)
# The three comparisons SSIM is the product of.
COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
# The SSIM parameters a result records, each as the attr ``ssim_<name>``.
SSIM_PARAMETERS = ("window", "win_size", "sigma", "k1", "k2", "covariance")
# The attrs that define what a score means: two results are comparable only when
# every one of them agrees.
SCORE_ATTRS = (
    "profile",
    "ssim_window",
    "ssim_win_size",
    "ssim_sigma",
    "ssim_k1",
    "ssim_k2",
    "ssim_covariance",
    "data_range",
    "color_mode",
)
REQUIRED_ATTRS = (
    *SCORE_ATTRS,
    "data_range_source",
    "package_version",
    "config_fingerprint",
    "created",
)

_DESCRIPTIONS = {
    SSIM: "mean SSIM over the valid map in the region",
    LUMINANCE: "mean luminance comparison l",
    CONTRAST: "mean contrast comparison c",
    STRUCTURE: "mean structure comparison s",
    SSIM_STD: "population standard deviation of the SSIM map in the region",
    SSIM_MIN: "minimum of the SSIM map in the region",
    SSIM_MAX: "maximum of the SSIM map in the region",
    COUNT: "number of valid-map pixels in the region",
    SSIM_HIST: "histogram of the SSIM map on equal bins over [-1, 1]",
    STATUS: "'ok', or the reason the pair failed",
    MSE: (
        "mean squared difference of the pixel values (every channel) over all pixels of the "
        "image or region, not only the SSIM valid map"
    ),
    PSNR: (
        "peak signal-to-noise ratio 10 log10(data_range**2 / mse) over all pixels of the "
        "image or region; inf for identical pixels"
    ),
    MEAN_MAPS[0]: "mean over the size group's ok pairs of the valid SSIM map (channel mean)",
    MEAN_MAPS[1]: "mean over the size group's ok pairs of the luminance map l",
    MEAN_MAPS[2]: "mean over the size group's ok pairs of the contrast map c",
    MEAN_MAPS[3]: "mean over the size group's ok pairs of the structure map s",
    MEAN_REFERENCE: "mean reference image (channel mean) at the map's window centres",
    MEAN_MAP_COUNT: "number of ok pairs averaged into the size group's mean maps",
}
# Units of the variables that have them (CF's ``units`` attribute).
_UNITS = {
    MSE: "(data_range units)**2",
    PSNR: "dB",
    COUNT: "1",
}


def _describe(ds: xr.Dataset) -> None:
    """Set the ``description`` (and ``units``) attrs of the variables ``ds`` holds."""
    for name, text in _DESCRIPTIONS.items():
        if name in ds:
            ds[name].attrs["description"] = text
    for name, unit in _UNITS.items():
        if name in ds:
            ds[name].attrs["units"] = unit
    if NAN_MASKED in ds:
        ds[NAN_MASKED].attrs["description"] = _NAN_MASKED_DESCRIPTION


@functools.cache
def package_version() -> str:
    """The installed ssim-pipeline version recorded in the attrs (``0+unknown`` uninstalled).

    Looked up once a process (each lookup scans the installed distributions: ~1 ms).
    """
    try:
        return version("ssim-pipeline")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _coords(
    image: np.ndarray,
    reference: Sequence[str],
    generated: Sequence[str],
    regions: Sequence[str],
    bins: int,
) -> dict[str, Any]:
    edges = bin_edges(bins)
    return {
        IMAGE: (IMAGE, np.asarray(image)),
        REFERENCE: (IMAGE, np.asarray(reference, dtype=object)),
        GENERATED: (IMAGE, np.asarray(generated, dtype=object)),
        REGION: (REGION, np.asarray(regions, dtype=object)),
        BIN: (BIN, (edges[:-1] + edges[1:]) / 2),
        BIN_LOWER: (BIN, edges[:-1]),
        BIN_UPPER: (BIN, edges[1:]),
    }


def build_dataset(
    statistics: Mapping[str, np.ndarray],
    *,
    image: np.ndarray,
    reference: Sequence[str],
    generated: Sequence[str],
    regions: Sequence[str],
    status: Sequence[str],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """The result Dataset from finalized statistics (``reductions.finalize_statistics``).

    ``statistics`` maps each variable name to an array shaped ``(image, region)``
    (``(image, region, bin)`` for ``ssim_hist``; ``ms_ssim`` ``(image,)`` if present).
    """
    bins = int(statistics[SSIM_HIST].shape[-1])
    data_vars: dict[str, Any] = {}
    for name in (*FLOAT_STATISTICS, COUNT):
        if name in OPTIONAL_VARIABLES and name not in statistics:
            continue  # statistics of an earlier version's results
        data_vars[name] = ((IMAGE, REGION), np.asarray(statistics[name]))
    data_vars[SSIM_HIST] = ((IMAGE, REGION, BIN), np.asarray(statistics[SSIM_HIST]))
    if MS_SSIM in statistics:
        data_vars[MS_SSIM] = ((IMAGE,), np.asarray(statistics[MS_SSIM]))
    if NAN_MASKED in statistics:
        data_vars[NAN_MASKED] = ((IMAGE,), np.asarray(statistics[NAN_MASKED]))
    data_vars[STATUS] = ((IMAGE,), np.asarray(status, dtype=object))
    ds = xr.Dataset(
        data_vars, coords=_coords(image, reference, generated, regions, bins), attrs=dict(attrs)
    )
    _describe(ds)
    return ds


def template_dataset(
    *,
    image: np.ndarray,
    reference: Sequence[str],
    generated: Sequence[str],
    regions: Sequence[str],
    bins: int,
    batch_images: int,
    attrs: Mapping[str, Any],
    ms_ssim: bool = False,
    nan_masked: bool = False,
) -> xr.Dataset:
    """A lazy, all-pending Dataset with the final layout: what a store starts as.

    Statistics are Dask arrays (writing it with ``compute=False`` stores only
    metadata) chunked by commit batch; ``status`` is all :data:`PENDING`.
    ``ms_ssim`` adds the ``ms_ssim`` variable (NaN until computed).
    """
    n, n_regions = len(image), len(regions)
    chunks = (batch_images, n_regions)
    statistics: dict[str, Any] = {
        name: da.full((n, n_regions), np.nan, chunks=chunks) for name in FLOAT_STATISTICS
    }
    statistics[COUNT] = da.zeros((n, n_regions), dtype=np.int64, chunks=chunks)
    statistics[SSIM_HIST] = da.zeros((n, n_regions, bins), dtype=np.int64, chunks=(*chunks, bins))
    data_vars: dict[str, Any] = {
        name: ((IMAGE, REGION, BIN) if name == SSIM_HIST else (IMAGE, REGION), value)
        for name, value in statistics.items()
    }
    if ms_ssim:
        data_vars[MS_SSIM] = ((IMAGE,), da.full((n,), np.nan, chunks=(batch_images,)))
    if nan_masked:
        data_vars[NAN_MASKED] = ((IMAGE,), da.zeros((n,), dtype=np.int64, chunks=(batch_images,)))
    data_vars[STATUS] = ((IMAGE,), np.full(n, PENDING, dtype=object))
    ds = xr.Dataset(
        data_vars, coords=_coords(image, reference, generated, regions, bins), attrs=dict(attrs)
    )
    _describe(ds)
    return ds


def validate_dataset(ds: xr.Dataset) -> None:
    """Check ``ds`` against the schema; one ValueError listing every problem found."""
    problems: list[str] = []
    for name in (IMAGE, REFERENCE, GENERATED, REGION, BIN):
        if name not in ds.coords:
            problems.append(f"missing coordinate {name!r}")
    expected: dict[str, tuple[str, ...]] = {
        name: (IMAGE, REGION) for name in (*FLOAT_STATISTICS, COUNT)
    }
    expected[SSIM_HIST] = (IMAGE, REGION, BIN)
    expected[STATUS] = (IMAGE,)
    if MS_SSIM in ds:
        expected[MS_SSIM] = (IMAGE,)
    if NAN_MASKED in ds:
        expected[NAN_MASKED] = (IMAGE,)
    if MODEL in ds.dims:
        # Several models: every per-pair variable (and ``generated``) leads with ``model``.
        expected = {name: (MODEL, *dims) for name, dims in expected.items()}
        if MODEL not in ds.coords:
            problems.append(f"missing coordinate {MODEL!r}")
        if GENERATED in ds.coords and ds[GENERATED].dims != (MODEL, IMAGE):
            problems.append(
                f"coordinate {GENERATED!r} has dims {ds[GENERATED].dims}, expected {(MODEL, IMAGE)}"
            )
    if any(name in ds for name in MEAN_MAP_VARIABLES):
        # Optional as a whole: all of them, on the size_group coordinate (and one per
        # model with several models).
        lead = (MODEL,) if MODEL in ds.dims else ()
        for name in (*MEAN_MAPS, MEAN_REFERENCE):
            expected[name] = (*lead, SIZE_GROUP, MAP_Y, MAP_X)
        expected[MEAN_MAP_COUNT] = (*lead, SIZE_GROUP)
        for name in (SIZE_GROUP, MAP_OFFSET, MAP_HEIGHT, MAP_WIDTH):
            if name not in ds.coords:
                problems.append(f"missing coordinate {name!r} of the mean maps")
        if MEAN_MAP_COUNT in ds and ds[MEAN_MAP_COUNT].dtype.kind not in "iu":
            problems.append(f"variable {MEAN_MAP_COUNT!r} must be integer")
    for name, dims in expected.items():
        if name in OPTIONAL_VARIABLES and name not in ds.data_vars:
            continue  # written by an earlier version
        if name not in ds.data_vars:
            problems.append(f"missing variable {name!r}")
        elif ds[name].dims != dims:
            problems.append(f"variable {name!r} has dims {ds[name].dims}, expected {dims}")
    for name in (COUNT, SSIM_HIST):
        if name in ds and ds[name].dtype.kind not in "iu":
            problems.append(f"variable {name!r} must be integer (got {ds[name].dtype})")
    extra = sorted(str(name) for name in set(ds.data_vars) - set(expected))
    if extra:
        problems.append(f"unexpected variable(s) {', '.join(extra)}")
    missing_attrs = [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing_attrs:
        problems.append(f"missing attribute(s) {', '.join(missing_attrs)}")
    if REGION in ds.coords and (ds.sizes[REGION] == 0 or str(ds[REGION].values[0]) != ALL_REGION):
        problems.append(f"the first region must be {ALL_REGION!r}")
    if problems:
        raise ValueError("result dataset does not match the schema: " + "; ".join(problems))


# What reading results needs (:func:`check_results`): fewer than a whole result holds.
_READ_VARIABLES = (SSIM, LUMINANCE, CONTRAST, STRUCTURE, SSIM_HIST, STATUS)
_READ_COORDS = (IMAGE, REGION, REFERENCE, GENERATED)


def check_results(ds: xr.Dataset) -> None:
    """Refuse a Dataset the report and ``ds.review`` cannot read as results.

    Lighter than :func:`validate_dataset`: only the variables and coordinates they
    read (``ssim``, ``luminance``, ``contrast``, ``structure``, ``ssim_hist``,
    ``status``; ``image``, ``region``, ``reference``, ``generated``) and region
    ``all`` are required; nothing is loaded but the region names.

    Raises
    ------
    ValueError
        Naming what is missing.
    """
    missing = [name for name in _READ_VARIABLES if name not in ds.variables]
    missing += [name for name in _READ_COORDS if name not in ds.coords]
    if missing:
        raise ValueError(
            f"results Dataset lacks {', '.join(missing)}; expected the result schema "
            f"(variables {', '.join(_READ_VARIABLES)}; coords image, reference, generated, "
            f"region, bin)"
        )
    regions = [str(v) for v in np.asarray(ds[REGION].values).ravel()]
    if ALL_REGION not in regions:
        raise ValueError(f"results Dataset has no region {ALL_REGION!r} (got regions {regions})")


def mean_map_dataset(
    names: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    offset: int,
    means: Sequence[np.ndarray] | None = None,
    counts: Sequence[int] | None = None,
) -> xr.Dataset:
    """The mean-map variables of size groups ``names``, NaN-padded to the largest map.

    Parameters
    ----------
    names : sequence of str
        One name per size group (the ``size_group`` coordinate).
    shapes : sequence of (int, int)
        Each group's valid-map shape.
    offset : int
        Image pixel of map pixel 0 along each axis (the window's half-width).
    means : sequence of numpy.ndarray, optional
        Each group's ``(component, y, x)`` means, components ordered as
        :data:`MEAN_MAPS` then :data:`MEAN_REFERENCE`; lazy NaN when not given (a
        new store's template: what it holds until its run ends).
    counts : sequence of int, optional
        Each group's number of pairs averaged (0 when not given).
    """
    n = len(names)
    height = max((h for h, _ in shapes), default=0)
    width = max((w for _, w in shapes), default=0)
    planes = (*MEAN_MAPS, MEAN_REFERENCE)
    data_vars: dict[str, Any] = {}
    if means is None:
        # A template: lazy NaN, so a Zarr store is laid out without writing a chunk
        # (unwritten chunks read as the NaN fill value).
        for name in planes:
            empty = da.full((n, height, width), np.nan, chunks=(1, height, width))
            data_vars[name] = ((SIZE_GROUP, MAP_Y, MAP_X), empty)
    else:
        values = np.full((len(planes), n, height, width), np.nan)
        for g, ((h, w), mean) in enumerate(zip(shapes, means, strict=True)):
            values[:, g, :h, :w] = mean
        for k, name in enumerate(planes):
            data_vars[name] = ((SIZE_GROUP, MAP_Y, MAP_X), values[k])
    count = np.zeros(n, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    data_vars[MEAN_MAP_COUNT] = ((SIZE_GROUP,), count)
    coords = {
        SIZE_GROUP: (SIZE_GROUP, np.asarray(names, dtype=object)),
        MAP_OFFSET: (SIZE_GROUP, np.full(n, offset, dtype=np.int64)),
        MAP_HEIGHT: (SIZE_GROUP, np.asarray([h for h, _ in shapes], dtype=np.int64)),
        MAP_WIDTH: (SIZE_GROUP, np.asarray([w for _, w in shapes], dtype=np.int64)),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    _describe(ds)
    return ds
