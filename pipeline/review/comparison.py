"""Models on the same references: the comparison behind ``ds.review.compare``.

:func:`compare` picks the comparison: two single-model results give the pair-by-pair
table of :func:`compare_results`; a Dataset with a ``model`` dimension, or more than
two results, give the ranking, paired tests, region winners and disagreements of
:func:`pipeline.review.models.compare_models`.

Two result Datasets are aligned on the image ids and regions they share; the
per-pair differences, the winner of each pair and region, and paired two-sided
t-tests per region come back as one Dataset (described in
:meth:`pipeline.review.accessor.ReviewAccessor.compare`). SciPy is imported only when
the statistics are computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    FLOAT_STATISTICS,
    IMAGE,
    REFERENCE,
    REGION,
    SCORE_ATTRS,
    SSIM,
    check_results,
)
from pipeline.results.text import text_values
from pipeline.review.models import MODEL, compare_models, has_models, split_models
from pipeline.review.tables import (
    LOWER_IS_BETTER,
    image_ids,
    ok_mask,
    preview_ids,
    region_names,
)

__all__ = ["compare", "compare_results", "paired_statistics"]


def _check_variable(variable: str) -> None:
    if variable not in FLOAT_STATISTICS:
        raise ValueError(
            f"variable must be one of {', '.join(FLOAT_STATISTICS)} (got {variable!r})"
        )


def compare(
    ds: xr.Dataset,
    others: Sequence[xr.Dataset],
    *,
    names: Sequence[str] | None = None,
    variable: str = SSIM,
    check_params: bool = True,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    disagreements: int = 10,
) -> xr.Dataset:
    """``ds`` against ``others`` (or its own models): see ``ReviewAccessor.compare``."""
    for k, other in enumerate(others):
        if not isinstance(other, xr.Dataset):
            raise TypeError(
                f"other must be an xarray.Dataset of results (got {type(other).__name__} "
                f"as argument {k + 1})"
            )
        check_results(other)
    if len(others) == 1 and not has_models(ds) and not has_models(others[0]):
        pair = ("a", "b") if names is None else tuple(names)
        if len(pair) != 2:
            raise ValueError(f"names must be two different labels (got {names!r})")
        return compare_results(
            ds, others[0], names=(pair[0], pair[1]), variable=variable, check_params=check_params
        )
    if not others and not has_models(ds):
        raise ValueError(
            f"compare needs several models: these results have no {MODEL!r} dimension (one "
            "generated source); pass the other model's results, ds.review.compare(other), or "
            "evaluate several generated sources together"
        )
    _check_variable(variable)
    runs: list[tuple[str | None, xr.Dataset]] = []
    for k, results in enumerate((ds, *others)):
        if has_models(results):
            runs += split_models(results)
        else:
            runs.append((None, results))
        if variable not in results.variables:
            raise ValueError(
                f"variable {variable!r} is missing from results number {k + 1} "
                "(written by a version before MSE and PSNR were computed; evaluate again to "
                "compare it)"
            )
    if names is not None:
        if isinstance(names, str) or len(names) != len(runs):
            raise ValueError(
                f"names must give one label per model, {len(runs)} here (got {names!r})"
            )
        labels = [str(name) for name in names]
    else:
        labels = [name if name is not None else f"model-{k}" for k, (name, _) in enumerate(runs)]
    if len(runs) < 2:
        raise ValueError(
            f"compare needs at least two models (got one, {labels[0]!r}); pass other results"
        )
    if len(set(labels)) != len(labels):
        raise ValueError(f"model names must be unique (got {labels}); pass names=[...]")
    if check_params:
        first = ds.attrs
        for k, other in enumerate(others):
            differ = [
                f"{key}: {first.get(key)!r} vs {other.attrs.get(key)!r}"
                for key in SCORE_ATTRS
                if first.get(key) != other.attrs.get(key)
            ]
            if differ:
                raise ValueError(
                    f"results number {k + 2} were computed with different SSIM settings ("
                    + "; ".join(differ)
                    + "); their scores are not comparable (check_params=False to compare anyway)"
                )
    return compare_models(
        [(label, results) for label, (_, results) in zip(labels, runs, strict=True)],
        variable=variable,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        disagreements=disagreements,
    )


def compare_results(
    ds: xr.Dataset,
    other: xr.Dataset,
    *,
    names: tuple[str, str] = ("a", "b"),
    variable: str = SSIM,
    check_params: bool = True,
) -> xr.Dataset:
    """``ds`` (model ``names[0]``) against ``other`` (``names[1]``), pair by pair.

    ``ds`` must already have the result schema (the accessor checks it); ``other``
    is checked here. Arguments, result and errors as in
    :meth:`pipeline.review.accessor.ReviewAccessor.compare`.
    """
    if not isinstance(other, xr.Dataset):
        raise TypeError(f"other must be an xarray.Dataset of results (got {type(other).__name__})")
    check_results(other)
    _check_variable(variable)
    for label, results in zip(names, (ds, other), strict=False):
        if variable not in results.variables:
            raise ValueError(
                f"variable {variable!r} is missing from results {label!r} (written by a "
                "version before MSE and PSNR were computed; evaluate again to compare it)"
            )
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different labels (got {names!r})")
    if check_params:
        differ = [
            f"{key}: {ds.attrs.get(key)!r} vs {other.attrs.get(key)!r}"
            for key in SCORE_ATTRS
            if ds.attrs.get(key) != other.attrs.get(key)
        ]
        if differ:
            raise ValueError(
                "the results were computed with different SSIM settings ("
                + "; ".join(differ)
                + "); their scores are not comparable (check_params=False to compare anyway)"
            )
    ours_ids, their_ids = image_ids(ds), image_ids(other)
    lookup = {name: k for k, name in enumerate(their_ids)}
    shared = [name for name in ours_ids if name in lookup]
    if not shared:
        raise ValueError(
            "the two results share no image id, so nothing can be compared: this one has "
            f"{preview_ids(ours_ids, 3)}, other has {preview_ids(their_ids, 3)}; compare results "
            "evaluated on the same references"
        )
    regions = [r for r in region_names(ds) if r in set(region_names(other))]
    index_a = [ours_ids.index(name) for name in shared]
    index_b = [lookup[name] for name in shared]
    a = ds.isel({IMAGE: index_a})
    b = other.isel({IMAGE: index_b})
    score_a = np.asarray(a[variable].sel({REGION: regions}).values, dtype=np.float64)
    score_b = np.asarray(b[variable].sel({REGION: regions}).values, dtype=np.float64)
    score_a[~ok_mask(ds)[index_a]] = np.nan
    score_b[~ok_mask(other)[index_b]] = np.nan
    out = xr.Dataset(
        {"a": ((IMAGE, REGION), score_a), "b": ((IMAGE, REGION), score_b)},
        coords={IMAGE: a[IMAGE].values, REGION: np.asarray(regions, dtype=object)},
    )
    difference = score_a - score_b
    out["difference"] = ((IMAGE, REGION), difference)
    # The higher score wins; for MSE (lower is better) the lower one.
    better = -difference if variable in LOWER_IS_BETTER else difference
    winner = np.where(better > 0, names[0], np.where(better < 0, names[1], "tie"))
    winner = np.where(np.isfinite(difference), winner, "")
    out["winner"] = ((IMAGE, REGION), winner.astype(object))
    for key, value in paired_statistics(difference).items():
        out[key] = ((REGION,), value)
    out.attrs.update(
        names=list(names),
        variable=variable,
        same_references=text_values(a[REFERENCE].values) == text_values(b[REFERENCE].values),
    )
    return out


def paired_statistics(difference: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column paired statistics of ``(pairs, regions)`` differences (NaN = missing)."""
    from scipy import stats

    finite = np.isfinite(difference)
    n = finite.sum(axis=0)
    values = np.where(finite, difference, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=0) / n
        squares = np.where(finite, (difference - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(squares / (n - 1))
        t = mean / (std / np.sqrt(n))
    std = np.where(n >= 2, std, np.nan)
    # A zero spread with a non-zero mean is a certain difference: t infinite, p 0.
    t = np.where(n >= 2, t, np.nan)
    p = np.where(
        np.isnan(t), np.nan, 2.0 * stats.t.sf(np.abs(np.nan_to_num(t)), np.maximum(n - 1, 1))
    )
    p = np.where(np.isinf(t), 0.0, p)
    return {
        "n_pairs": n,
        "mean_difference": np.where(n > 0, mean, np.nan),
        "std_difference": std,
        "wins_a": (finite & (difference > 0)).sum(axis=0),
        "wins_b": (finite & (difference < 0)).sum(axis=0),
        "ties": (finite & (difference == 0)).sum(axis=0),
        "t_statistic": t,
        "p_value": p,
    }
