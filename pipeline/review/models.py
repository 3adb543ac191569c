"""Several models on the same references: ranking, paired tests, region winners, disagreement.

A results Dataset with a ``model`` dimension (:func:`pipeline.evaluate` with several
generated sources) holds every model's scores on the same references; so do separate
single-model results of the same references. :func:`compare_models` compares them:

* **ranking** -- each model's mean SSIM and mean PSNR (region ``all``) over the
  *shared* references (ok in every model, so every mean is over the same images),
  with percentile bootstrap confidence intervals. The bootstrap resamples the shared
  references, the same draws for every model, from a seeded generator. Why a
  bootstrap and not a t-interval: per-image SSIM is bounded by 1 and skewed towards
  it, so the t-interval's normal mean is a poor guess for the tens of references a
  comparison often has, while the percentile bootstrap needs no shape; drawing the
  same references for every model keeps the intervals about the very sample the
  ranking ranks. PSNR ``inf`` (identical pixels) has no mean: the PSNR ranking is
  over the shared references whose PSNR is finite in every model.
* **paired tests** -- for every pair of models, on the references ok in *both*: the
  Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, two-sided, its default
  method) and the paired t-test (:func:`scipy.stats.ttest_rel`) of the per-image
  differences, each with Holm's step-down correction over the pairs of models
  (Holm 1979: the ``i``-th smallest of ``m`` p-values is multiplied by ``m - i + 1``,
  then made monotone), since ``m = M (M - 1) / 2`` tests of ``M`` models would
  find a "difference" by chance at the 5 % level far more often than one in twenty.
  The same tests on PSNR (region ``all``) when every result has it, as ``psnr_``
  variables (``psnr_wilcoxon_p_holm`` ...), Holm-corrected over the pairs of models
  on their own (one family of tests per score). PSNR is ``inf`` where a model's
  pixels equal the reference's: an infinite difference has no rank or mean worth
  testing, so a reference whose PSNR is ``inf`` in either model of a pair is left
  out of that pair's PSNR tests, and ``psnr_n_infinite`` counts them (a model that
  reproduces references exactly shows there, and in its SSIM of 1, not in the PSNR
  p-values).
* **region winner** -- per region, the model whose mean over the shared references
  is best (highest; lowest for ``mse``).
* **disagreements** -- the shared references where the models' region-``all``
  scores spread most (largest minus smallest), each model's score beside them.

SciPy is imported only when the statistics are computed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from pipeline.results.schema import ALL_REGION, IMAGE, MODEL, MODEL_ATTRS, PSNR, REGION, SSIM
from pipeline.results.summary import model_results
from pipeline.results.text import text_values
from pipeline.review.tables import LOWER_IS_BETTER, image_ids, ok_mask, region_names

__all__ = [
    "DISAGREEMENT",
    "MODEL",
    "MODEL_ATTRS",
    "MODEL_PAIR",
    "compare_models",
    "has_models",
    "holm_adjusted",
    "model_names",
    "split_models",
]

#: The dimension of the paired tests: one entry per pair of models (``"a vs b"``).
MODEL_PAIR = "model_pair"
#: The dimension of the most-disagreeing references, most first.
DISAGREEMENT = "disagreement"
# Resampled values held at once by the bootstrap (float64: 32 MB).
_BOOTSTRAP_VALUES = 2**22


def has_models(ds: xr.Dataset) -> bool:
    """Whether ``ds`` holds several generated sources (a ``model`` dimension)."""
    return MODEL in ds.dims


def model_names(ds: xr.Dataset) -> list[str]:
    """The model names of a Dataset with a ``model`` dimension, in order."""
    return text_values(ds[MODEL].values)


def split_models(ds: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    """``(name, that model's results)`` per model; each equals the model's own single run.

    The attrs of each are the run's, with the model's own from ``model_attrs`` over them
    (where its images are, which files it left unpaired): see
    :func:`pipeline.results.summary.model_results`.
    """
    return list(model_results(ds).items())


def holm_adjusted(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted).

    Examples
    --------
    >>> holm_adjusted(np.array([0.01, 0.04, 0.03])).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    running = 0.0
    for rank, k in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(p[k])))
        out[k] = running
    return out


def _scores(ds: xr.Dataset, variable: str, positions: list[int]) -> np.ndarray:
    """``(shared images, regions)`` of ``variable``; NaN where the pair is not ok."""
    table = np.asarray(ds[variable].isel({IMAGE: positions}).values, dtype=np.float64)
    table[~ok_mask(ds)[positions]] = np.nan
    return table


def _bootstrap_interval(
    values: np.ndarray, confidence: float, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the column means of ``(n, models)`` values."""
    n, models = values.shape
    means = np.empty((resamples, models))
    step = max(1, _BOOTSTRAP_VALUES // max(1, n * models))
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        draws = rng.integers(0, n, size=(count, n))
        means[start : start + count] = values[draws].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def _ranks(means: np.ndarray) -> np.ndarray:
    """1 for the highest mean, then down; NaN means rank last (as 0)."""
    order = np.argsort(-np.where(np.isfinite(means), means, -np.inf), kind="stable")
    ranks = np.empty(means.size, dtype=np.int64)
    ranks[order] = np.arange(1, means.size + 1)
    return np.where(np.isfinite(means), ranks, 0)


def _paired_tests(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Wilcoxon signed-rank and paired t-test of ``x - y``: statistics and p-values.

    Degenerate samples, where SciPy would answer NaN with a warning, are settled
    here: no pair or one pair, nothing to test (NaN); all differences zero, no
    difference (p 1); a constant non-zero difference, a certain one for the t-test
    (t infinite, p 0).
    """
    from scipy import stats

    difference = x - y
    n = difference.size
    if n < 2:
        return math.nan, math.nan, math.nan, math.nan
    if not np.any(difference):
        return math.nan, 1.0, 0.0, 1.0
    with warnings.catch_warnings():
        # Zero differences or ties make SciPy switch to its normal approximation and say so.
        warnings.simplefilter("ignore", UserWarning)
        wilcoxon = stats.wilcoxon(x, y)
    if np.all(difference == difference[0]):
        t_statistic, t_p = math.copysign(math.inf, float(difference[0])), 0.0
    else:
        t_test = stats.ttest_rel(x, y)
        t_statistic, t_p = float(t_test.statistic), float(t_test.pvalue)
    return float(wilcoxon.statistic), float(wilcoxon.pvalue), t_statistic, t_p


def _pair_columns(
    values: np.ndarray, ok: np.ndarray, pairs: list[tuple[int, int]], lower_better: bool
) -> dict[str, np.ndarray]:
    """The paired tests of every pair of models on the references ``ok`` in both.

    ``values`` and ``ok`` are ``(model, reference)``. Returns one array over the pairs
    per column: ``n_pairs``, ``mean_difference`` (a - b), ``wins_a``, ``wins_b``,
    ``wilcoxon_statistic``, ``wilcoxon_p``, ``t_statistic``, ``t_p`` and both p-values
    Holm-adjusted over the pairs (``wilcoxon_p_holm``, ``t_p_holm``).
    """
    columns: dict[str, list[float]] = {
        key: []
        for key in (
            "n_pairs",
            "mean_difference",
            "wins_a",
            "wins_b",
            "wilcoxon_statistic",
            "wilcoxon_p",
            "t_statistic",
            "t_p",
        )
    }
    for i, j in pairs:
        both = ok[i] & ok[j]
        x, y = values[i, both], values[j, both]
        better = (y - x) if lower_better else (x - y)
        columns["n_pairs"].append(int(both.sum()))
        columns["mean_difference"].append(float((x - y).mean()) if both.any() else math.nan)
        columns["wins_a"].append(int((better > 0).sum()))
        columns["wins_b"].append(int((better < 0).sum()))
        w_statistic, w_p, t_statistic, t_p = _paired_tests(x, y)
        columns["wilcoxon_statistic"].append(w_statistic)
        columns["wilcoxon_p"].append(w_p)
        columns["t_statistic"].append(t_statistic)
        columns["t_p"].append(t_p)
    out = {
        key: np.asarray(
            column, dtype=np.int64 if key in ("n_pairs", "wins_a", "wins_b") else np.float64
        )
        for key, column in columns.items()
    }
    out["wilcoxon_p_holm"] = holm_adjusted(out["wilcoxon_p"])
    out["t_p_holm"] = holm_adjusted(out["t_p"])
    return out


def compare_models(
    runs: Sequence[tuple[str, xr.Dataset]],
    *,
    variable: str = SSIM,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    disagreements: int = 10,
) -> xr.Dataset:
    """Rank, test and confront several models' results (the module docstring says how).

    ``runs`` are ``(name, single-model results)`` with the result schema, names
    unique, at least two; they are aligned on the image ids all of them have (in the
    first one's order) and the regions all of them have. Arguments, result and
    errors as in :meth:`pipeline.review.accessor.ReviewAccessor.compare`.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence!r})")
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer (got {resamples!r})")
    if (
        isinstance(disagreements, bool)
        or not isinstance(disagreements, int | np.integer)
        or disagreements < 0
    ):
        raise ValueError(f"disagreements must be a non-negative integer (got {disagreements!r})")
    names = [name for name, _ in runs]
    datasets = [results for _, results in runs]
    shared_ids = image_ids(datasets[0])
    for results in datasets[1:]:
        present = set(image_ids(results))
        shared_ids = [i for i in shared_ids if i in present]
    if not shared_ids:
        raise ValueError(
            f"the models {', '.join(map(repr, names))} share no image id, so nothing can be "
            "compared; compare results evaluated on the same references"
        )
    regions = region_names(datasets[0])
    for results in datasets[1:]:
        present = set(region_names(results))
        regions = [r for r in regions if r in present]
    positions = []
    for results in datasets:
        lookup = {image: k for k, image in enumerate(image_ids(results))}
        positions.append([lookup[i] for i in shared_ids])
    # (model, shared image, region): NaN where that model's pair is not ok.
    scores = np.stack(
        [
            _scores(results, variable, where)[:, [region_names(results).index(r) for r in regions]]
            for results, where in zip(datasets, positions, strict=True)
        ]
    )
    all_index = regions.index(ALL_REGION)
    overall = scores[:, :, all_index]
    ok = np.isfinite(overall)
    shared = ok.all(axis=0)
    if not shared.any():
        counts = ", ".join(f"{name} {int(row.sum())}" for name, row in zip(names, ok, strict=True))
        raise ValueError(
            "the models have no reference that is ok in all of them, so their scores cannot "
            f"be ranked on the same images (ok pairs of the {len(shared_ids)} shared ids: "
            f"{counts}); see each model's status"
        )
    rng = np.random.default_rng(seed)
    lower_better = variable in LOWER_IS_BETTER
    out = xr.Dataset(coords={MODEL: np.asarray(names, dtype=object)})
    out["n_ok"] = ((MODEL,), ok.sum(axis=1))
    ssim_scores = (
        overall
        if variable == SSIM
        else np.stack(
            [
                _scores(results, SSIM, where)[:, region_names(results).index(ALL_REGION)]
                for results, where in zip(datasets, positions, strict=True)
            ]
        )
    )
    ranked = {SSIM: ssim_scores[:, shared].T}
    # (model, shared image) region-"all" PSNR, NaN where the pair is not ok; None without.
    psnr_all = None
    if all(PSNR in results.variables for results in datasets):
        psnr_all = np.stack(
            [
                _scores(results, PSNR, where)[:, region_names(results).index(ALL_REGION)]
                for results, where in zip(datasets, positions, strict=True)
            ]
        )
        psnr = psnr_all[:, shared].T
        ranked[PSNR] = psnr[np.isfinite(psnr).all(axis=1)]
    for name, values in ranked.items():
        out.attrs[f"n_{name}"] = int(values.shape[0])
        if values.shape[0] == 0:
            mean = low = high = np.full(len(names), np.nan)
        else:
            mean = values.mean(axis=0)
            low, high = _bootstrap_interval(values, confidence, int(resamples), rng)
        out[f"{name}_mean"] = ((MODEL,), mean)
        out[f"{name}_ci_low"] = ((MODEL,), low)
        out[f"{name}_ci_high"] = ((MODEL,), high)
        out[f"{name}_rank"] = ((MODEL,), _ranks(mean))

    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    columns = _pair_columns(overall, ok, pairs, lower_better)
    out = out.assign_coords(
        {
            MODEL_PAIR: np.asarray([f"{names[i]} vs {names[j]}" for i, j in pairs], dtype=object),
            "model_a": ((MODEL_PAIR,), np.asarray([names[i] for i, _ in pairs], dtype=object)),
            "model_b": ((MODEL_PAIR,), np.asarray([names[j] for _, j in pairs], dtype=object)),
        }
    )
    for key, column in columns.items():
        out[key] = ((MODEL_PAIR,), column)
    if psnr_all is not None:
        # PSNR between models too, on the pairs ok in both models whose PSNR is finite in
        # both: inf (identical pixels) has no difference to rank or average.
        usable = ok & np.isfinite(psnr_all)
        psnr_columns = _pair_columns(psnr_all, usable, pairs, lower_better=False)
        for key, column in psnr_columns.items():
            out[f"{PSNR}_{key}"] = ((MODEL_PAIR,), column)
        infinite = ok & np.isinf(psnr_all)
        out[f"{PSNR}_n_infinite"] = (
            (MODEL_PAIR,),
            np.asarray(
                [int((ok[i] & ok[j] & (infinite[i] | infinite[j])).sum()) for i, j in pairs],
                dtype=np.int64,
            ),
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a region empty in every image: NaN
        region_mean = np.nanmean(scores[:, shared, :], axis=1)
    out = out.assign_coords({REGION: np.asarray(regions, dtype=object)})
    out["region_mean"] = ((MODEL, REGION), region_mean)
    ranking = region_mean if not lower_better else -region_mean
    finite = np.isfinite(ranking).any(axis=0)
    best = np.argmax(np.where(np.isfinite(ranking), ranking, -np.inf), axis=0)
    out["region_winner"] = (
        (REGION,),
        np.asarray(
            [names[b] if f else "" for b, f in zip(best, finite, strict=True)], dtype=object
        ),
    )

    shared_at = np.flatnonzero(shared)
    table = overall[:, shared_at]  # (model, shared reference)
    spread = table.max(axis=0) - table.min(axis=0)
    top = np.argsort(-spread, kind="stable")[: int(disagreements)]
    chosen = shared_at[top]
    best_of = np.argmin(table[:, top], axis=0) if lower_better else np.argmax(table[:, top], axis=0)
    worst_of = (
        np.argmax(table[:, top], axis=0) if lower_better else np.argmin(table[:, top], axis=0)
    )
    out = out.assign_coords(
        {
            DISAGREEMENT: np.arange(1, chosen.size + 1),
            "disagreement_image": (
                (DISAGREEMENT,),
                np.asarray([shared_ids[k] for k in chosen], dtype=object),
            ),
        }
    )
    out["spread"] = ((DISAGREEMENT,), spread[top])
    out["disagreement_score"] = ((DISAGREEMENT, MODEL), table[:, top].T)
    out["disagreement_position"] = (
        (DISAGREEMENT, MODEL),
        np.asarray(
            [[positions[m][k] for m in range(len(names))] for k in chosen], dtype=np.int64
        ).reshape(chosen.size, len(names)),
    )
    out["best_model"] = ((DISAGREEMENT,), np.asarray([names[b] for b in best_of], dtype=object))
    out["worst_model"] = ((DISAGREEMENT,), np.asarray([names[w] for w in worst_of], dtype=object))
    out.attrs.update(
        models=list(names),
        variable=variable,
        n_shared=int(shared.sum()),
        confidence=float(confidence),
        resamples=int(resamples),
        seed=int(seed),
        interval="percentile bootstrap over the shared references, same draws for every model",
        correction="holm",
    )
    return out
