"""Memory does not grow with the number of pairs: only one batch's data is held at a time."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

import pipeline as sp

BATCH, BINS = 256, 2000  # many bins: each batch's packed statistics weigh ~4 MB


def _peak_traced_mb(n_pairs: int, tmp_path) -> float:
    rng = np.random.default_rng(n_pairs)
    x = rng.integers(0, 256, (n_pairs, 16, 16), dtype=np.uint8)
    y = x ^ np.uint8(7)
    settings = {"batch_images": BATCH, "hist_bins": BINS}
    sp.evaluate(x[:BATCH], y[:BATCH], **settings)  # warm-up: caches, imports
    gc.collect()
    tracemalloc.start()
    try:
        sp.evaluate(x, y, output=str(tmp_path / f"r{n_pairs}.zarr"), **settings)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_peak_memory_of_many_batches_is_that_of_one(tmp_path):
    # Before, the loop kept one batch's statistics alive while it computed the next:
    # a run of several batches peaked a whole batch higher than a run of one.
    one = _peak_traced_mb(BATCH, tmp_path)
    six = _peak_traced_mb(6 * BATCH, tmp_path)
    batch_mb = BATCH * (BINS + 10) * 8 / 2**20
    assert six - one < batch_mb / 2, (one, six, batch_mb)


def test_in_memory_results_are_filled_batch_by_batch(tmp_path):
    # Without a store, the results are held (they are what evaluate returns); before,
    # every batch's packed statistics, their concatenation and the results were held
    # together: about three times the results.
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (16 * BATCH, 16, 16), dtype=np.uint8)
    settings = {"batch_images": BATCH, "hist_bins": BINS}
    sp.evaluate(x[:BATCH], x[:BATCH], **settings)  # warm-up: caches, imports
    gc.collect()
    tracemalloc.start()
    try:
        ds = sp.evaluate(x, x ^ np.uint8(7), **settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    results = ds["ssim_hist"].nbytes
    assert peak < 1.5 * results, (peak / 2**20, results / 2**20)  # before: 3.1x
