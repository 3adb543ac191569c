"""The summary of a results Dataset: counts, SSIM mean and quantiles, l/c/s, worst pairs.

:func:`summarize` is a pure function of the Dataset (the CLI prints it, ``--json``
emits it, the ``ds.review`` accessor returns it); :func:`format_summary` renders
it as the plain-text table the command line shows.

* ``pairs`` = ``ok`` + ``failed`` + ``pending`` (``pending``: not computed yet, an
  interrupted store); a pair is ``ok`` when its status is ``"ok"``.
* ``mean`` is the mean over the ok pairs of the per-image SSIM (region ``all``,
  the standard score); ``luminance``, ``contrast``, ``structure`` likewise.
* ``quantiles`` are quantiles of the SSIM map itself (every valid-map pixel of
  every ok pair), read from the merged ``ssim_hist`` with linear interpolation
  inside a bin, so they are exact to a fraction of a bin width (0.02 for the
  default 100 bins). ``image_quantiles`` are the exact quantiles of the
  per-image scores.
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
from typing import Any

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    BIN_LOWER,
    BIN_UPPER,
    CONTRAST,
    COUNT,
    GENERATED,
    IMAGE,
    LUMINANCE,
    PENDING_STATUSES,
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
from pipeline.results.text import terminal_text

__all__ = [
    "QUANTILE_LEVELS",
    "format_summary",
    "histogram_quantiles",
    "skipped_files",
    "summarize",
]

QUANTILE_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
_ALL = "all"
_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
# Status of a pair not computed yet: the store's fill value, and the word users read.


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _strings(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values).ravel()]


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


def _edges(ds: xr.Dataset) -> np.ndarray:
    if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
        lower = np.asarray(ds[BIN_LOWER].values, dtype=np.float64)
        return np.append(lower, float(np.asarray(ds[BIN_UPPER].values)[-1]))
    return np.linspace(-1.0, 1.0, ds.sizes["bin"] + 1)


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
        ``structure``; ``pixel_mean`` (count-weighted);
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
    status = np.asarray(_strings(ds[STATUS].values), dtype=object)
    images = _strings(ds[IMAGE].values)
    overall = ds.sel({REGION: _ALL})
    scores = np.asarray(overall[SSIM].values, dtype=np.float64)
    ok = (status == STATUS_OK) & np.isfinite(scores)
    pending = np.isin(status, PENDING_STATUSES)
    failed = ~ok & ~pending
    hist = np.asarray(overall[SSIM_HIST].values, dtype=np.float64)[ok].sum(axis=0)
    pixel_mean = math.nan
    if COUNT in ds and ok.any():
        counts = np.asarray(overall[COUNT].values, dtype=np.float64)[ok]
        if counts.sum() > 0:
            pixel_mean = float((scores[ok] * counts).sum() / counts.sum())
    edges = _edges(ds)
    levels = QUANTILE_LEVELS
    quantiles = histogram_quantiles(hist, edges, levels)
    image_quantiles = (
        np.quantile(scores[ok], levels).tolist() if ok.any() else [math.nan] * len(levels)
    )
    components = {
        name: _number(float(np.mean(np.asarray(overall[name].values, dtype=np.float64)[ok])))
        if ok.any() and name in ds
        else None
        for name in _COMPONENTS
    }
    order = [int(k) for k in np.argsort(np.where(ok, scores, np.inf), kind="stable") if ok[k]]
    component_values = {
        name: np.asarray(overall[name].values, dtype=np.float64)
        for name in _COMPONENTS
        if name in ds
    }
    references = _strings(ds[REFERENCE].values) if REFERENCE in ds.coords else images
    generated = _strings(ds[GENERATED].values) if GENERATED in ds.coords else images
    worst_rows = []
    for k in order[:worst]:
        row: dict[str, Any] = {"image": images[k], "ssim": _number(scores[k])}
        row.update({name: _number(values[k]) for name, values in component_values.items()})
        row.update({"reference": references[k], "generated": generated[k]})
        worst_rows.append(row)
    regions = {}
    for region in _strings(ds[REGION].values):
        values = np.asarray(ds[SSIM].sel({REGION: region}).values, dtype=np.float64)[ok]
        values = values[np.isfinite(values)]
        regions[region] = _number(float(values.mean())) if values.size else None
    unpaired_ref = _attr_list(ds.attrs.get(UNPAIRED_REFERENCE))
    unpaired_gen = _attr_list(ds.attrs.get(UNPAIRED_GENERATED))
    skipped = skipped_files(
        _attr_list(ds.attrs.get(SKIPPED_FILES)),
        folders if folders is not None else _source_folders(ds),
    )
    return {
        "pairs": len(images),
        "ok": int(ok.sum()),
        "failed": int(failed.sum()),
        "pending": int(pending.sum()),
        "unpaired_reference": len(unpaired_ref),
        "unpaired_generated": len(unpaired_gen),
        "skipped_files": len(skipped),
        "mean": _number(float(scores[ok].mean())) if ok.any() else None,
        "pixel_mean": _number(pixel_mean),
        "quantiles": {str(q): _number(v) for q, v in zip(levels, quantiles, strict=True)},
        "image_quantiles": {
            str(q): _number(float(v)) for q, v in zip(levels, image_quantiles, strict=True)
        },
        **components,
        "regions": regions,
        "worst": worst_rows,
        "failures": [
            {"image": images[k], "status": str(status[k])} for k in np.flatnonzero(failed)
        ],
        "unpaired": {"reference": unpaired_ref, "generated": unpaired_gen},
        "skipped": skipped,
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


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
    for name in _COMPONENTS:
        lines.append(f"{name + ' per image':20}{_fmt(summary.get(name)):>8}")
    regions = {k: v for k, v in summary["regions"].items() if k != _ALL}
    if regions:
        lowest = sorted(regions.items(), key=lambda kv: math.inf if kv[1] is None else kv[1])
        shown = ", ".join(f"{terminal_text(k)} {_fmt(v)}" for k, v in lowest[:3])
        lines.append(f"lowest regions: {shown}")
    if summary["worst"]:
        lines += ["", f"worst pairs   {'ssim':>8}{'l':>8}{'c':>8}{'s':>8}  image"]
        for rank, row in enumerate(summary["worst"], 1):
            lines.append(
                f"{rank:>4}          {_fmt(row['ssim']):>8}{_fmt(row.get(LUMINANCE)):>8}"
                f"{_fmt(row.get(CONTRAST)):>8}{_fmt(row.get(STRUCTURE)):>8}  "
                + terminal_text(row["image"])
            )
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
    return "\n".join(lines)
