"""The summary of a results Dataset, read once a batch of pairs at a time.

:func:`scan_results` reads a results Dataset once, a batch of pairs at a time,
and keeps only what the summary, the report and ``ds.review``'s figures need
(a :class:`ResultsScan`): the pooled histogram of region ``all``, the per-image
values of the successful pairs (one float a pair and variable, for exact
per-image quantiles), the mean per region, the worst pairs (a running top-k)
and the failed pairs. Peak memory is therefore one batch plus the pair ids
(which xarray holds as the index), not the whole table: a million pairs of
32x32 with the default 100 bins are 800 MB of ``ssim_hist`` alone. A store
opened with :func:`pipeline.results.stores.open_results` is read chunk by chunk.

:func:`summarize` turns one scan into a plain dict (the CLI prints it, ``--json``
emits it, the ``ds.review`` accessor returns it); :func:`format_summary` renders
it as the plain-text table the command line shows.

* ``pairs`` = ``ok`` + ``failed`` + ``pending`` (``pending``: not computed yet, an
  interrupted store); a pair is ``ok`` when its status is ``"ok"`` and its score
  is finite.
* ``mean`` is the mean over the ok pairs of the per-image SSIM (region ``all``,
  the standard score); ``luminance``, ``contrast``, ``structure`` likewise.
* ``quantiles`` are quantiles of the SSIM map itself (every valid-map pixel of
  every ok pair), read from the merged ``ssim_hist`` with linear interpolation
  inside a bin, so they are exact to a fraction of a bin width (0.02 for the
  default 100 bins). ``image_quantiles`` are the exact quantiles of the
  per-image scores.
* ``mse`` is the mean over the ok pairs of the per-image MSE; ``psnr`` the mean
  of the per-image PSNR (dB) over the ok pairs whose PSNR is finite, with
  ``psnr_identical`` counting the ok pairs whose pixels are identical (PSNR
  ``inf``, left out of that mean and of ``psnr_quantiles``); ``region_psnr`` the
  same mean per region. Results written before MSE and PSNR existed give None.
* ``worst``: the lowest-scoring ok pairs; ``failures``: every failed pair with its
  status; ``unpaired``: the files listed in the attrs by folder sources;
  ``skipped``: the files and folders discovery left out, each with its path
  under the folder as the user named it and the reason.

:func:`format_summary` shows every name through
:func:`pipeline.results.text.terminal_text`, so a file name cannot put control or
escape characters on the terminal.

Values that do not exist (no ok pair) are ``None``, so the dict is valid JSON.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.local
import numpy as np
import xarray as xr

from pipeline.results.schema import (
    ALL_REGION,
    BIN,
    BIN_LOWER,
    BIN_UPPER,
    COMPONENTS,
    CONTRAST,
    COUNT,
    GENERATED,
    IMAGE,
    LUMINANCE,
    MODEL,
    MODEL_ATTRS,
    MODELS,
    MSE,
    PENDING_STATUSES,
    PSNR,
    REFERENCE,
    REGION,
    SKIPPED_FILES,
    SSIM,
    SSIM_HIST,
    STATUS,
    STATUS_OK,
    STRUCTURE,
    UNPAIRED_GENERATED,
    UNPAIRED_REFERENCE,
)
from pipeline.results.text import terminal_text, text_values

__all__ = [
    "FAILED_LISTED",
    "QUANTILE_LEVELS",
    "REPORT_VARIABLES",
    "PairRow",
    "ResultsScan",
    "batch_length",
    "format_summary",
    "histogram_edges",
    "histogram_quantiles",
    "model_results",
    "pair_rows",
    "scan_results",
    "skipped_files",
    "summarize",
]

QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
#: What the report and the figures keep per ok pair (:func:`scan_results`'s ``kept``):
#: SSIM, its components, and MSE and PSNR where the results have them.
REPORT_VARIABLES = (SSIM, *COMPONENTS, MSE, PSNR)
#: Failed pairs the report lists one by one; its count says how many there are in all.
FAILED_LISTED = 1000
# Values read per batch (pairs x (bins + regions)): 32 MB of float64, whatever the run's size.
_BATCH_VALUES = 2**22


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _attr_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    return [str(v) for v in np.asarray(value).ravel()]


def histogram_quantiles(
    counts: np.ndarray, edges: np.ndarray, levels: Sequence[float]
) -> list[float]:
    """Quantiles of the values binned as ``counts`` on ``edges`` (linear inside a bin).

    Parameters
    ----------
    counts : ndarray
        ``bins`` non-negative counts.
    edges : ndarray
        ``bins + 1`` increasing edges.
    levels : sequence of float
        Quantile levels in [0, 1].

    Returns
    -------
    list of float
        NaN for each level when the histogram is empty.

    Examples
    --------
    >>> histogram_quantiles(np.array([0, 2, 2, 0]), np.linspace(0, 4, 5), [0.5])
    [2.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(
            f"edges must have one more entry than counts (got {edges.shape} and {counts.shape})"
        )
    total = counts.sum()
    if total <= 0:
        return [math.nan for _ in levels]
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / total
    out = []
    for level in levels:
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"quantile levels must be in [0, 1] (got {level})")
        # First bin whose upper cumulative fraction reaches the level.
        k = int(np.searchsorted(cumulative[1:], level, side="left"))
        k = min(k, counts.size - 1)
        while counts[k] == 0 and k < counts.size - 1:
            k += 1
        inside = (level - cumulative[k]) / (counts[k] / total) if counts[k] else 0.0
        inside = min(max(inside, 0.0), 1.0)
        out.append(float(edges[k] + inside * (edges[k + 1] - edges[k])))
    return out


def histogram_edges(ds: xr.Dataset) -> np.ndarray:
    """The ``bins + 1`` edges of ``ssim_hist``: its ``bin_lower``/``bin_upper`` coordinates.

    Results without them get the fixed equal bins over [-1, 1] every run uses.
    """
    if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
        upper = np.asarray(ds[BIN_UPPER].values, dtype=np.float64)
        return np.append(np.asarray(ds[BIN_LOWER].values, dtype=np.float64), upper[-1])
    return np.linspace(-1.0, 1.0, ds.sizes[BIN] + 1)


@dataclass(frozen=True)
class PairRow:
    """One pair as the summary, the report and ``ds.review`` show it.

    ``components`` are luminance, contrast and structure in region ``all`` (NaN
    for one the results lack); ``region_values`` the SSIM of every other region;
    ``errors`` MSE and PSNR in region ``all`` (NaN where the results lack them).
    """

    image: str
    reference: str
    generated: str
    score: float
    position: int = -1
    components: tuple[float, ...] = ()
    region_values: tuple[float, ...] = ()
    errors: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class ResultsScan:
    """What one pass over the results keeps (see :func:`scan_results`).

    ``regions`` and ``region_mean`` are the regions besides ``all`` and their mean
    SSIM over the ok pairs; ``ok_values`` the region-``all`` values of the ok
    pairs in pair order (``ssim`` and the variables the scan was asked to keep);
    ``failed`` the listed failed pairs as ``(image, status)``; ``region_psnr`` the
    mean finite PSNR per region besides ``all`` over the ok pairs (NaN without ``psnr``).
    """

    n_pairs: int
    n_ok: int
    n_pending: int
    regions: tuple[str, ...]
    edges: np.ndarray = field(repr=False)
    pooled_hist: np.ndarray = field(repr=False)
    ok_values: dict[str, np.ndarray] = field(repr=False)
    region_mean: np.ndarray = field(repr=False)
    worst: tuple[PairRow, ...]
    failed: tuple[tuple[str, str], ...]
    region_psnr: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def n_failed(self) -> int:
        """Pairs that are not ok, pending ones included."""
        return self.n_pairs - self.n_ok

    @property
    def scores(self) -> dict[str, np.ndarray]:
        """The finite ``ssim``, ``luminance``, ``contrast``, ``structure`` of the ok pairs.

        Also ``mse`` and ``psnr`` when the results have them and the scan kept them
        (PSNR ``inf``, identical pixels, is left out: see :attr:`n_identical`).
        """
        return {
            name: values[np.isfinite(values)]
            for name, values in self.ok_values.items()
            if name in (SSIM, *COMPONENTS, MSE, PSNR)
        }

    @property
    def n_identical(self) -> int:
        """Ok pairs whose pixels are identical (PSNR ``inf``); 0 without ``psnr``."""
        return int(np.count_nonzero(self.ok_values.get(PSNR, np.empty(0)) == np.inf))


def batch_length(ds: xr.Dataset) -> int:
    """Pairs per batch: whole chunks of the store, about ``_BATCH_VALUES`` values at a time."""
    per_pair = ds.sizes.get(BIN, 1) + 6 * ds.sizes.get(REGION, 1)
    wanted = max(1, _BATCH_VALUES // per_pair)
    hist = ds[SSIM_HIST]
    chunks = hist.encoding.get("chunks") or hist.encoding.get("preferred_chunks")
    stored = None
    if isinstance(chunks, tuple | list) and chunks:
        stored = int(chunks[0])
    elif isinstance(chunks, dict) and IMAGE in chunks:
        stored = int(chunks[IMAGE])
    elif hist.chunks:  # Dask-backed, not from a store
        stored = int(hist.chunks[0][0])
    if not stored or stored <= 0:
        return wanted
    # A chunk is read whole however little of it is asked for: never split one.
    return max(stored, wanted // stored * stored)


def scan_results(
    ds: xr.Dataset,
    worst: int,
    *,
    listed: int | None = FAILED_LISTED,
    list_pending: bool = True,
    kept: Sequence[str] = (SSIM, *COMPONENTS),
) -> ResultsScan:
    """Read the results once, a batch of pairs at a time (the module docstring says what is kept).

    Parameters
    ----------
    ds : xarray.Dataset
        Results, in memory or opened lazily (:func:`pipeline.results.stores.open_results`);
        ``ssim``, ``status`` and ``ssim_hist`` are required.
    worst : int
        How many of the lowest-scoring ok pairs to keep (ties go to the earlier pair).
    listed : int or None
        Keep the first ``listed`` failed pairs (None: every one).
    list_pending : bool
        Whether pending pairs (not computed yet) are listed among the failed ones.
    kept : sequence of str
        The variables whose region-``all`` values of the ok pairs are kept
        (:attr:`ResultsScan.ok_values`; ``ssim`` always, the others when present).
    """
    # Each batch is read in this thread: Dask's pool of threads would each keep their
    # own freed memory (glibc arenas), and a batch is a few chunks anyway. Named as the
    # function itself, the scheduler is used without looking for a distributed client.
    with dask.config.set(scheduler=dask.local.get_sync):
        return _scan(ds, worst, listed, list_pending, kept)


def _scan(
    ds: xr.Dataset, worst: int, listed: int | None, list_pending: bool, kept: Sequence[str]
) -> ResultsScan:
    region_names = text_values(ds[REGION].values)
    regions = tuple(r for r in region_names if r != ALL_REGION)
    all_index = region_names.index(ALL_REGION)
    other_index = [region_names.index(r) for r in regions]
    n_pairs = int(ds.sizes[IMAGE])
    edges = histogram_edges(ds)
    pooled = np.zeros(ds.sizes[BIN], dtype=np.float64)
    region_sum = np.zeros(len(regions), dtype=np.float64)
    region_count = np.zeros(len(regions), dtype=np.int64)
    has_psnr = PSNR in ds.variables
    psnr_sum = np.zeros(len(regions), dtype=np.float64)
    psnr_count = np.zeros(len(regions), dtype=np.int64)
    kept = [SSIM, *(name for name in kept if name != SSIM and name in ds.variables)]
    columns: dict[str, list[np.ndarray]] = {name: [] for name in kept}
    best_scores = np.empty(0, dtype=np.float64)
    best_positions = np.empty(0, dtype=np.int64)
    failed: list[tuple[str, str]] = []
    n_ok = n_pending = 0
    step = batch_length(ds)
    for start in range(0, n_pairs, step):
        batch = ds.isel({IMAGE: slice(start, start + step)})
        status = np.asarray(text_values(batch[STATUS].values), dtype=object)
        ssim_table = np.asarray(batch[SSIM].values, dtype=np.float64)
        values = {SSIM: ssim_table[:, all_index]}
        for name in kept[1:]:
            values[name] = np.asarray(
                batch[name].isel({REGION: all_index}).values, dtype=np.float64
            )
        ok = (status == STATUS_OK) & np.isfinite(values[SSIM])
        pending = ~ok & np.isin(status, PENDING_STATUSES)
        n_ok += int(ok.sum())
        n_pending += int(pending.sum())
        hist = np.asarray(batch[SSIM_HIST].isel({REGION: all_index}).values)
        # Summed in place over the successful rows: no copy of the batch's histograms.
        pooled += np.sum(hist, axis=0, dtype=np.float64, where=ok[:, None])
        del hist
        for name, column in values.items():
            columns[name].append(column[ok])
        if regions:
            table = ssim_table[:, other_index][ok]
            region_sum += np.nansum(table, axis=0)
            region_count += np.isfinite(table).sum(axis=0)
            if has_psnr:
                psnr = np.asarray(batch[PSNR].values, dtype=np.float64)[:, other_index][ok]
                finite = np.isfinite(psnr)
                psnr_sum += np.sum(psnr, axis=0, where=finite)
                psnr_count += finite.sum(axis=0)
        # Running top-k: ties in score go to the earlier pair, as a stable sort of all.
        positions = np.concatenate([best_positions, start + np.flatnonzero(ok)])
        scores = np.concatenate([best_scores, values[SSIM][ok]])
        keep = np.lexsort((positions, scores))[:worst]
        best_scores, best_positions = scores[keep], positions[keep]
        unlisted = ~ok if list_pending else ~ok & ~pending
        room = None if listed is None else max(0, listed - len(failed))
        listing = np.flatnonzero(unlisted)[:room]
        if listing.size:  # ids only for the pairs listed: a million names are not copied
            ids = text_values(batch[IMAGE].values[listing])
            failed += zip(ids, (str(status[j]) for j in listing), strict=True)
    worst_rows = pair_rows(ds, best_positions)
    with np.errstate(invalid="ignore", divide="ignore"):
        region_mean = region_sum / region_count
        region_psnr = psnr_sum / psnr_count if has_psnr else np.full(len(regions), np.nan)
    return ResultsScan(
        n_pairs=n_pairs,
        n_ok=n_ok,
        n_pending=n_pending,
        regions=regions,
        edges=edges,
        pooled_hist=pooled,
        ok_values={
            name: np.concatenate(parts) if parts else np.empty(0) for name, parts in columns.items()
        },
        region_mean=region_mean,
        worst=worst_rows,
        failed=tuple(failed),
        region_psnr=region_psnr,
    )


def pair_rows(ds: xr.Dataset, positions: np.ndarray) -> tuple[PairRow, ...]:
    """The rows of the pairs at ``positions``, read with one indexed read per variable."""
    region_names = text_values(ds[REGION].values)
    all_index = region_names.index(ALL_REGION)
    other_index = [j for j, name in enumerate(region_names) if name != ALL_REGION]
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size == 0:
        return ()
    rows = ds.isel({IMAGE: positions})
    table = np.asarray(rows[SSIM].values, dtype=np.float64)
    components = np.stack(
        [
            np.asarray(rows[name].isel({REGION: all_index}).values, dtype=np.float64)
            if name in rows.variables
            else np.full(positions.size, np.nan)
            for name in COMPONENTS
        ],
        axis=1,
    )
    errors = np.stack(
        [
            np.asarray(rows[name].isel({REGION: all_index}).values, dtype=np.float64)
            if name in rows.variables
            else np.full(positions.size, np.nan)
            for name in (MSE, PSNR)
        ],
        axis=1,
    )
    regions = table[:, other_index]
    ids = text_values(rows[IMAGE].values)
    references = text_values(rows[REFERENCE].values) if REFERENCE in rows.coords else ids
    generated = text_values(rows[GENERATED].values) if GENERATED in rows.coords else ids
    return tuple(
        PairRow(
            image=ids[j],
            reference=references[j],
            generated=generated[j],
            score=float(table[j, all_index]),
            position=int(positions[j]),
            components=tuple(float(v) for v in components[j]),
            region_values=tuple(float(v) for v in regions[j]),
            errors=(float(errors[j, 0]), float(errors[j, 1])),
        )
        for j in range(positions.size)
    )


def _split_reason(entry: str) -> tuple[str, str]:
    """``"path (reason)"`` -> (path, reason); the reason is the last balanced parenthesis."""
    if not entry.endswith(")"):
        return entry, ""
    depth = 0
    for index in range(len(entry) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(entry[index], 0)
        if depth == 0:
            if index > 0 and entry[index - 1] == " ":
                return entry[: index - 1], entry[index + 1 : -1]
            break
    return entry, ""


def skipped_files(
    entries: Sequence[str], folders: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The ``skipped_files`` attr of a folder source as ``{"path", "reason"}`` rows.

    Parameters
    ----------
    entries : sequence of str
        ``"reference/sub/.x.png (hidden file)"``: the side, the path inside that
        side's folder and the reason.
    folders : mapping, optional
        ``{"reference": folder, "generated": folder}`` as the user named them; the
        side's name is replaced by its folder (``data/ref/sub/.x.png``).

    Examples
    --------
    >>> skipped_files(["reference/.x.png (hidden file)"], {"reference": "data/ref"})
    [{'path': 'data/ref/.x.png', 'reason': 'hidden file'}]
    """
    rows = []
    for entry in entries:
        where, reason = _split_reason(str(entry))
        side, sep, inside = where.partition("/")
        if sep and folders and side in folders:
            where = os.path.join(folders[side], inside)
        rows.append({"path": where, "reason": reason})
    return rows


def _source_folders(ds: xr.Dataset) -> dict[str, str] | None:
    """The two folders a folder source recorded in the ``sources`` attr."""
    try:
        sources = json.loads(ds.attrs.get("sources", ""))
    except (TypeError, ValueError):
        return None
    if not isinstance(sources, Mapping):
        return None
    folders = {side: sources.get(side) for side in (REFERENCE, GENERATED)}
    return {k: str(v) for k, v in folders.items() if isinstance(v, str)} or None


def summarize(
    ds: xr.Dataset, *, worst: int = 5, folders: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Counts, SSIM mean and quantiles, mean l/c/s and worst pairs of a results Dataset.

    The Dataset is read once, a batch of pairs at a time (:func:`scan_results`):
    a lazily opened store of a million pairs is summarized in the memory of one
    batch.

    Parameters
    ----------
    ds : xarray.Dataset
        Results as returned by :func:`pipeline.evaluate` or opened from a store.
    worst : int
        How many of the lowest-scoring ok pairs to list.
    folders : mapping, optional
        ``{"reference": ..., "generated": ...}``: the folders as the user named
        them, for the paths of skipped files (default: the folders recorded in the
        ``sources`` attr).

    Returns
    -------
    dict
        Keys ``pairs``, ``ok``, ``failed``, ``pending``, ``unpaired_reference``,
        ``unpaired_generated`` (counts); ``mean``, ``quantiles`` (map quantiles,
        ``{level: value}``), ``image_quantiles``, ``luminance``, ``contrast``,
        ``structure``; ``pixel_mean`` (count-weighted); ``mse``, ``psnr`` (dB, finite
        values), ``psnr_identical``, ``psnr_quantiles``, ``region_psnr`` (None or
        empty for results without MSE/PSNR);
        ``worst`` (list of dicts), ``failures`` (list of dicts),
        ``unpaired`` (``{"reference": [...], "generated": [...]}``), ``skipped``
        (``[{"path": ..., "reason": ...}]``, with its count ``skipped_files``),
        ``regions`` (mean SSIM per region over ok pairs). JSON-safe: missing
        values are None.

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)
    >>> summarize(sp.evaluate(x, x))["mean"]
    1.0
    """
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise ValueError(f"worst must be a non-negative integer (got {worst!r})")
    for name in (SSIM, STATUS, SSIM_HIST):
        if name not in ds.variables:
            raise ValueError(f"results Dataset lacks {name!r}; expected the result schema")
    if MODEL in ds.dims:
        return _summarize_models(ds, worst)
    scan = scan_results(
        ds, worst, listed=None, list_pending=False, kept=(SSIM, *COMPONENTS, COUNT, MSE, PSNR)
    )
    ok_values = scan.ok_values
    scores = ok_values[SSIM]
    any_ok = scan.n_ok > 0
    pixel_mean = math.nan
    if COUNT in ok_values and any_ok:
        counts = ok_values[COUNT]
        if counts.sum() > 0:
            pixel_mean = float((scores * counts).sum() / counts.sum())
    levels = QUANTILE_LEVELS
    quantiles = histogram_quantiles(scan.pooled_hist, scan.edges, levels)
    image_quantiles = np.quantile(scores, levels).tolist() if any_ok else [math.nan] * len(levels)
    components = {
        name: _number(float(np.mean(ok_values[name]))) if any_ok and name in ds else None
        for name in COMPONENTS
    }
    errors = _error_summary(ok_values, levels) if PSNR in ds.variables else _NO_ERRORS
    worst_rows = []
    for pair in scan.worst:
        row: dict[str, Any] = {"image": pair.image, "ssim": _number(pair.score)}
        row.update(
            {
                name: _number(value)
                for name, value in zip(COMPONENTS, pair.components, strict=True)
                if name in ds
            }
        )
        if PSNR in ds.variables:
            row.update({MSE: _number(pair.errors[0]), PSNR: _number(pair.errors[1])})
        row.update({"reference": pair.reference, "generated": pair.generated})
        worst_rows.append(row)
    regions: dict[str, float | None] = {}
    means = dict(zip(scan.regions, scan.region_mean.tolist(), strict=True))
    for region in text_values(ds[REGION].values):
        if region == ALL_REGION:
            regions[region] = _number(float(scores.mean())) if any_ok else None
        else:
            regions[region] = _number(means[region])
    unpaired_ref = _attr_list(ds.attrs.get(UNPAIRED_REFERENCE))
    unpaired_gen = _attr_list(ds.attrs.get(UNPAIRED_GENERATED))
    skipped = skipped_files(
        _attr_list(ds.attrs.get(SKIPPED_FILES)),
        folders if folders is not None else _source_folders(ds),
    )
    return {
        "pairs": scan.n_pairs,
        "ok": scan.n_ok,
        "failed": scan.n_failed - scan.n_pending,
        "pending": scan.n_pending,
        "unpaired_reference": len(unpaired_ref),
        "unpaired_generated": len(unpaired_gen),
        "skipped_files": len(skipped),
        "mean": _number(float(scores.mean())) if any_ok else None,
        "pixel_mean": _number(pixel_mean),
        "quantiles": {str(q): _number(v) for q, v in zip(levels, quantiles, strict=True)},
        "image_quantiles": {
            str(q): _number(float(v)) for q, v in zip(levels, image_quantiles, strict=True)
        },
        **components,
        **errors,
        "region_psnr": {
            region: _number(value)
            for region, value in zip(scan.regions, scan.region_psnr.tolist(), strict=True)
        }
        if PSNR in ds.variables
        else {},
        "regions": regions,
        "worst": worst_rows,
        "failures": [{"image": image, "status": status} for image, status in scan.failed],
        "unpaired": {"reference": unpaired_ref, "generated": unpaired_gen},
        "skipped": skipped,
    }


_NO_ERRORS: dict[str, Any] = {
    MSE: None,
    PSNR: None,
    "psnr_identical": None,
    "psnr_quantiles": {},
}


def _error_summary(ok_values: Mapping[str, np.ndarray], levels: Sequence[float]) -> dict[str, Any]:
    """Mean MSE, mean and quantiles of the finite PSNR, identical pairs (PSNR ``inf``)."""
    mse = ok_values.get(MSE, np.empty(0))
    psnr = ok_values.get(PSNR, np.empty(0))
    finite = psnr[np.isfinite(psnr)]
    quantiles = np.quantile(finite, levels).tolist() if finite.size else [math.nan] * len(levels)
    return {
        MSE: _number(float(mse.mean())) if mse.size else None,
        PSNR: _number(float(finite.mean())) if finite.size else None,
        "psnr_identical": int(np.count_nonzero(psnr == np.inf)),
        "psnr_quantiles": {str(q): _number(v) for q, v in zip(levels, quantiles, strict=True)},
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_db(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_psnr(row: Mapping[str, Any]) -> str:
    """A pair's PSNR; ``inf`` for identical pixels (None in JSON, MSE 0)."""
    if row.get(PSNR) is None and row.get(MSE) == 0:
        return "inf"
    return _fmt_db(row.get(PSNR))


def format_summary(summary: dict[str, Any], *, max_listed: int = 20) -> str:
    """The plain-text table of a :func:`summarize` dict (what the CLI prints).

    Parameters
    ----------
    summary : dict
        As returned by :func:`summarize`.
    max_listed : int
        At most this many failed pairs and unpaired files are listed (the counts
        are always complete).
    """
    if "models" in summary:
        return _format_models(summary, max_listed)
    lines = [
        f"pairs        {summary['pairs']:>8}",
        f"  ok         {summary['ok']:>8}",
        f"  failed     {summary['failed']:>8}",
    ]
    if summary["pending"]:
        lines.append(f"  pending    {summary['pending']:>8}   (resume the run to compute them)")
    lines.append(
        f"unpaired     {summary['unpaired_reference']:>8} reference, "
        f"{summary['unpaired_generated']} generated"
    )
    if summary.get("skipped_files"):
        lines.append(f"skipped      {summary['skipped_files']:>8} files or folders (listed below)")
    lines += [
        "",
        f"{'':20}{'mean':>8}"
        + "".join(f"{'p' + str(round(float(q) * 100)):>8}" for q in summary["quantiles"]),
        f"{'SSIM per image':20}{_fmt(summary['mean']):>8}"
        + "".join(f"{_fmt(v):>8}" for v in summary["image_quantiles"].values()),
        f"{'SSIM map pixels':20}{_fmt(summary['pixel_mean']):>8}"
        + "".join(f"{_fmt(v):>8}" for v in summary["quantiles"].values()),
    ]
    for name in COMPONENTS:
        lines.append(f"{name + ' per image':20}{_fmt(summary.get(name)):>8}")
    if summary.get(PSNR) is not None or summary.get(MSE) is not None:
        lines.append(
            f"{'PSNR dB per image':20}{_fmt_db(summary.get(PSNR)):>8}"
            + "".join(f"{_fmt_db(v):>8}" for v in summary.get("psnr_quantiles", {}).values())
        )
        mse = summary.get(MSE)
        lines.append(f"{'MSE per image':20}{'-' if mse is None else f'{mse:.6g}':>8}")
        if summary.get("psnr_identical"):
            lines.append(
                f"{'identical pairs':20}{summary['psnr_identical']:>8}   "
                "(PSNR inf: left out of the PSNR mean and quantiles)"
            )
    regions = {k: v for k, v in summary["regions"].items() if k != ALL_REGION}
    if regions:
        lowest = sorted(regions.items(), key=lambda kv: math.inf if kv[1] is None else kv[1])
        shown = ", ".join(f"{terminal_text(k)} {_fmt(v)}" for k, v in lowest[:3])
        lines.append(f"lowest regions: {shown}")
    if summary["worst"]:
        with_psnr = any(PSNR in row for row in summary["worst"])
        psnr_title = f"{'psnr':>8}" if with_psnr else ""
        lines += ["", f"worst pairs   {'ssim':>8}{'l':>8}{'c':>8}{'s':>8}{psnr_title}  image"]
        for rank, row in enumerate(summary["worst"], 1):
            psnr = f"{_fmt_psnr(row):>8}" if with_psnr else ""
            lines.append(
                f"{rank:>4}          {_fmt(row['ssim']):>8}{_fmt(row.get(LUMINANCE)):>8}"
                f"{_fmt(row.get(CONTRAST)):>8}{_fmt(row.get(STRUCTURE)):>8}{psnr}  "
                + terminal_text(row["image"])
            )
    lines += _listings(summary, max_listed)
    return "\n".join(lines)


def _listings(summary: dict[str, Any], max_listed: int) -> list[str]:
    """The failed pairs, unpaired and skipped files of a summary, at most ``max_listed`` each."""
    lines: list[str] = []
    for title, items in (
        ("failed pairs", [f"{f['image']}: {f['status']}" for f in summary["failures"]]),
        ("unpaired reference files", summary["unpaired"]["reference"]),
        ("unpaired generated files", summary["unpaired"]["generated"]),
        (
            "skipped files and folders",
            [f"{s['path']} ({s['reason']})" for s in summary.get("skipped", [])],
        ),
    ):
        if items:
            lines += ["", f"{title} ({len(items)}):"]
            lines += [f"  {terminal_text(item)}" for item in items[:max_listed]]
            if len(items) > max_listed:
                lines.append(f"  ... and {len(items) - max_listed} more")
    return lines


# -- several models in one run ---------------------------------------------------------


def model_results(ds: xr.Dataset) -> dict[str, xr.Dataset]:
    """Each model's results of a run of several models, as a run of that model alone.

    ``ds.sel(model=name, drop=True)`` with the attrs of that model's own pairing
    (unpaired and skipped files, size groups, sources) from the ``model_attrs`` attr.
    """
    try:
        per_model = json.loads(ds.attrs.get(MODEL_ATTRS, "{}"))
    except (TypeError, ValueError):
        per_model = {}
    if not isinstance(per_model, Mapping):
        per_model = {}
    out = {}
    for name in text_values(ds[MODEL].values):
        one = ds.sel({MODEL: name}, drop=True)
        attrs = {k: v for k, v in ds.attrs.items() if k not in (MODELS, MODEL_ATTRS)}
        attrs.update(per_model.get(name, {}))
        one.attrs = attrs
        out[name] = one
    return out


_COUNTED = (
    "pairs",
    "ok",
    "failed",
    "pending",
    "unpaired_reference",
    "unpaired_generated",
    "skipped_files",
)


def _summarize_models(ds: xr.Dataset, worst: int) -> dict[str, Any]:
    """The summary of several models: one full summary per model under ``models``.

    The top level keeps the keys of one model's summary where they add up (pair
    counts; failures, unpaired and skipped files named ``"<model>: <name>"``); the
    scores are per model only (None or empty at the top level: a mean over models
    would mix what the run compares).
    """
    models = {name: summarize(one, worst=worst) for name, one in model_results(ds).items()}
    total = {key: sum(s[key] for s in models.values()) for key in _COUNTED}

    def prefixed(items_of: Any) -> list[Any]:
        out: list[Any] = []
        for name, s in models.items():
            for item in items_of(s):
                if isinstance(item, Mapping):
                    first = "image" if "image" in item else "path"
                    out.append({**item, first: f"{name}: {item[first]}", MODEL: name})
                else:
                    out.append(f"{name}: {item}")
        return out

    return {
        **total,
        "models": [{MODEL: name, **s} for name, s in models.items()],
        "mean": None,
        "pixel_mean": None,
        "quantiles": {},
        "image_quantiles": {},
        **{name: None for name in COMPONENTS},
        **_NO_ERRORS,
        "region_psnr": {},
        "regions": {},
        "worst": [],
        "failures": prefixed(lambda s: s["failures"]),
        "unpaired": {
            side: prefixed(lambda s, side=side: s["unpaired"][side])
            for side in (REFERENCE, GENERATED)
        },
        "skipped": prefixed(lambda s: s["skipped"]),
    }


def _format_models(summary: dict[str, Any], max_listed: int) -> str:
    """The table of several models: one row per model, then the failures and files."""
    width = max([5, *(len(terminal_text(m[MODEL])) for m in summary["models"])])
    lines = [
        f"models       {len(summary['models']):>8}",
        f"pairs        {summary['pairs']:>8}   (all models)",
        f"  ok         {summary['ok']:>8}",
        f"  failed     {summary['failed']:>8}",
    ]
    if summary["pending"]:
        lines.append(f"  pending    {summary['pending']:>8}   (resume the run to compute them)")
    lines += [
        "",
        f"{'model':<{width}}  {'SSIM':>8}{'PSNR dB':>9}{'ok':>8}{'failed':>8}{'pending':>8}"
        f"{'unpaired':>10}",
    ]
    for row in summary["models"]:
        unpaired = f"{row['unpaired_reference']}/{row['unpaired_generated']}"
        lines.append(
            f"{terminal_text(row[MODEL]):<{width}}  {_fmt(row['mean']):>8}"
            f"{_fmt_db(row.get(PSNR)):>9}{row['ok']:>8}{row['failed']:>8}{row['pending']:>8}"
            f"{unpaired:>10}"
        )
    lines.append("(SSIM, PSNR: means per image over the ok pairs; unpaired: reference/generated)")
    lines += _listings(summary, max_listed)
    return "\n".join(lines)
