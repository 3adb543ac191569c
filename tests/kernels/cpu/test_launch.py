"""Launching the compiled CPU kernels over threads: pipeline.kernels.cpu.launch.

The thread pool of ``run_kernel`` must survive a fork. The argument checks and
thread planning of this module (``threads``, weights, dtypes) are exercised
through ``fused_maps`` and ``block_maps`` in tests/kernels/cpu/test_fused.py.
"""

from __future__ import annotations

import multiprocessing

import numpy as np

from pipeline.kernels.cpu.fused import fused_score
from pipeline.kernels.windows import window_weights


def _two_thread_score(x: np.ndarray, y: np.ndarray) -> float:
    return fused_score(x, y, weights=window_weights("gaussian", 7, 1.5), uniform=False,
                       c1=6.5, c2=58.5, threads=2)  # fmt: skip


def test_a_forked_child_launches_over_threads(rng) -> None:
    # The parent's launch over two threads makes the thread pool; a child forked
    # afterwards holds the pool object without its threads and must make its own
    # (else the chunks it hands to the pool never run and the call waits forever).
    x = rng.integers(0, 256, (200, 190), dtype=np.uint8)  # above the parallel threshold
    y = rng.integers(0, 256, (200, 190), dtype=np.uint8)
    expected = _two_thread_score(x, y)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_two_thread_score, (x, y)).get(timeout=60) == expected
