"""A report a person would rather look at than read: figures plus one HTML page.

:func:`write_report` turns a results Dataset (the schema in DESIGN.md) into

* ``ssim_histogram.png`` -- the distribution of SSIM over every valid pixel of
  every successful pair (summed ``ssim_hist`` of region ``all``) next to the
  distribution of the per-image scores;
* ``region_heatmap.png`` -- mean SSIM per grid region (``r{i}c{j}``), averaged
  over the successful pairs and for each of the worst pairs; a bar chart for
  label regions; absent when the only region is ``all``;
* ``worst_pairs.png`` -- the ``worst`` lowest-scoring pairs side by side:
  reference, generated, SSIM map;
* ``report.html`` -- a single self-contained page (figures embedded as base64
  ``data:`` URIs, no script, no external resource) with the summary table, the
  worst pairs, the failed pairs and the unpaired files.

SSIM maps come from the Zarr group ``maps`` of the results store when the run
saved them (variable ``ssim`` indexed by ``image``); otherwise they are
recomputed in memory for the worst pairs only, with :func:`pipeline.ssim` and the
parameters recorded in the Dataset's attrs, from the files named by the
``reference`` and ``generated`` coordinates.

Matplotlib is imported inside the functions and used through its object API
(``Figure`` with the Agg canvas), so the global backend of a notebook or
application is never touched.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.dataset import (
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
from pipeline.regions import ALL_REGION

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["REPORT_FILES", "write_report"]

REPORT_FILES = {
    "histogram": "ssim_histogram.png",
    "regions": "region_heatmap.png",
    "worst": "worst_pairs.png",
    "html": "report.html",
}

_REQUIRED_VARIABLES = (SSIM, LUMINANCE, CONTRAST, STRUCTURE, SSIM_HIST, STATUS)
_REQUIRED_COORDS = (IMAGE, REGION, REFERENCE, GENERATED)
_COMPONENTS = (LUMINANCE, CONTRAST, STRUCTURE)
_GRID_REGION = re.compile(r"^r(\d+)c(\d+)$")
# SSIM parameters as the result attrs record them (``ssim_`` + parameter name).
_SSIM_PARAMS = ("window", "win_size", "sigma", "k1", "k2", "covariance")
_DPI = 100


@dataclass(frozen=True)
class _WorstPair:
    image: str
    reference: str
    generated: str
    score: float


# ---------------------------------------------------------------------------
# inputs


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


# ---------------------------------------------------------------------------
# figures


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _png_bytes(figure: Figure, path: Path) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def _histogram_figure(ds: xr.Dataset, ok: np.ndarray) -> Figure:
    hist = _overall(ds, SSIM_HIST)[ok]
    pooled = hist.sum(axis=0)
    if BIN_LOWER in ds.coords and BIN_UPPER in ds.coords:
        edges = np.append(ds[BIN_LOWER].values, ds[BIN_UPPER].values[-1]).astype(float)
    else:  # DESIGN.md: fixed equal bins over [-1, 1]
        edges = np.linspace(-1.0, 1.0, pooled.shape[0] + 1)
    figure = _new_figure(10, 3.6)
    left, right = figure.subplots(1, 2)
    total = pooled.sum()
    density = pooled / (total * np.diff(edges)) if total > 0 else pooled
    left.stairs(density, edges, fill=True, color="#4c72b0")
    left.set_xlim(_histogram_xlim(pooled, edges))
    left.set_xlabel("local SSIM (every valid pixel, all pairs)")
    left.set_ylabel("density")
    left.set_title(f"SSIM map values ({int(total):,} pixels)")
    scores = _overall(ds, SSIM)[ok]
    right.hist(scores, bins=min(30, max(5, scores.size)), color="#dd8452", edgecolor="white")
    if scores.size:
        right.axvline(float(scores.mean()), color="black", linestyle="--", label="mean")
        right.legend(loc="upper left")
    right.set_xlabel("SSIM per image (region 'all')")
    right.set_ylabel("pairs")
    right.set_title(f"Image scores ({scores.size} pairs)")
    return figure


def _histogram_xlim(counts: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Zoom on the occupied part of [-1, 1] (most GAN outputs live above 0)."""
    occupied = np.flatnonzero(counts > 0)
    if occupied.size == 0:
        return -1.0, 1.0
    low = max(-1.0, float(edges[occupied[0]]) - 0.05)
    return low, 1.0


def _grid_shape(regions: Sequence[str]) -> tuple[int, int] | None:
    cells = [_GRID_REGION.match(name) for name in regions if name != ALL_REGION]
    if not cells or not all(cells):
        return None
    rows = 1 + max(int(m.group(1)) for m in cells if m)
    cols = 1 + max(int(m.group(2)) for m in cells if m)
    return rows, cols


def _grid_values(values: np.ndarray, regions: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    grid = np.full(shape, np.nan)
    for value, name in zip(values, regions, strict=True):
        match = _GRID_REGION.match(name)
        if match:
            grid[int(match.group(1)), int(match.group(2))] = value
    return grid


def _region_figure(ds: xr.Dataset, ok: np.ndarray, worst: Sequence[_WorstPair]) -> Figure | None:
    others = [r for r in _strings(ds[REGION].values) if r != ALL_REGION]
    if not others:
        return None
    table = ds[SSIM].sel({REGION: others})
    values = np.asarray(table.values, dtype=np.float64)[ok]
    mean = np.nanmean(values, axis=0) if values.size else np.full(len(others), np.nan)
    shape = _grid_shape(others)
    if shape is None:
        return _region_bars(others, mean)
    panels = [("mean of all pairs", mean)]
    image_ids = _strings(ds[IMAGE].values)
    for pair in worst[:4]:
        row = np.asarray(table.values[image_ids.index(pair.image)], dtype=np.float64)
        panels.append((f"{pair.image}\n(SSIM {pair.score:.3f})", row))
    finite = np.concatenate([p[1][np.isfinite(p[1])] for p in panels])
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = max(1e-6 + vmin, float(finite.max())) if finite.size else 1.0
    figure = _new_figure(3.2 * len(panels) + 0.8, 3.4)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    image = None
    for axis, (title, row) in zip(axes, panels, strict=True):
        grid = _grid_values(row, others, shape)
        image = axis.imshow(grid, cmap="RdYlGn", vmin=vmin, vmax=vmax)
        axis.set_title(title, fontsize=9)
        axis.set_xticks(range(shape[1]), [f"c{j}" for j in range(shape[1])], fontsize=7)
        axis.set_yticks(range(shape[0]), [f"r{i}" for i in range(shape[0])], fontsize=7)
        if shape[0] * shape[1] <= 64:
            for (i, j), value in np.ndenumerate(grid):
                if np.isfinite(value):
                    # Light text on the dark ends of the colour map, dark text elsewhere.
                    shade = (value - vmin) / (vmax - vmin)
                    colour = "white" if shade < 0.2 or shade > 0.85 else "black"
                    axis.text(
                        j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=colour
                    )
    if image is not None:
        figure.colorbar(image, ax=list(axes), shrink=0.8, label="mean SSIM in region")
    figure.suptitle("SSIM per region (lower = where the generator fails)")
    return figure


def _region_bars(names: Sequence[str], mean: np.ndarray) -> Figure:
    figure = _new_figure(7, 0.35 * len(names) + 1.5)
    axis = figure.subplots()
    axis.barh(list(names), mean, color="#55a868")
    axis.invert_yaxis()
    axis.set_xlabel("mean SSIM over all pairs")
    axis.set_title("SSIM per region")
    return figure


def _load_image(path: str) -> np.ndarray | None:
    from pipeline.images import ImageDecodeError, decode_image

    try:
        return decode_image(path)
    except ImageDecodeError:
        return None


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image scaled to [0, 1] for imshow, and the colour map for grey."""
    values = image.astype(np.float64)
    if image.dtype.kind in "ui":
        values /= np.iinfo(image.dtype).max
    else:
        span = float(values.max() - values.min()) or 1.0
        values = (values - values.min()) / span
    return np.clip(values, 0.0, 1.0), ("gray" if image.ndim == 2 else None)


def _worst_figure(ds: xr.Dataset, worst: Sequence[_WorstPair]) -> tuple[Figure | None, list[str]]:
    """The worst pairs side by side, and a note per pair on where its map came from."""
    if not worst:
        return None, []
    figure = _new_figure(11, 3.3 * len(worst))
    axes = np.asarray(figure.subplots(len(worst), 3, squeeze=False))
    notes = []
    for row, pair in zip(axes, worst, strict=True):
        # pipeline.review_maps (behind ds.review.pair_data) owns where maps and images are
        # found (saved maps, files, Zarr stacks) and how a missing map is recomputed.
        reference, generated, found, source = ds.review.pair_data(pair.image)
        ssim_map = found.get(SSIM)
        notes.append(source if ssim_map is not None else "unavailable")
        for axis, title, image in (
            (row[0], f"reference\n{pair.image}", reference),
            (row[1], f"generated\n{Path(pair.generated).name}", generated),
        ):
            if image is None:
                axis.text(0.5, 0.5, "file not readable", ha="center", va="center")
            else:
                shown, cmap = _display(image)
                axis.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
            axis.set_title(title, fontsize=9)
            axis.set_axis_off()
        if ssim_map is None:
            row[2].text(0.5, 0.5, "SSIM map unavailable", ha="center", va="center")
        else:
            low = min(0.0, float(ssim_map.min()))
            mappable = row[2].imshow(ssim_map, cmap="magma", vmin=low, vmax=1.0)
            figure.colorbar(mappable, ax=row[2], shrink=0.85)
        row[2].set_title(f"SSIM map ({notes[-1]}), score {pair.score:.3f}", fontsize=9)
        row[2].set_axis_off()
    return figure, notes


# ---------------------------------------------------------------------------
# HTML


def _summary_rows(ds: xr.Dataset, ok: np.ndarray) -> list[list[str]]:
    rows = []
    for name in (SSIM, *_COMPONENTS):
        values = _overall(ds, name)[ok]
        values = values[np.isfinite(values)]
        if values.size == 0:
            rows.append([name, *["–"] * 6])
            continue
        q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append([name, f"{values.mean():.4f}", *(f"{v:.4f}" for v in q)])
    return rows


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], css: str = "") -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header or ())
    head = f"<thead><tr>{cells}</tr></thead>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return ""
    return (
        f'<figure><img src="{_data_uri(png)}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()  # NetCDF stores a list of strings one per line
    return [str(v) for v in np.asarray(value).ravel()]


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.counts td{text-align:left}figure{margin:1.2rem 0}img{max-width:100%;height:auto}
figcaption{color:#555;font-size:.9rem}.failed td{text-align:left;color:#a00}
"""


def _html_page(
    ds: xr.Dataset,
    ok: np.ndarray,
    worst: Sequence[_WorstPair],
    figures: dict[str, bytes | None],
    map_notes: Sequence[str],
) -> str:
    status = _strings(ds[STATUS].values)
    image_ids = _strings(ds[IMAGE].values)
    unpaired_ref = _as_list(ds.attrs.get("unpaired_reference"))
    unpaired_gen = _as_list(ds.attrs.get("unpaired_generated"))
    counts = [
        ["pairs", str(len(image_ids))],
        ["ok", str(int(ok.sum()))],
        ["failed", str(int((~ok).sum()))],
        ["unpaired reference files", str(len(unpaired_ref))],
        ["unpaired generated files", str(len(unpaired_gen))],
    ]
    for key in ("profile", "color_mode", "data_range", "package_version", "created"):
        if key in ds.attrs:
            counts.append([key, str(ds.attrs[key])])
    index = {name: k for k, name in enumerate(image_ids)}
    regions = [r for r in _strings(ds[REGION].values) if r != ALL_REGION]
    worst_rows = []
    for rank, pair in enumerate(worst, start=1):
        k = index[pair.image]
        row = [str(rank), pair.image, f"{pair.score:.4f}"]
        row += [f"{_overall(ds, name)[k]:.4f}" for name in _COMPONENTS]
        if regions:
            values = np.asarray(ds[SSIM].sel({REGION: regions}).values[k], dtype=np.float64)
            where = regions[int(np.nanargmin(values))] if np.isfinite(values).any() else "–"
            row.append(where)
        row.append(map_notes[rank - 1] if rank - 1 < len(map_notes) else "–")
        worst_rows.append(row)
    worst_header = ["#", "image", "ssim", *_COMPONENTS]
    worst_header += ["worst region"] if regions else []
    worst_header += ["SSIM map"]
    failed_rows = [[image_ids[k], status[k]] for k in np.flatnonzero(~ok)]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>SSIM report</title><style>{_CSS}</style></head><body>",
        "<h1>SSIM report</h1>",
        f'<p class="sub">{len(image_ids)} pairs; scores are the mean of the valid SSIM map '
        "(region 'all' is the standard score).</p>",
        "<h2>Summary</h2>",
        _table(None, counts, "counts"),
        _table(["per image", "mean", "q05", "q25", "median", "q75", "q95"], _summary_rows(ds, ok)),
        "<h2>Distribution</h2>",
        _figure_html(
            figures.get("histogram"),
            "SSIM histogram",
            "SSIM over all valid pixels (left) and per image (right).",
        ),
    ]
    if figures.get("regions") is not None:
        parts += [
            "<h2>Regions</h2>",
            _figure_html(
                figures["regions"],
                "SSIM per region",
                "Mean SSIM per region: all pairs, then the worst pairs.",
            ),
        ]
    parts += [f"<h2>Worst {len(worst)} pairs</h2>", _table(worst_header, worst_rows)]
    parts.append(
        _figure_html(
            figures.get("worst"),
            "worst pairs",
            "Reference, generated output and SSIM map (dark = dissimilar).",
        )
    )
    if failed_rows:
        parts += ["<h2>Failed pairs</h2>", _table(["image", "reason"], failed_rows, "failed")]
    if unpaired_ref or unpaired_gen:
        unpaired = [["reference", p] for p in unpaired_ref] + [
            ["generated", p] for p in unpaired_gen
        ]
        parts += ["<h2>Unpaired files</h2>", _table(["side", "file"], unpaired, "counts")]
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


# ---------------------------------------------------------------------------
# entry point


def write_report(
    ds_or_path: xr.Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    worst: int = 6,
) -> Path:
    """Write the PNG figures and the self-contained HTML report of a results Dataset.

    Parameters
    ----------
    ds_or_path : xarray.Dataset or path-like
        Results as returned by :func:`pipeline.evaluate`, or the path of a saved
        Zarr store (or ``.nc`` file).
    out_dir : path-like
        Folder for the files in :data:`REPORT_FILES` (created if needed).
    worst : int
        How many of the lowest-scoring pairs to show side by side.

    Returns
    -------
    pathlib.Path
        The HTML page.

    Raises
    ------
    FileNotFoundError
        The results path does not exist.
    ValueError
        ``worst`` is not a positive integer, or the Dataset lacks the schema.
    NotADirectoryError
        ``out_dir`` exists and is a file.
    """
    if isinstance(worst, bool) or not isinstance(worst, int | np.integer) or worst < 1:
        raise ValueError(f"worst must be a positive integer (got {worst!r})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"report output must be a folder, got a file: {out}")
    ds = _open_results(ds_or_path)
    _check_schema(ds)
    out.mkdir(parents=True, exist_ok=True)

    ok = _ok_mask(ds)
    scores = _overall(ds, SSIM)
    order = [int(k) for k in np.argsort(scores, kind="stable") if ok[k]][:worst]
    worst_pairs = [
        _WorstPair(
            image=str(ds[IMAGE].values[k]),
            reference=str(ds[REFERENCE].values[k]),
            generated=str(ds[GENERATED].values[k]),
            score=float(scores[k]),
        )
        for k in order
    ]
    figures: dict[str, bytes | None] = {}
    figures["histogram"] = _png_bytes(_histogram_figure(ds, ok), out / REPORT_FILES["histogram"])
    region_figure = _region_figure(ds, ok, worst_pairs)
    figures["regions"] = (
        None if region_figure is None else _png_bytes(region_figure, out / REPORT_FILES["regions"])
    )
    worst_figure, map_notes = _worst_figure(ds, worst_pairs)
    figures["worst"] = (
        None if worst_figure is None else _png_bytes(worst_figure, out / REPORT_FILES["worst"])
    )
    page = out / REPORT_FILES["html"]
    page.write_text(_html_page(ds, ok, worst_pairs, figures, map_notes), encoding="utf-8")
    return page
