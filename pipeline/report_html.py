"""The report's one HTML page: self-contained, no script, no external resource.

:func:`_html_page` builds the summary table (counts, then the mean and quantiles
of SSIM and its components per image), the figures of
:mod:`pipeline.report_figures` embedded as base64 ``data:`` URIs, the worst
pairs with their worst region and where each SSIM map came from, the failed
pairs with their reason and the unpaired files. Text taken from the results
(file names, statuses, attrs) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.dataset import IMAGE, REGION, SSIM, STATUS
from pipeline.regions import ALL_REGION
from pipeline.report_inputs import _COMPONENTS, _overall, _strings, _WorstPair

if TYPE_CHECKING:
    import xarray as xr


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
