"""pipeline.review.models: several models ranked, tested and confronted on the same references.

Called through ``ds.review.compare`` on a Dataset with a ``model`` dimension; the three
models of eight camera crops are built in conftest.py (``multi``, ``model_runs``), each
by its own :func:`pipeline.evaluate` run, so their ranking is known by construction.
Reference values: :func:`scipy.stats.wilcoxon`, :func:`scipy.stats.ttest_rel` and
:func:`scipy.stats.bootstrap` called directly on the per-image scores.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from pipeline.review.models import holm_adjusted

# The models of the ``multi`` fixture (conftest.py), in order, and their references.
MODEL_NAMES = ("mild", "patchy", "heavy")
N_MODEL_IMAGES = 8


def _scores(run, name="ssim", region="all"):
    return np.asarray(run[name].sel(region=region).values, dtype=np.float64)


def test_ranking_by_ssim_and_psnr_with_intervals_that_hold_the_mean(multi, model_runs):
    result = multi.review.compare()
    assert result.model.values.tolist() == list(MODEL_NAMES)
    assert result.ssim_rank.values.tolist() == [1, 2, 3]  # mild > patchy > heavy
    assert result.psnr_rank.values.tolist() == [1, 3, 2]  # mild > heavy > patchy
    for k, run in enumerate(model_runs):
        assert float(result.ssim_mean[k]) == pytest.approx(_scores(run).mean())
        assert float(result.psnr_mean[k]) == pytest.approx(_scores(run, "psnr").mean())
    for name in ("ssim", "psnr"):
        low, mean, high = (result[f"{name}_{key}"].values for key in ("ci_low", "mean", "ci_high"))
        assert np.all(low < mean) and np.all(mean < high)
    assert result.attrs["n_shared"] == N_MODEL_IMAGES
    assert result.n_ok.values.tolist() == [N_MODEL_IMAGES] * 3


def test_bootstrap_is_seeded_and_agrees_with_scipy_bootstrap(multi, model_runs):
    first = multi.review.compare(seed=3)
    again = multi.review.compare(seed=3)
    np.testing.assert_array_equal(first.ssim_ci_low.values, again.ssim_ci_low.values)
    other = multi.review.compare(seed=4)
    assert not np.array_equal(first.ssim_ci_low.values, other.ssim_ci_low.values)
    for k, run in enumerate(model_runs):
        reference = stats.bootstrap(
            (_scores(run),),
            np.mean,
            n_resamples=20000,
            method="percentile",
            rng=np.random.default_rng(0),
        ).confidence_interval
        width = reference.high - reference.low
        # Different draws: the two percentile intervals agree to a fraction of their width.
        assert float(first.ssim_ci_low[k]) == pytest.approx(reference.low, abs=0.15 * width)
        assert float(first.ssim_ci_high[k]) == pytest.approx(reference.high, abs=0.15 * width)


def test_paired_tests_match_scipy_and_holm(multi, model_runs):
    result = multi.review.compare()
    pairs = list(itertools.combinations(range(3), 2))
    assert result.model_pair.values.tolist() == [
        f"{MODEL_NAMES[i]} vs {MODEL_NAMES[j]}" for i, j in pairs
    ]
    for k, (i, j) in enumerate(pairs):
        x, y = _scores(model_runs[i]), _scores(model_runs[j])
        wilcoxon, t_test = stats.wilcoxon(x, y), stats.ttest_rel(x, y)
        entry = result.isel(model_pair=k)
        assert int(entry.n_pairs) == N_MODEL_IMAGES
        assert float(entry.mean_difference) == pytest.approx((x - y).mean())
        assert float(entry.wilcoxon_statistic) == pytest.approx(wilcoxon.statistic)
        assert float(entry.wilcoxon_p) == pytest.approx(wilcoxon.pvalue)
        assert float(entry.t_statistic) == pytest.approx(t_test.statistic)
        assert float(entry.t_p) == pytest.approx(t_test.pvalue)
        assert int(entry.wins_a) == int((x > y).sum())
    # Holm by hand: sorted p times (m, m-1, ...), running maximum, capped at 1.
    p = result.t_p.values
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(3, 0, -1)))
    np.testing.assert_allclose(result.t_p_holm.values[order], adjusted)
    assert holm_adjusted(np.array([0.01, np.nan, 0.04])).tolist()[::2] == [0.02, 0.04]


def test_paired_tests_on_psnr_match_scipy_and_holm(multi, model_runs):
    result = multi.review.compare()
    pairs = list(itertools.combinations(range(3), 2))
    for k, (i, j) in enumerate(pairs):
        x, y = _scores(model_runs[i], "psnr"), _scores(model_runs[j], "psnr")
        wilcoxon, t_test = stats.wilcoxon(x, y), stats.ttest_rel(x, y)
        entry = result.isel(model_pair=k)
        assert int(entry.psnr_n_pairs) == N_MODEL_IMAGES
        assert int(entry.psnr_n_infinite) == 0
        assert float(entry.psnr_mean_difference) == pytest.approx((x - y).mean())
        assert float(entry.psnr_wilcoxon_statistic) == pytest.approx(wilcoxon.statistic)
        assert float(entry.psnr_wilcoxon_p) == pytest.approx(wilcoxon.pvalue)
        assert float(entry.psnr_t_statistic) == pytest.approx(t_test.statistic)
        assert float(entry.psnr_t_p) == pytest.approx(t_test.pvalue)
        assert int(entry.psnr_wins_a) == int((x > y).sum())
    # By PSNR heavy beats patchy on every reference, by SSIM patchy beats heavy.
    pair = result.sel(model_pair="patchy vs heavy")
    assert int(pair.psnr_wins_b) == N_MODEL_IMAGES and int(pair.wins_a) == N_MODEL_IMAGES
    # Holm over the PSNR tests alone (their own family).
    p = result.psnr_wilcoxon_p.values
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(3, 0, -1)))
    np.testing.assert_allclose(result.psnr_wilcoxon_p_holm.values[order], adjusted)


def test_infinite_psnr_is_left_out_of_the_psnr_tests_and_counted(model_arrays):
    import pipeline

    reference, generated = model_arrays
    exact = generated["patchy"].copy()
    exact[[0, 3]] = reference[[0, 3]]  # two references reproduced exactly: PSNR inf
    models = {"mild": generated["mild"], "exact": exact, "heavy": generated["heavy"]}
    ds = pipeline.evaluate(reference, models, regions="2x2")
    psnr = ds.psnr.sel(region="all").values
    assert np.isinf(psnr[1, [0, 3]]).all() and np.isfinite(np.delete(psnr, [1], 0)).all()
    result = ds.review.compare()
    assert result.psnr_n_infinite.values.tolist() == [2, 0, 2]
    assert result.psnr_n_pairs.values.tolist() == [6, 8, 6]
    assert result.n_pairs.values.tolist() == [8, 8, 8]  # SSIM (1 there) keeps them
    finite = np.isfinite(psnr).all(axis=0)
    for k, (i, j) in enumerate(itertools.combinations(range(3), 2)):
        both = finite if 1 in (i, j) else np.ones(N_MODEL_IMAGES, dtype=bool)
        x, y = psnr[i, both], psnr[j, both]
        entry = result.isel(model_pair=k)
        assert float(entry.psnr_wilcoxon_p) == pytest.approx(stats.wilcoxon(x, y).pvalue)
        assert float(entry.psnr_t_p) == pytest.approx(stats.ttest_rel(x, y).pvalue)
        assert float(entry.psnr_mean_difference) == pytest.approx((x - y).mean())
    assert result.attrs["n_psnr"] == 6


def test_pairs_are_tested_only_where_ok_in_both_models(multi, model_runs):
    status = multi.status.values.copy()
    status[2, 5] = "corrupt or truncated image (test)"  # heavy fails pair 5
    result = multi.assign(status=(("model", "image"), status)).review.compare()
    assert result.n_ok.values.tolist() == [8, 8, 7]
    assert result.n_pairs.values.tolist() == [8, 7, 7]
    assert result.attrs["n_shared"] == 7
    keep = np.arange(N_MODEL_IMAGES) != 5
    x, y = _scores(model_runs[0])[keep], _scores(model_runs[2])[keep]
    assert float(result.wilcoxon_p.sel(model_pair="mild vs heavy")) == pytest.approx(
        stats.wilcoxon(x, y).pvalue
    )
    # The ranking is over the references ok in every model.
    assert float(result.ssim_mean[1]) == pytest.approx(_scores(model_runs[1])[keep].mean())


def test_region_winner_and_disagreements(multi, model_runs):
    result = multi.review.compare(disagreements=3)
    assert result.region_winner.values.tolist() == ["mild", "patchy", "mild", "mild", "mild"]
    means = np.stack([run.ssim.values.mean(axis=0) for run in model_runs])
    np.testing.assert_allclose(result.region_mean.values, means)
    table = np.stack([_scores(run) for run in model_runs])
    spread = table.max(axis=0) - table.min(axis=0)
    top = np.argsort(-spread)[:3]
    assert result.disagreement_image.values.tolist() == [str(k) for k in top]
    np.testing.assert_allclose(result.spread.values, spread[top])
    np.testing.assert_allclose(result.disagreement_score.values, table[:, top].T)
    assert result.best_model.values.tolist() == ["mild"] * 3
    assert result.worst_model.values.tolist() == ["heavy"] * 3


def test_other_datasets_count_as_models(multi, model_runs):
    together = multi.review.compare()
    apart = model_runs[0].review.compare(*model_runs[1:], names=list(MODEL_NAMES))
    for name in ("ssim_mean", "ssim_ci_low", "t_p_holm", "spread"):
        np.testing.assert_allclose(apart[name].values, together[name].values)
    default = model_runs[0].review.compare(*model_runs[1:])
    assert default.model.values.tolist() == ["model-0", "model-1", "model-2"]
    # A multi-model Dataset plus another result: its models, then the other.
    mixed = multi.isel(model=[0, 1]).review.compare(model_runs[2])
    assert mixed.model.values.tolist() == ["mild", "patchy", "model-2"]


def test_errors_name_the_problem(multi, model_runs):
    with pytest.raises(ValueError, match=r"no 'model' dimension.*compare\(other\)"):
        model_runs[0].review.compare()
    with pytest.raises(ValueError, match=r"at least two models \(got one, 'mild'\)"):
        multi.isel(model=[0]).review.compare()
    status = multi.status.values.copy()
    status[0, :4] = "corrupt or truncated image (test)"
    status[1, 4:] = "corrupt or truncated image (test)"
    broken = multi.assign(status=(("model", "image"), status))
    with pytest.raises(ValueError, match=r"no reference that is ok in all.*mild 4, patchy 4"):
        broken.review.compare()
    with pytest.raises(ValueError, match=r"one label per model, 3 here"):
        multi.review.compare(names=["a", "b"])
    with pytest.raises(ValueError, match=r"model names must be unique"):
        multi.review.compare(names=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\) \(got 1.5\)"):
        multi.review.compare(confidence=1.5)
    with pytest.raises(TypeError, match=r"other must be an xarray.Dataset.*argument 2"):
        multi.review.compare(model_runs[0], multi.ssim)


def test_per_pair_methods_ask_for_one_model(multi):
    with pytest.raises(ValueError, match=r"hold 3 models \('mild'.*ds.sel\(model='mild'"):
        multi.review.worst(2)
    with pytest.raises(ValueError, match=r"ds\.review\.compare\(\)"):
        multi.review.plot_hist()
    one = multi.sel(model="patchy", drop=True)
    assert one.review.worst(1).index.tolist() == [str(int(np.argmin(_scores(one))))]


def test_docstring_examples_run():
    import doctest

    import pipeline.review.models

    failures, tried = doctest.testmod(pipeline.review.models)
    assert tried > 0 and failures == 0
