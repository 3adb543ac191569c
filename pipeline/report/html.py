"""The report's one HTML page: self-contained, no script, no external resource.

:func:`html_page` builds the summary table (counts, then the mean and quantiles
of SSIM and its components per image), the figures of
:mod:`pipeline.review.figures` embedded as base64 ``data:`` URIs, the worst
pairs with both of their files, their worst region and where each SSIM map came
from, the failed pairs with their reason, and the files that were not evaluated:
unpaired, ambiguous and skipped. Text taken from the results (file names,
statuses, attrs) goes through :func:`pipeline.results.text.printable_text` (every
character shows, none acts) and :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.results.schema import (
    AMBIGUOUS,
    COMPONENTS,
    MSE,
    PSNR,
    SKIPPED_FILES,
    SSIM,
    UNPAIRED_GENERATED,
    UNPAIRED_REFERENCE,
)
from pipeline.results.summary import PairRow, ResultsScan
from pipeline.results.text import printable_text
from pipeline.review.figures import PAGE_WIDTH_PX

__all__ = ["html_page"]


def _summary_rows(data: ResultsScan) -> list[list[str]]:
    rows = []
    for name in (SSIM, *COMPONENTS):
        values = data.scores[name]
        if values.size == 0:
            rows.append([name, *["–"] * 6])
            continue
        q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append([name, f"{values.mean():.4f}", *(f"{v:.4f}" for v in q)])
    # Beside SSIM, when the results have them: PSNR (dB) and MSE over every pixel.
    for name, label, form in ((PSNR, "psnr (dB)", ".2f"), (MSE, "mse", ".6g")):
        if name not in data.ok_values:
            continue
        values = data.scores[name]
        if values.size == 0:
            rows.append([label, *["–"] * 6])
            continue
        q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append([label, f"{values.mean():{form}}", *(f"{v:{form}}" for v in q)])
    return rows


def _psnr_text(pair: PairRow) -> str:
    """A pair's PSNR in dB; ``inf`` for identical pixels."""
    psnr = pair.errors[1]
    if np.isinf(psnr):
        return "inf"
    return "–" if np.isnan(psnr) else f"{psnr:.2f}"


def _errors_note(data: ResultsScan) -> str:
    """What PSNR and MSE are taken over, and the identical pairs their rows leave out."""
    if PSNR not in data.ok_values:
        return ""
    text = (
        "PSNR and MSE are taken over every pixel of each image (all channels), not only "
        "the valid SSIM map, with the run's data_range."
    )
    if data.n_identical:
        text += (
            f" {data.n_identical:,} pair(s) have identical pixels (PSNR inf): they are left "
            "out of the PSNR row."
        )
    return f"<p>{html.escape(text)}</p>"


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], css: str = "") -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header or ())
    head = f"<thead><tr>{cells}</tr></thead>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(printable_text(str(c)))}</td>" for c in row) + "</tr>"
        for row in rows
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


# The content is PAGE_WIDTH_PX wide (padding outside it), so figures show unscaled.
# Names break anywhere: one long file name must not widen a table past the page.
_CSS = f"""
body{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;
max-width:{PAGE_WIDTH_PX}px;color:#222;padding:0 16px}}
h1{{margin-bottom:.2rem}}.sub{{color:#666;margin-top:0}}
table{{border-collapse:collapse;margin:1rem 0;font-size:.92rem}}
th,td{{border:1px solid #ddd;padding:.3rem .6rem;text-align:right;overflow-wrap:anywhere}}
th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}
.counts td,.files td{{text-align:left}}figure{{margin:1.2rem 0}}img{{max-width:100%;height:auto}}
figcaption{{color:#555;font-size:.9rem}}.failed td{{text-align:left;color:#a00}}
"""


def _worst_table(data: ResultsScan, map_notes: Sequence[str]) -> str:
    rows = []
    with_psnr = PSNR in data.ok_values
    for rank, pair in enumerate(data.worst, start=1):
        row = [str(rank), pair.image, f"{pair.score:.4f}"]
        row += [f"{value:.4f}" for value in pair.components]
        if with_psnr:
            row.append(_psnr_text(pair))
        if data.regions:
            values = np.asarray(pair.region_values, dtype=np.float64)
            finite = np.isfinite(values)
            row.append(data.regions[int(np.nanargmin(values))] if finite.any() else "–")
        row.append(map_notes[rank - 1] if rank - 1 < len(map_notes) else "–")
        row += [pair.reference, pair.generated]
        rows.append(row)
    header = ["#", "image", "ssim", *COMPONENTS]
    header += ["psnr (dB)"] if with_psnr else []
    header += ["worst region"] if data.regions else []
    header += ["SSIM map", "reference file", "generated file"]
    return _table(header, rows, "files")


def _not_evaluated(attrs: Mapping[str, Any]) -> list[str]:
    """The files the run saw but did not score, each kind in its own table."""
    parts = []
    unpaired = [["reference", p] for p in _as_list(attrs.get(UNPAIRED_REFERENCE))]
    unpaired += [["generated", p] for p in _as_list(attrs.get(UNPAIRED_GENERATED))]
    if unpaired:
        parts += ["<h2>Unpaired files</h2>", _table(["side", "file"], unpaired, "files")]
    ambiguous = [[entry] for entry in _as_list(attrs.get(AMBIGUOUS))]
    if ambiguous:
        parts += [
            "<h2>Ambiguous stems</h2>",
            "<p>Several files share a stem; none of them was paired.</p>",
            _table(["stem: files"], ambiguous, "files"),
        ]
    skipped = [[entry] for entry in _as_list(attrs.get(SKIPPED_FILES))]
    if skipped:
        parts += [
            "<h2>Skipped files</h2>",
            "<p>Entries of the folders that are not images the run reads.</p>",
            _table(["side/file (why)"], skipped, "files"),
        ]
    return parts


def _mean_map_section(figures: Mapping[str, bytes | None]) -> list[str]:
    """The "Where in the frame" section: the mean SSIM maps, when the results have them."""
    if figures.get("mean_maps") is None:
        return []
    return [
        "<h2>Where in the frame</h2>",
        _figure_html(
            figures["mean_maps"],
            "mean SSIM map",
            "Per size group: the mean reference image (left) and the mean SSIM map over the "
            "successful pairs drawn over it (right), on the valid region (half a window cut "
            "at each border); dark areas are where the outputs differ most, in every pair.",
        ),
    ]


def html_page(
    attrs: Mapping[str, Any],
    data: ResultsScan,
    figures: dict[str, bytes | None],
    map_notes: Sequence[str],
) -> str:
    """The page from the results' attrs, their scan, the figures' PNG bytes and map notes."""
    counts = [
        ["pairs", f"{data.n_pairs:,}"],
        ["ok", f"{data.n_ok:,}"],
        ["failed", f"{data.n_failed:,}"],
    ]
    for key, label in (
        (UNPAIRED_REFERENCE, "unpaired reference files"),
        (UNPAIRED_GENERATED, "unpaired generated files"),
        (AMBIGUOUS, "ambiguous stems"),
        (SKIPPED_FILES, "skipped files"),
    ):
        counts.append([label, f"{len(_as_list(attrs.get(key))):,}"])
    for key in ("profile", "color_mode", "data_range", "package_version", "created"):
        if key in attrs:
            counts.append([key, str(attrs[key])])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>SSIM report</title><style>{_CSS}</style></head><body>",
        "<h1>SSIM report</h1>",
        f'<p class="sub">{data.n_pairs:,} pairs; scores are the mean of the valid SSIM map '
        "(region 'all' is the standard score).</p>",
        "<h2>Summary</h2>",
        _table(None, counts, "counts"),
        _table(["per image", "mean", "q05", "q25", "median", "q75", "q95"], _summary_rows(data)),
        _errors_note(data),
        "<h2>Distribution</h2>",
        _figure_html(
            figures.get("histogram"),
            "SSIM histogram",
            "SSIM over all valid pixels (left) and per image"
            + (", and PSNR per image (right)." if PSNR in data.ok_values else " (right)."),
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
    parts += _mean_map_section(figures)
    parts += [f"<h2>Worst {len(data.worst)} pairs</h2>", _worst_table(data, map_notes)]
    parts.append(
        _figure_html(
            figures.get("worst"),
            "worst pairs",
            "Reference, generated output and SSIM map; every map on the same colour scale, "
            "0 (black) to 1 (light), values below 0 in blue.",
        )
    )
    if data.failed:
        parts += ["<h2>Failed pairs</h2>", _table(["image", "reason"], data.failed, "failed")]
        if data.n_failed > len(data.failed):
            parts.append(
                f"<p>The first {len(data.failed):,} of {data.n_failed:,} failed pairs; "
                "the results' <code>status</code> variable has every reason.</p>"
            )
    parts += _not_evaluated(attrs)
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)
