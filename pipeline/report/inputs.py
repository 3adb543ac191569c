"""What the report reads: a results Dataset, opened lazily and read batch by batch.

:func:`_open_results` takes a Dataset as it is, or opens a saved Zarr store or
``.nc`` file without loading it; :func:`_check_schema` refuses a Dataset without
the variables and coordinates of the result schema (the README's "The result
Dataset") or without region ``all``. ``ds.review`` checks its Datasets with
the same :func:`_check_schema`.

:func:`_scan` reads the Dataset once, a batch of pairs at a time, and keeps only
what the figures (:mod:`pipeline.report.figures`) and the page
(:mod:`pipeline.report.html`) draw: the pooled histogram, the mean per region,
the worst pairs (a running top-k), the first failed pairs and the per-image
scores of the successful pairs (one float a pair and variable, for the exact
quantiles of the summary table). Peak memory is therefore one batch plus the pair
ids (which xarray holds as the index), not the whole table: a million pairs of
32x32 with the default 100 bins are 800 MB of ``ssim_hist`` alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.reductions.regions import ALL_REGION
from pipeline.results.schema import (
    BIN,
    BIN_LOWER,
    BIN_UPPER,
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

if TYPE_CHECKING:
    import xarray as xr

_REQUIRED_VARIABLES = (SSIM, LUMINANCE, CONTRAST, STRUCTURE, SSIM_HIST, STATUS)
_REQUIRED_COORDS = (IMAGE, REGION, REFERENCE, GENERATED)
_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
# SSIM parameters as the result attrs record them (``ssim_`` + parameter name).
_SSIM_PARAMS = ("window", "win_size", "sigma", "k1", "k2", "covariance")
# Values read per batch (pairs x (bins + regions)): 32 MB of float64, whatever the run's size.
_BATCH_VALUES = 2**22
# Failed pairs the page lists one by one; the count says how many there are in all.
_FAILED_LISTED = 1000


@dataclass(frozen=True)
class _WorstPair:
    """One of the pairs the report shows, with the values its rows and panels print."""

    image: str
    reference: str
    generated: str
    score: float
    position: int = -1
    components: tuple[float, ...] = ()
    region_values: tuple[float, ...] = ()


@dataclass(frozen=True)
class _ReportData:
    """What one pass over the results keeps for the report (see :func:`_scan`)."""

    n_pairs: int
    n_ok: int
    regions: tuple[str, ...]
    edges: np.ndarray = field(repr=False)
    pooled_hist: np.ndarray = field(repr=False)
    scores: dict[str, np.ndarray] = field(repr=False)
    region_mean: np.ndarray = field(repr=False)
    worst: tuple[_WorstPair, ...]
    failed: tuple[tuple[str, str], ...]

    @property
    def n_failed(self) -> int:
        return self.n_pairs - self.n_ok


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
    # Opened lazily (no dask, no load): _scan reads one batch of pairs at a time, and
    # encoding["source"] finds the saved maps beside the table.
    from pipeline.results.stores import open_results

    if path.suffix in (".nc", ".nc4"):
        return open_results(path)
    if not path.is_dir():
        raise ValueError(f"results must be a Zarr store (a folder) or a .nc file (got {path})")
    return open_results(path, dask=False)


def _check_schema(ds: xr.Dataset) -> None:
    missing = [name for name in _REQUIRED_VARIABLES if name not in ds.variables]
    missing += [name for name in _REQUIRED_COORDS if name not in ds.coords]
    if missing:
        raise ValueError(
            f"results Dataset lacks {', '.join(missing)}; expected the result schema "
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


def _edges(ds: xr.Dataset) -> np.ndarray:
    if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
        upper = np.asarray(ds[BIN_UPPER].values, dtype=np.float64)
        return np.append(np.asarray(ds[BIN_LOWER].values, dtype=np.float64), upper[-1])
    # Results without bin edges: the fixed equal bins over [-1, 1] every run uses.
    return np.linspace(-1.0, 1.0, ds.sizes[BIN] + 1)


def _batch_length(ds: xr.Dataset) -> int:
    """Pairs per batch: whole chunks of the store, about ``_BATCH_VALUES`` values at a time."""
    per_pair = ds.sizes.get(BIN, 1) + 5 * ds.sizes.get(REGION, 1)
    wanted = max(1, _BATCH_VALUES // per_pair)
    chunks = ds[SSIM_HIST].encoding.get("chunks") or ds[SSIM_HIST].encoding.get("preferred_chunks")
    stored = None
    if isinstance(chunks, tuple | list) and chunks:
        stored = int(chunks[0])
    elif isinstance(chunks, dict) and IMAGE in chunks:
        stored = int(chunks[IMAGE])
    if not stored or stored <= 0:
        return wanted
    # A chunk is read whole however little of it is asked for: never split one.
    return max(stored, wanted // stored * stored)


def _scan(ds: xr.Dataset, worst: int) -> _ReportData:
    """One pass over the pairs, a batch at a time (the module docstring says what is kept)."""
    region_names = _strings(ds[REGION].values)
    regions = tuple(r for r in region_names if r != ALL_REGION)
    all_index = region_names.index(ALL_REGION)
    other_index = [region_names.index(r) for r in regions]
    image_ids = ds[IMAGE].values
    n_pairs = int(ds.sizes[IMAGE])
    edges = _edges(ds)
    pooled = np.zeros(ds.sizes[BIN], dtype=np.float64)
    region_sum = np.zeros(len(regions), dtype=np.float64)
    region_count = np.zeros(len(regions), dtype=np.int64)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in (SSIM, *_COMPONENTS)}
    best_scores = np.empty(0, dtype=np.float64)
    best_positions = np.empty(0, dtype=np.int64)
    failed: list[tuple[str, str]] = []
    n_ok = 0
    step = _batch_length(ds)
    for start in range(0, n_pairs, step):
        batch = ds.isel({IMAGE: slice(start, start + step)})
        status = np.asarray(_strings(batch[STATUS].values), dtype=object)
        values = {
            name: np.asarray(batch[name].isel({REGION: all_index}).values, dtype=np.float64)
            for name in (SSIM, *_COMPONENTS)
        }
        ok = (status == STATUS_OK) & np.isfinite(values[SSIM])
        n_ok += int(ok.sum())
        hist = np.asarray(batch[SSIM_HIST].isel({REGION: all_index}).values)
        # Summed in place over the successful rows: no copy of the batch's histograms.
        pooled += np.sum(hist, axis=0, dtype=np.float64, where=ok[:, None])
        for name, column in values.items():
            kept = column[ok]
            columns[name].append(kept[np.isfinite(kept)])
        if regions:
            table = np.asarray(batch[SSIM].isel({REGION: other_index}).values, dtype=np.float64)
            table = table[ok]
            region_sum += np.nansum(table, axis=0)
            region_count += np.isfinite(table).sum(axis=0)
        # Running top-k: ties in score go to the earlier pair, as a stable sort of all.
        positions = np.concatenate([best_positions, start + np.flatnonzero(ok)])
        scores = np.concatenate([best_scores, values[SSIM][ok]])
        keep = np.lexsort((positions, scores))[:worst]
        best_scores, best_positions = scores[keep], positions[keep]
        for j in np.flatnonzero(~ok)[: max(0, _FAILED_LISTED - len(failed))]:
            failed.append((str(image_ids[start + j]), str(status[j])))
    with np.errstate(invalid="ignore", divide="ignore"):
        region_mean = region_sum / region_count
    return _ReportData(
        n_pairs=n_pairs,
        n_ok=n_ok,
        regions=regions,
        edges=edges,
        pooled_hist=pooled,
        scores={name: np.concatenate(parts) for name, parts in columns.items()},
        region_mean=region_mean,
        worst=_pair_rows(ds, best_positions),
        failed=tuple(failed),
    )


def _pair_rows(ds: xr.Dataset, positions: np.ndarray) -> tuple[_WorstPair, ...]:
    """The rows of the pairs at ``positions``, read with one indexed read per variable."""
    region_names = _strings(ds[REGION].values)
    all_index = region_names.index(ALL_REGION)
    other_index = [j for j, name in enumerate(region_names) if name != ALL_REGION]
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return ()
    rows = ds.isel({IMAGE: positions})
    overall = {
        name: np.asarray(rows[name].isel({REGION: all_index}).values, dtype=np.float64)
        for name in (SSIM, *_COMPONENTS)
    }
    components = np.stack([overall[name] for name in _COMPONENTS], axis=1)
    if other_index:
        regions = np.asarray(rows[SSIM].isel({REGION: other_index}).values, dtype=np.float64)
    else:
        regions = np.empty((positions.size, 0))
    ids = _strings(rows[IMAGE].values)
    references = _strings(rows[REFERENCE].values)
    generated = _strings(rows[GENERATED].values)
    return tuple(
        _WorstPair(
            image=ids[j],
            reference=references[j],
            generated=generated[j],
            score=float(overall[SSIM][j]),
            position=int(positions[j]),
            components=tuple(float(v) for v in components[j]),
            region_values=tuple(float(v) for v in regions[j]),
        )
        for j in range(positions.size)
    )


def _printable(text: str, limit: int | None = None) -> str:
    """``text`` as a person should read it: every character shows, none acts.

    The escapes are the command line's (:func:`pipeline.results.text.terminal_text`):
    bytes that were not UTF-8 as ``\\xNN``, control, format (bidi) and separator
    characters as ``\\xNN``/``\\uNNNN``; everything else, ``$`` and ``#`` included,
    is kept. With ``limit``, a longer result keeps its start and its end around an
    ellipsis (the end of a path tells pairs apart).
    """
    from pipeline.results.text import terminal_text

    shown = terminal_text(text)
    if limit is not None and len(shown) > limit:
        head = (limit - 1) // 2
        tail = limit - 1 - head
        shown = shown[:head] + "\u2026" + shown[len(shown) - tail :]
    return shown
