"""pipeline.results.summary: counts, quantiles from merged histograms, JSON safety.

``summarize`` and ``format_summary``, also of a lazily opened store read batch by batch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import pipeline as sp
from pipeline.results.summary import format_summary, histogram_quantiles, skipped_files, summarize


def test_histogram_quantiles_match_numpy_within_a_bin(rng: np.random.Generator) -> None:
    values = rng.beta(5, 2, 20000) * 2 - 1
    edges = np.linspace(-1, 1, 201)
    counts, _ = np.histogram(values, edges)
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    found = histogram_quantiles(counts, edges, levels)
    np.testing.assert_allclose(found, np.quantile(values, levels), atol=0.01)
    assert np.isnan(histogram_quantiles(np.zeros(4), np.linspace(0, 1, 5), [0.5])[0])


def test_histogram_quantiles_errors() -> None:
    with pytest.raises(ValueError, match="one more entry than counts"):
        histogram_quantiles(np.ones(3), np.linspace(0, 1, 3), [0.5])
    with pytest.raises(ValueError, match=r"levels must be in \[0, 1\]"):
        histogram_quantiles(np.ones(3), np.linspace(0, 1, 4), [1.5])


def test_summarize_counts_worst_and_json(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    y = x.copy()
    for k in range(1, 5):
        y[k] = np.clip(x[k] + rng.normal(0, 8 * k, x[k].shape), 0, 255).astype(np.uint8)
    ds = sp.evaluate(x, y, regions="2x2").load()
    ds["status"].values[2] = "gen/2.png: empty file (0 bytes)"
    ds["ssim"].values[2] = np.nan
    ds["status"].values[3] = ""  # pending
    ds.attrs["unpaired_reference"] = ["a.png"]
    summary = summarize(ds, worst=2)
    json.dumps(summary, allow_nan=False)
    assert (summary["pairs"], summary["ok"], summary["failed"], summary["pending"]) == (5, 3, 1, 1)
    scores = ds.ssim.sel(region="all").values
    ok = [0, 1, 4]
    assert summary["mean"] == pytest.approx(scores[ok].mean())
    assert [row["image"] for row in summary["worst"]] == ["4", "1"]
    assert summary["failures"] == [{"image": "2", "status": "gen/2.png: empty file (0 bytes)"}]
    assert summary["unpaired"]["reference"] == ["a.png"]
    assert summary["luminance"] == pytest.approx(ds.luminance.sel(region="all").values[ok].mean())
    assert set(summary["regions"]) == {"all", "r0c0", "r0c1", "r1c0", "r1c1"}
    text = format_summary(summary)
    for expected in ("failed", "pending", "worst pairs", "empty file", "unpaired reference"):
        assert expected in text


def test_summarize_without_ok_pairs_is_json_safe() -> None:
    x = np.zeros((2, 16, 16), np.uint8)
    ds = sp.evaluate(x, x).load()
    ds["status"].values[:] = "broken"
    summary = summarize(ds)
    assert summary["mean"] is None and summary["ok"] == 0
    json.dumps(summary, allow_nan=False)
    format_summary(summary)


def test_summarize_errors() -> None:
    x = np.zeros((1, 16, 16), np.uint8)
    ds = sp.evaluate(x, x)
    with pytest.raises(ValueError, match="worst must be a non-negative integer"):
        summarize(ds, worst=-1)
    with pytest.raises(ValueError, match="lacks 'ssim_hist'"):
        summarize(ds.drop_vars("ssim_hist"))


def test_a_pending_status_is_pending_not_failed(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    ds = sp.evaluate(x, x).load()
    ds["status"].values[1] = "pending"
    ds["ssim"].values[1] = np.nan
    summary = summarize(ds)
    assert (summary["ok"], summary["failed"], summary["pending"]) == (2, 0, 1)
    assert summary["failures"] == []
    assert "pending           1" in format_summary(summary)


def test_skipped_files_are_rows_under_the_named_folders() -> None:
    entries = [
        "reference/.x.png (hidden file)",
        "generated/a (1)/b.txt (extension '.txt' is not an image type)",
        "reference/sub (unreadable folder (Permission denied))",
        "reference/odd name",
    ]
    rows = skipped_files(entries, {"reference": "data/ref/", "generated": "../gen"})
    assert rows == [
        {"path": "data/ref/.x.png", "reason": "hidden file"},
        {"path": "../gen/a (1)/b.txt", "reason": "extension '.txt' is not an image type"},
        {"path": "data/ref/sub", "reason": "unreadable folder (Permission denied)"},
        {"path": "data/ref/odd name", "reason": ""},
    ]
    assert skipped_files(entries[:1]) == [{"path": "reference/.x.png", "reason": "hidden file"}]


def test_summary_lists_skipped_files_from_the_recorded_folders(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (1, 16, 16), dtype=np.uint8)
    ds = sp.evaluate(x, x).load()
    ds.attrs["sources"] = json.dumps({"reference": "in/ref", "generated": "in/gen"})
    ds.attrs["skipped_files"] = ["generated/.git (hidden folder)"]
    summary = summarize(ds)
    assert summary["skipped"] == [{"path": "in/gen/.git", "reason": "hidden folder"}]
    assert summary["skipped_files"] == 1
    assert "  in/gen/.git (hidden folder)" in format_summary(summary)
    typed = summarize(ds, folders={"reference": "R", "generated": "G/"})
    assert typed["skipped"][0]["path"] == "G/.git"


def test_format_summary_escapes_names(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (2, 16, 16), dtype=np.uint8)
    ds = sp.evaluate(x, x).load()
    ds = ds.assign_coords(image=["a\x1b[2J.png", "b\u202e.png"])
    ds["status"].values[1] = "b\u202e.png: empty file (0 bytes)"
    ds.attrs["unpaired_generated"] = ["c\r.png"]
    text = format_summary(summarize(ds))
    assert "a\\x1b[2J.png" in text and "b\\u202e.png: empty file" in text and "c\\x0d.png" in text
    assert not any(char in text for char in "\x1b\u202e\r")


def test_a_lazily_opened_store_is_summarized_batch_by_batch(rng, tmp_path, monkeypatch):
    from pipeline.results import summary as results_summary

    x = rng.integers(0, 256, (9, 24, 24), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    out = tmp_path / "r.zarr"
    stored = sp.evaluate(x, y, output=str(out), regions="2x2", batch_images=2)
    in_memory = summarize(stored.load(), worst=3)
    monkeypatch.setattr(results_summary, "_BATCH_VALUES", 1)  # one chunk (2 pairs) a batch
    lazy = sp.open_results(out)
    assert results_summary.batch_length(lazy) == 2
    streamed = summarize(lazy, worst=3)
    assert streamed.pop("regions") == pytest.approx(in_memory.pop("regions"))
    # Sums made batch by batch against all at once: the same up to the order of the
    # float64 additions (NumPy's pairwise sums group differently with AVX-512 than with
    # AVX2), so floats agree to 1e-14 and everything else exactly.
    assert _floats_close(streamed, in_memory)


def _floats_close(a: object, b: object) -> bool:
    """``a == b``, with floats compared to 1e-14 relative, through dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_floats_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_floats_close(p, q) for p, q in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-14, nan_ok=True)
    return a == b


def test_summary_has_mse_and_psnr_and_leaves_identical_pairs_out(rng) -> None:
    x = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    y = x.copy()
    y[1:] = np.clip(x[1:] + rng.normal(0, 6, x[1:].shape), 0, 255).astype(np.uint8)
    ds = sp.evaluate(x, y, regions="2x2")
    summary = summarize(ds, worst=4)
    json.dumps(summary, allow_nan=False)  # PSNR inf never reaches the JSON
    psnr = ds.psnr.sel(region="all").values
    mse = ds.mse.sel(region="all").values
    assert psnr[0] == np.inf
    assert summary["psnr_identical"] == 1
    assert summary["psnr"] == pytest.approx(psnr[1:].mean(), rel=1e-12)
    assert summary["mse"] == pytest.approx(mse.mean(), rel=1e-12)
    assert summary["psnr_quantiles"]["0.5"] == pytest.approx(np.median(psnr[1:]), rel=1e-12)
    region_psnr = ds.psnr.sel(region="r1c0").values[1:].mean()
    assert summary["region_psnr"]["r1c0"] == pytest.approx(region_psnr, rel=1e-12)
    identical = next(row for row in summary["worst"] if row["image"] == "0")
    assert identical["mse"] == 0.0 and identical["psnr"] is None
    text = format_summary(summary)
    assert "PSNR dB per image" in text
    assert f"{summary['psnr']:.2f}" in text
    assert "identical pairs" in text
    assert " inf " in text  # the identical pair's row in the worst table


def test_summary_of_results_without_mse_and_psnr(result) -> None:
    """Results written before MSE/PSNR existed: None, no PSNR lines, still valid JSON."""
    old = result.drop_vars(["mse", "psnr"])
    summary = summarize(old)
    json.dumps(summary, allow_nan=False)
    assert summary["psnr"] is None and summary["mse"] is None
    assert summary["region_psnr"] == {}
    assert "psnr" not in summary["worst"][0]
    assert "PSNR" not in format_summary(summary)


def test_several_models_are_summarized_one_row_per_model(rng: np.random.Generator) -> None:
    # Each model's row must be that model's own summary (its single run summarized).
    x = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    close = np.clip(x + rng.normal(0, 5, x.shape), 0, 255).astype(np.uint8)
    far = np.clip(x + rng.normal(0, 40, x.shape), 0, 255).astype(np.uint8)
    far_nan = far.astype(np.float64)
    far_nan[2, 10, 10] = np.nan  # that pair fails (nan_policy "fail")
    ds = sp.evaluate(
        x.astype(np.float64), {"close": close.astype(np.float64), "far": far_nan}, data_range=255.0
    )
    summary = summarize(ds)
    assert [row["model"] for row in summary["models"]] == ["close", "far"]
    for row, generated in zip(summary["models"], (close, far_nan), strict=True):
        own = summarize(
            sp.evaluate(x.astype(np.float64), generated.astype(np.float64), data_range=255.0)
        )
        for key in ("mean", "psnr", "ok", "failed", "pairs", "quantiles"):
            assert row[key] == own[key], key
    assert (summary["ok"], summary["failed"], summary["pairs"]) == (7, 1, 8)
    assert summary["failures"][0]["image"].startswith("far: ")
    table = format_summary(summary)
    lines = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert lines["close"][1] == f"{summary['models'][0]['mean']:.4f}"
    assert lines["far"][3:5] == ["3", "1"]
    json.dumps(summary, allow_nan=False)  # JSON-safe, as --json prints it
