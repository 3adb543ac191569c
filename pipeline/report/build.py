"""A report a person would rather look at than read: figures plus one HTML page.

:func:`write_report` turns a results Dataset (the schema in the README's "The result Dataset") into

* ``ssim_histogram.png`` -- the distribution of SSIM over every valid pixel of
  every successful pair (summed ``ssim_hist`` of region ``all``) next to the
  distribution of the per-image scores;
* ``region_heatmap.png`` -- mean SSIM per grid region (``r{i}c{j}``), averaged
  over the successful pairs and for each of the worst pairs; a bar chart for
  label regions; absent when the only region is ``all``;
* ``worst_pairs.png`` -- the ``worst`` lowest-scoring pairs side by side:
  reference, generated, SSIM map;
* ``mean_ssim_map.png`` -- per size group, the mean SSIM map over the mean
  reference image: where in the frame the pairs fail (results with mean maps,
  see the ``mean_maps`` setting; absent otherwise);
* ``report.html`` -- a single self-contained page (figures embedded as base64
  ``data:`` URIs, no script, no external resource) with the summary table, the
  worst pairs, the failed pairs and the unpaired files.

Results of several models (a ``model`` dimension) give a page whose first screen
compares them (:func:`pipeline.review.models.compare_models`: ranking by mean SSIM
and PSNR with bootstrap intervals, paired tests on SSIM and on PSNR, best model per
region, the references they disagree on most), then one section per model with the
content above. The comparison adds ``model_region_winners.png`` (grid regions) and
``model_disagreements.png`` (when the images can be found again); each model's
figures are the files above prefixed ``model<k>_``, ``k`` its position.

SSIM maps come from the Zarr group ``maps`` of the results store when the run
saved them (variable ``ssim`` indexed by ``image``; with several models, each model's
section reads its own group there, ``maps/<model>``); otherwise they are
recomputed in memory for the worst pairs only, with :func:`pipeline.ssim` and the
parameters recorded in the Dataset's attrs, from the files named by the
``reference`` and ``generated`` coordinates. A pair whose files are gone,
unreadable or changed since the run (the recomputed score is not the stored
one) says so in its panel and its row; the rest of the report is written.

The results are opened lazily (:func:`pipeline.results.stores.as_results`) and
read in batches of pairs (:func:`pipeline.results.summary.scan_results`), so a
store of a million pairs is reported in the memory of one batch plus the pair
ids.

Matplotlib is imported inside the functions and used through its object API
(``Figure`` with the Agg canvas), so the global backend of a notebook or
application is never touched.

The data flow, one module per step: :mod:`pipeline.results` opens, checks and
scans the results; :mod:`pipeline.review.figures` draws the figures (``ds.review``
draws its own with the same code); :mod:`pipeline.report.html` builds the page;
this module writes the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.report.html import html_page, models_page
from pipeline.results.schema import ALL_REGION, REGION, check_results
from pipeline.results.stores import as_results
from pipeline.results.summary import REPORT_VARIABLES, ResultsScan, scan_results
from pipeline.results.text import text_values
from pipeline.review.figures import (
    disagreement_figure,
    histogram_figure,
    mean_map_figure,
    png_bytes,
    region_figure,
    region_winner_figure,
    worst_figure,
)
from pipeline.review.models import DISAGREEMENT, compare_models, has_models, split_models

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["MODEL_REPORT_FILES", "REPORT_FILES", "write_report"]

REPORT_FILES = {
    "histogram": "ssim_histogram.png",
    "regions": "region_heatmap.png",
    "worst": "worst_pairs.png",
    "mean_maps": "mean_ssim_map.png",
    "html": "report.html",
}
#: The comparison's figures of results with several models.
MODEL_REPORT_FILES = {
    "winners": "model_region_winners.png",
    "disagreement": "model_disagreements.png",
}
# Most-disagreeing references drawn side by side (the table lists ``worst`` of them).
_DISAGREEMENT_DRAWN = 4


def write_report(
    ds_or_path: xr.Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    worst: int = 6,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write the PNG figures and the self-contained HTML report of a results Dataset.

    Results with a ``model`` dimension get the page of several models: their
    comparison first, then each model's sections (the module docstring lists the
    files).

    Parameters
    ----------
    ds_or_path : xarray.Dataset or path-like
        Results as returned by :func:`pipeline.evaluate`, or the path or URL
        (``s3://``, ``gs://``, ``az://``, ``https://``) of a saved Zarr store (or
        ``.nc`` file), which is read a batch of pairs at a time.
    out_dir : path-like
        Folder for the files in :data:`REPORT_FILES` (created if needed).
    worst : int
        How many of the lowest-scoring pairs to show side by side.
    storage_options : mapping, optional
        Options of the filesystem of a results URL (credentials, endpoint).

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
    ds = as_results(ds_or_path, storage_options=storage_options)
    check_results(ds)
    out.mkdir(parents=True, exist_ok=True)

    if has_models(ds):
        return _write_models_report(ds, out, int(worst))
    data, figures, map_notes = _results_figures(ds, out, int(worst), "")
    page = out / REPORT_FILES["html"]
    page.write_text(html_page(ds.attrs, data, figures, map_notes), encoding="utf-8")
    return page


def _results_figures(
    ds: xr.Dataset, out: Path, worst: int, prefix: str
) -> tuple[ResultsScan, dict[str, bytes | None], list[str]]:
    """Scan one model's results and write its figures (file names prefixed ``prefix``)."""
    data = scan_results(ds, worst, kept=REPORT_VARIABLES)
    figures: dict[str, bytes | None] = {}
    figures["histogram"] = png_bytes(
        histogram_figure(data), out / (prefix + REPORT_FILES["histogram"])
    )
    regions = region_figure(data.regions, data.region_mean, data.worst)
    figures["regions"] = (
        None if regions is None else png_bytes(regions, out / (prefix + REPORT_FILES["regions"]))
    )
    pairs, map_notes = worst_figure(ds, data.worst)
    figures["worst"] = (
        None if pairs is None else png_bytes(pairs, out / (prefix + REPORT_FILES["worst"]))
    )
    figures["mean_maps"] = _mean_map_png(ds, out, prefix)
    return data, figures, map_notes


def _write_models_report(ds: xr.Dataset, out: Path, worst: int) -> Path:
    """The comparison of the models, then each model's own sections, on one page."""
    runs = split_models(ds)
    comparison: xr.Dataset | None = None
    problem = None
    if len(runs) < 2:
        problem = f"only one model ({runs[0][0] if runs else 'none'}): nothing to compare"
    else:
        try:
            comparison = compare_models(runs, disagreements=worst)
        except ValueError as error:  # e.g. no reference ok in every model: said on the page
            problem = f"the models cannot be compared: {error}"
    figures: dict[str, bytes | None] = {}
    notes: list[str] = []
    if comparison is not None:
        regions = [r for r in text_values(comparison[REGION].values) if r != ALL_REGION]
        winners = region_winner_figure(
            regions,
            comparison["region_mean"].sel({REGION: regions}).values,
            text_values(comparison["region_winner"].sel({REGION: regions}).values),
            [name for name, _ in runs],
        )
        figures["winners"] = (
            None if winners is None else png_bytes(winners, out / MODEL_REPORT_FILES["winners"])
        )
        drawn = comparison.isel({DISAGREEMENT: slice(0, _DISAGREEMENT_DRAWN)})
        figure, notes = disagreement_figure(
            runs,
            text_values(drawn["disagreement_image"].values),
            drawn["disagreement_position"].values,
            drawn["disagreement_score"].values,
        )
        figures["disagreement"] = (
            None if figure is None else png_bytes(figure, out / MODEL_REPORT_FILES["disagreement"])
        )
    sections = []
    for k, (name, results) in enumerate(runs):
        data, model_figures, map_notes = _results_figures(results, out, worst, f"model{k}_")
        sections.append((name, results.attrs, data, model_figures, map_notes))
    page = out / REPORT_FILES["html"]
    page.write_text(models_page(comparison, problem, figures, notes, sections), encoding="utf-8")
    return page


def _mean_map_png(ds: xr.Dataset, out: Path, prefix: str = "") -> bytes | None:
    """The mean SSIM map figure's PNG (None without mean maps); a stale file is removed."""
    path = out / (prefix + REPORT_FILES["mean_maps"])
    figure = mean_map_figure(ds)
    if figure is None:
        path.unlink(missing_ok=True)
        return None
    return png_bytes(figure, path)
