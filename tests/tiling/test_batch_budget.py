"""Commit batches are capped by the bytes of their packed statistics; values never change."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import pipeline as sp
import pipeline.tiling.chunks
from pipeline.engine.run import plan_run
from pipeline.engine.settings import RunConfig
from pipeline.inputs.opening import open_pair
from pipeline.tiling.chunks import BATCH_STATISTICS_BYTES, statistics_bytes_per_image


def _many_pairs():
    x = da.zeros((200_000, 32, 32), dtype=np.uint8, chunks=(4096, 32, 32))
    return open_pair(x, x)


def test_plan_of_many_small_pairs_with_4x4_regions_stays_under_the_budget():
    # Sized by task count alone the batch was 131,072 pairs: ~1.9 GB of statistics
    # (tests/tiling/test_chunks.py plans 10**6 pairs; planning them here takes seconds).
    plan = plan_run(RunConfig(regions="4x4"), _many_pairs())
    per_image = statistics_bytes_per_image(len(plan.region_names), 100)
    assert len(plan.region_names) == 17
    assert plan.batch_images * per_image <= BATCH_STATISTICS_BYTES
    assert plan.batches[-1][1] == 200_000


def test_an_explicit_batch_images_setting_wins_over_the_budget():
    plan = plan_run(RunConfig(regions="4x4", batch_images=131_072), _many_pairs())
    assert plan.batch_images == 131_072


@pytest.mark.parametrize("output", [None, "results.zarr"])
def test_batches_capped_by_the_budget_give_the_same_values(monkeypatch, tmp_path, output):
    rng = np.random.default_rng(13)
    x = rng.integers(0, 256, (200, 32, 32), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    settings = {"regions": "4x4", "hist_bins": 20}
    whole = sp.evaluate(x, y, batch_images=200, **settings)
    # A budget of 64 images' statistics: batches of 64, in 32 tasks of 2 images (a task
    # of one image gives ssim_std 1 ulp apart from a task of several, whatever the batch).
    monkeypatch.setattr(
        pipeline.tiling.chunks, "BATCH_STATISTICS_BYTES", 64 * statistics_bytes_per_image(17, 20)
    )
    committed: list[int] = []
    if output is not None:
        settings["output"] = str(tmp_path / output)
    capped = sp.evaluate(x, y, on_batch=lambda done, total, n: committed.append(n), **settings)
    assert committed == [64, 64, 64, 8]
    assert set(capped.data_vars) == set(whole.data_vars)
    for name in whole.data_vars:
        np.testing.assert_array_equal(capped[name].values, whole[name].values, err_msg=name)


def test_a_store_laid_out_in_other_batches_resumes_in_the_new_ones(monkeypatch, tmp_path):
    # Stores written before the budget have batches (and status chunks) of another size:
    # resuming them commits the new, unaligned batches over the old chunks.
    rng = np.random.default_rng(17)
    x = rng.integers(0, 256, (300, 32, 32), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    settings = {"regions": "4x4", "hist_bins": 20, "output": str(tmp_path / "r.zarr")}
    whole = sp.evaluate(x, y, regions="4x4", hist_bins=20, batch_images=300)
    per_image = statistics_bytes_per_image(17, 20)

    def stop_after_the_first(done, total, n):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.tiling.chunks, "BATCH_STATISTICS_BYTES", 100 * per_image)
    with pytest.raises(KeyboardInterrupt):
        sp.evaluate(x, y, on_batch=stop_after_the_first, **settings)
    monkeypatch.setattr(pipeline.tiling.chunks, "BATCH_STATISTICS_BYTES", 64 * per_image)
    committed: list[int] = []
    resumed = sp.evaluate(
        x, y, resume=True, on_batch=lambda done, total, n: committed.append(n), **settings
    )
    assert committed == [64, 64, 64, 44]  # pairs 100..299, in the new batches that hold them
    for name in whole.data_vars:
        np.testing.assert_array_equal(resumed[name].values, whole[name].values, err_msg=name)
