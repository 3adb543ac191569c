"""The report's one HTML page: self-contained, no script, no external resource.

:func:`html_page` builds the summary table (counts, then the mean and quantiles
of SSIM and its components per image), the figures of
:mod:`pipeline.review.figures` embedded as base64 ``data:`` URIs, the worst
pairs with both of their files, their worst region and where each SSIM map came
from, the failed pairs with their reason, and the files that were not evaluated:
unpaired, ambiguous and skipped. :func:`models_page` builds the page of several
models: their comparison first (ranking with confidence intervals, the matrix of
paired tests, the best model per region, the references they disagree on most),
then one section per model with the single-model content. Text taken from the results (file names,
statuses, attrs) goes through :func:`pipeline.results.text.printable_text` (every
character shows, none acts) and :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.results.schema import (
    AMBIGUOUS,
    COMPONENTS,
    MSE,
    PSNR,
    REGION,
    SKIPPED_FILES,
    SSIM,
    UNPAIRED_GENERATED,
    UNPAIRED_REFERENCE,
)
from pipeline.results.summary import PairRow, ResultsScan
from pipeline.results.text import printable_text, text_values
from pipeline.review.figures import PAGE_WIDTH_PX
from pipeline.review.models import DISAGREEMENT, MODEL, MODEL_PAIR

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["html_page", "models_page"]


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


def _not_evaluated(attrs: Mapping[str, Any], *, level: int = 2, prefix: str = "") -> list[str]:
    """The files the run saw but did not score, each kind in its own table."""
    h = f"h{level}"
    parts = []
    unpaired = [["reference", p] for p in _as_list(attrs.get(UNPAIRED_REFERENCE))]
    unpaired += [["generated", p] for p in _as_list(attrs.get(UNPAIRED_GENERATED))]
    if unpaired:
        parts += [
            f"<{h}>{prefix}Unpaired files</{h}>",
            _table(["side", "file"], unpaired, "files"),
        ]
    ambiguous = [[entry] for entry in _as_list(attrs.get(AMBIGUOUS))]
    if ambiguous:
        parts += [
            f"<{h}>{prefix}Ambiguous stems</{h}>",
            "<p>Several files share a stem; none of them was paired.</p>",
            _table(["stem: files"], ambiguous, "files"),
        ]
    skipped = [[entry] for entry in _as_list(attrs.get(SKIPPED_FILES))]
    if skipped:
        parts += [
            f"<{h}>{prefix}Skipped files</{h}>",
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


def _head(title: str) -> list[str]:
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]


def _counts(attrs: Mapping[str, Any], data: ResultsScan) -> list[list[str]]:
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
    return counts


def _results_body(
    data: ResultsScan,
    figures: Mapping[str, bytes | None],
    map_notes: Sequence[str],
    *,
    level: int = 2,
    prefix: str = "",
) -> list[str]:
    """Distribution, regions, worst and failed pairs of one model's results."""
    h = f"h{level}"
    parts = [
        _table(["per image", "mean", "q05", "q25", "median", "q75", "q95"], _summary_rows(data)),
        _errors_note(data),
        f"<{h}>{prefix}Distribution</{h}>",
        _figure_html(
            figures.get("histogram"),
            "SSIM histogram",
            "SSIM over all valid pixels (left) and per image"
            + (", and PSNR per image (right)." if PSNR in data.ok_values else " (right)."),
        ),
    ]
    if figures.get("regions") is not None:
        parts += [
            f"<{h}>{prefix}Regions</{h}>",
            _figure_html(
                figures["regions"],
                "SSIM per region",
                "Mean SSIM per region: all pairs, then the worst pairs.",
            ),
        ]
    parts += _mean_map_section(figures)
    parts += [
        f"<{h}>{prefix}Worst {len(data.worst)} pairs</{h}>",
        _worst_table(data, map_notes),
    ]
    parts.append(
        _figure_html(
            figures.get("worst"),
            "worst pairs",
            "Reference, generated output and SSIM map; every map on the same colour scale, "
            "0 (black) to 1 (light), values below 0 in blue.",
        )
    )
    if data.failed:
        parts += [
            f"<{h}>{prefix}Failed pairs</{h}>",
            _table(["image", "reason"], data.failed, "failed"),
        ]
        if data.n_failed > len(data.failed):
            parts.append(
                f"<p>The first {len(data.failed):,} of {data.n_failed:,} failed pairs; "
                "the results' <code>status</code> variable has every reason.</p>"
            )
    return parts


def html_page(
    attrs: Mapping[str, Any],
    data: ResultsScan,
    figures: dict[str, bytes | None],
    map_notes: Sequence[str],
) -> str:
    """The page from the results' attrs, their scan, the figures' PNG bytes and map notes."""
    parts = [
        *_head("SSIM report"),
        "<h1>SSIM report</h1>",
        f'<p class="sub">{data.n_pairs:,} pairs; scores are the mean of the valid SSIM map '
        "(region 'all' is the standard score).</p>",
        "<h2>Summary</h2>",
        _table(None, _counts(attrs, data), "counts"),
        *_results_body(data, figures, map_notes),
    ]
    parts += _not_evaluated(attrs)
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


# -- several models ------------------------------------------------------------


def _interval(comparison: xr.Dataset, name: str, k: int, form: str) -> list[str]:
    """Model ``k``'s mean of ``name`` and its interval, as two cells."""
    mean, low, high = (
        float(comparison[f"{name}_{key}"].values[k]) for key in ("mean", "ci_low", "ci_high")
    )
    if not np.isfinite(mean):
        return ["–", "–"]
    return [f"{mean:{form}}", f"{low:{form}} – {high:{form}}"]


def _ranking_table(comparison: xr.Dataset) -> str:
    names = text_values(comparison[MODEL].values)
    with_psnr = f"{PSNR}_mean" in comparison
    order = np.argsort(comparison[f"{SSIM}_rank"].values, kind="stable")
    level = round(100 * float(comparison.attrs["confidence"]))
    rows = []
    for k in order:
        row = [str(int(comparison[f"{SSIM}_rank"].values[k])), names[k]]
        row.append(f"{int(comparison['n_ok'].values[k]):,}")
        row += _interval(comparison, SSIM, int(k), ".4f")
        if with_psnr:
            rank = int(comparison[f"{PSNR}_rank"].values[k])
            row += [str(rank) if rank else "–"]
            row += _interval(comparison, PSNR, int(k), ".2f")
        rows.append(row)
    header = ["SSIM rank", "model", "ok pairs", "mean SSIM", f"SSIM {level}% CI"]
    header += ["PSNR rank", "mean PSNR (dB)", f"PSNR {level}% CI"] if with_psnr else []
    return _table(header, rows, "ranking")


def _test_matrix(comparison: xr.Dataset, score: str = SSIM) -> str:
    """Model against model: mean difference (row - column), Holm-adjusted p-values, n.

    ``score`` SSIM reads the comparison's plain test variables, PSNR its ``psnr_`` ones
    (differences in dB, and the references left out for an infinite PSNR).
    """
    names = text_values(comparison[MODEL].values)
    prefix, digits, unit = ("", ".4f", "") if score == SSIM else (f"{PSNR}_", ".2f", " dB")
    infinite = comparison.get(f"{PSNR}_n_infinite") if score == PSNR else None
    cells = {}
    for k, (a, b) in enumerate(
        zip(
            text_values(comparison["model_a"].values),
            text_values(comparison["model_b"].values),
            strict=True,
        )
    ):
        n = int(comparison[f"{prefix}n_pairs"].values[k])
        diff = float(comparison[f"{prefix}mean_difference"].values[k])
        w = float(comparison[f"{prefix}wilcoxon_p_holm"].values[k])
        t = float(comparison[f"{prefix}t_p_holm"].values[k])
        left_out = 0 if infinite is None else int(infinite.values[k])
        note = f"; {left_out:,} left out (PSNR inf)" if left_out else ""

        def text(
            sign: float,
            w: float = w,
            t: float = t,
            n: int = n,
            diff: float = diff,
            note: str = note,
        ) -> str:
            if n == 0:
                return f"no shared ok pair{note}"
            shown = f"Δ {sign * diff:+{digits}}{unit}"
            return (
                f"{shown}; Wilcoxon p {w:.3g}; t-test p {t:.3g}; n {n:,}{note}"
                if np.isfinite(w) or np.isfinite(t)
                else f"{shown}; n {n:,} (too few to test){note}"
            )

        cells[a, b] = text(1.0)
        cells[b, a] = text(-1.0)
    rows = [[row, *(cells.get((row, col), "–") for col in names)] for row in names]
    return _table(["row − column", *names], rows, "tests")


def _winner_table(comparison: xr.Dataset) -> str:
    names = text_values(comparison[MODEL].values)
    rows = []
    for j, region in enumerate(text_values(comparison[REGION].values)):
        means = comparison["region_mean"].values[:, j]
        winner = text_values(comparison["region_winner"].values)[j]
        rows.append([region, winner or "–", *(f"{v:.4f}" for v in means)])
    return _table(["region", "best model", *names], rows, "winners")


def _disagreement_table(comparison: xr.Dataset, notes: Sequence[str]) -> str:
    names = text_values(comparison[MODEL].values)
    rows = []
    images = text_values(comparison["disagreement_image"].values)
    best = text_values(comparison["best_model"].values)
    worst = text_values(comparison["worst_model"].values)
    for k, image in enumerate(images):
        scores = comparison["disagreement_score"].values[k]
        row = [str(k + 1), image, f"{float(comparison['spread'].values[k]):.4f}"]
        row += [best[k], worst[k], *(f"{v:.4f}" for v in scores)]
        row.append(notes[k] if k < len(notes) and notes[k] else "")
        rows.append(row)
    header = ["#", "image", "spread", "best", "worst", *names, "images"]
    return _table(header, rows, "disagreements")


def _comparison_section(
    comparison: xr.Dataset | None,
    problem: str | None,
    figures: Mapping[str, bytes | None],
    notes: Sequence[str],
) -> list[str]:
    parts = ['<section id="comparison">', "<h2>Model comparison</h2>"]
    if comparison is None:
        parts += [f'<p class="failed">{html.escape(printable_text(problem or ""))}</p>']
        return [*parts, "</section>"]
    attrs = comparison.attrs
    level = round(100 * float(attrs["confidence"]))
    parts += [
        f"<p>{attrs['n_shared']:,} references are ok in every model: the ranking's means are "
        f"over them (PSNR over the {attrs.get('n_psnr', 0):,} of them whose PSNR is finite "
        f"in every model). {level}% intervals: {html.escape(attrs['interval'])} "
        f"({attrs['resamples']:,} resamples, seed {attrs['seed']}).</p>",
        "<h3>Ranking</h3>",
        _ranking_table(comparison),
        "<h3>Paired tests</h3>",
        "<p>Each pair of models on the references ok in both: mean SSIM difference (row "
        "minus column), two-sided Wilcoxon signed-rank and paired t-test p-values, both "
        f"Holm-corrected over the {comparison.sizes[MODEL_PAIR]:,} pairs of models. With n "
        "pairs the Wilcoxon p-value is never below 2 / 2<sup>n</sup>: a few references "
        "cannot show a significant difference however large.</p>",
        _test_matrix(comparison),
    ]
    if f"{PSNR}_t_p_holm" in comparison:
        parts += [
            "<h3>Paired tests on PSNR</h3>",
            "<p>The same tests on each reference's PSNR (difference in dB), Holm-corrected "
            "over the pairs of models on their own. A reference whose PSNR is infinite "
            "(generated pixels equal to the reference's) in either model of a pair is left "
            "out of that pair's PSNR tests and counted in its cell.</p>",
            _test_matrix(comparison, PSNR),
        ]
    if comparison.sizes[REGION] > 1:
        parts += [
            "<h3>Best model per region</h3>",
            _figure_html(
                figures.get("winners"),
                "best model per region",
                "Each grid region coloured by the model of highest mean SSIM there.",
            ),
            _winner_table(comparison),
        ]
    if comparison.sizes[DISAGREEMENT]:
        parts += [
            f"<h3>Where the models disagree most ({comparison.sizes[DISAGREEMENT]})</h3>",
            "<p>The references whose SSIM differs most between the best and the worst model.</p>",
            _disagreement_table(comparison, notes),
            _figure_html(
                figures.get("disagreement"),
                "most-disagreeing references",
                "Reference, then each model's output with its SSIM.",
            ),
        ]
    return [*parts, "</section>"]


def models_page(
    comparison: xr.Dataset | None,
    problem: str | None,
    figures: Mapping[str, bytes | None],
    disagreement_notes: Sequence[str],
    sections: Sequence[
        tuple[str, Mapping[str, Any], ResultsScan, Mapping[str, bytes | None], Sequence[str]]
    ],
) -> str:
    """The page of several models: their comparison first, then one section per model.

    ``comparison`` is :func:`pipeline.review.models.compare_models`'s Dataset (None,
    with ``problem`` saying why, when the models cannot be compared); ``sections``
    are ``(model, its attrs, scan, figures, map notes)`` per model; each lists
    the files its own run did not score.
    """
    names = [name for name, *_ in sections]
    parts = [
        *_head("SSIM report: model comparison"),
        "<h1>SSIM report: model comparison</h1>",
        f'<p class="sub">{len(names)} models on the same references; scores are the mean of '
        "the valid SSIM map (region 'all' is the standard score).</p>",
        *_comparison_section(comparison, problem, figures, disagreement_notes),
        "<h2>Models</h2>",
        "<ul>"
        + "".join(
            f'<li><a href="#model-{k}">{html.escape(printable_text(name))}</a></li>'
            for k, name in enumerate(names)
        )
        + "</ul>",
    ]
    for k, (name, model_attrs, data, model_figures, notes) in enumerate(sections):
        label = html.escape(printable_text(name))
        parts += [
            f'<section id="model-{k}" class="model">',
            f"<h2>Model {label}</h2>",
            _table(None, _counts(model_attrs, data), "counts"),
            *_results_body(data, model_figures, notes, level=3, prefix=f"{label}: "),
            *_not_evaluated(model_attrs, level=3, prefix=f"{label}: "),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)
