"""Launching the compiled CPU kernels over threads: pipeline.kernels.cpu.launch.

The thread pool of ``run_kernel`` must survive a fork; the row chunks and the
thread count follow their rules; the checks of the window's taps, cached per
window, still refuse every bad window. The same checks are exercised through
``fused_maps`` and ``block_maps`` in tests/kernels/cpu/test_fused.py.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numba
import numpy as np
import pytest

from pipeline.kernels.cpu import launch
from pipeline.kernels.cpu.fused import fused_maps, fused_score
from pipeline.kernels.cpu.launch import (
    aligned_empty,
    check_weights,
    kernel_dtype,
    plan_threads,
    ring_width,
    row_bounds,
)
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


# Row chunks and thread planning: the rules of row_bounds and plan_threads themselves.


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("win_size", [3, 7, 11])
@pytest.mark.parametrize("n_threads", [2, 3, 8])
@pytest.mark.parametrize("n_rows", [1, 5, 118, 246, 506, 1018, 2042, 8182])
def test_row_bounds_share_the_rows_evenly(n_rows, n_threads, win_size, uniform) -> None:
    edges = row_bounds(n_rows, n_threads, win_size, uniform)
    lengths = np.diff(edges)
    assert edges.dtype == np.int64 and edges[0] == 0 and edges[-1] == n_rows
    assert lengths.min() >= 1 and lengths.max() - lengths.min() <= 1  # no empty, even split
    n_chunks = len(lengths)
    # At least one chunk per thread (as rows allow), at most four.
    assert min(n_threads, n_rows) <= n_chunks <= 4 * n_threads
    if n_chunks > n_threads:
        # More chunks than threads only while each stays long enough to restart cheaply.
        assert lengths.min() >= win_size * (8 if uniform else 4)


def test_row_bounds_examples() -> None:
    # 512^2 under a 7-wide uniform window, two threads: eight chunks of ~63 rows
    # (eight windows each), not sixteen of ~32 (each restart costs 7 rows of sums).
    np.testing.assert_array_equal(
        row_bounds(506, 2, 7, True), [0, 63, 126, 189, 253, 316, 379, 442, 506]
    )
    # 2048^2, Gaussian 11: four chunks per thread.
    assert len(row_bounds(2038, 2, 11, False)) == 9
    # One thread: one chunk, or for the uniform window a restart every 256 rows.
    np.testing.assert_array_equal(row_bounds(1000, 1, 11, False), [0, 1000])
    np.testing.assert_array_equal(row_bounds(600, 1, 7, True), [0, 256, 512, 600])


def test_plan_threads_keeps_small_blocks_on_the_calling_thread() -> None:
    pool_size = numba.config.NUMBA_NUM_THREADS
    assert plan_threads(8, (100, 100), 7) == 1  # 94^2 output pixels: below the threshold
    assert plan_threads(None, (100, 100), 7) == 1
    assert plan_threads(1, (4000, 4000), 7) == 1
    assert plan_threads(None, (400, 400), 7) == numba.get_num_threads()
    assert plan_threads(pool_size + 5, (400, 400), 7) == pool_size
    with pytest.raises(ValueError, match=r"threads must be a positive integer or None \(got 0\)"):
        plan_threads(0, (400, 400), 7)
    with pytest.raises(TypeError, match=r"threads must be a positive integer or None"):
        plan_threads(2.0, (400, 400), 7)  # type: ignore[arg-type]


def test_plan_threads_keeps_uniform_windows_serial_longer() -> None:
    # The uniform window's pixels cost a third of the Gaussian's: two threads pay off
    # only on larger blocks, so it has its own, higher threshold.
    assert launch._PARALLEL_MIN_PIXELS_UNIFORM > launch._PARALLEL_MIN_PIXELS
    side = 7 - 1 + int(np.sqrt(launch._PARALLEL_MIN_PIXELS_UNIFORM))  # exactly at it
    assert plan_threads(2, (side - 1, side), 7, uniform=True) == 1
    assert plan_threads(2, (side, side), 7, uniform=True) == min(2, numba.config.NUMBA_NUM_THREADS)
    assert plan_threads(2, (side - 1, side), 7) == min(2, numba.config.NUMBA_NUM_THREADS)
    assert plan_threads(1, (4000, 4000), 7, uniform=True) == 1
    with pytest.raises(ValueError, match=r"threads must be a positive integer or None \(got -1\)"):
        plan_threads(-1, (40, 40), 7, uniform=True)


def test_read_only_keeps_a_read_only_array_and_views_a_writable_one() -> None:
    a = np.arange(12.0).reshape(3, 4)
    view = launch.read_only(a)
    assert view is not a and np.shares_memory(view, a) and not view.flags.writeable
    assert a.flags.writeable  # the caller's array is left writable
    assert launch.read_only(view) is view


def test_float_input_over_threads_stays_within_rounding_of_serial(rng) -> None:
    # Float input under the uniform window: each chunk restarts its running sums, so
    # a different chunking moves the maps by rounding only (float64 sums, float32 maps).
    x = rng.random((530, 300), dtype=np.float32) * 1000 + 5000
    y = x + rng.normal(0, 3, x.shape).astype(np.float32)
    params = {"weights": window_weights("uniform", 7, 1.5), "uniform": True, "c1": 1.0, "c2": 9.0}
    serial = fused_maps(x, y, threads=1, components=False, **params)
    parallel = fused_maps(x, y, threads=2, components=False, **params)
    assert len(row_bounds(x.shape[0] - 6, 2, 7, True)) > 3  # several chunks, restarted
    np.testing.assert_allclose(parallel["ssim"], serial["ssim"], rtol=0, atol=1e-6)
    assert fused_score(x, y, threads=2, **params) == pytest.approx(
        float(serial["ssim"].mean(dtype=np.float64)), abs=1e-7
    )


# Checks of the window's taps (they are cached per window: each call must still be checked).


def test_weights_must_be_symmetric_whatever_was_checked_before() -> None:
    shape = (40, 40)
    assert not check_weights(np.array([0.25, 0.5, 0.25]), shape).flags.writeable
    with pytest.raises(ValueError, match=r"weights must be symmetric \(got \[0.25 0.5  0.3 \]\)"):
        check_weights(np.array([0.25, 0.5, 0.3]), shape)
    # NaN taps are not equal to themselves, so they are refused as before.
    with pytest.raises(ValueError, match="weights must be symmetric"):
        check_weights(np.array([0.25, np.nan, 0.25]), shape)
    # Big-endian or float32 taps are read as native float64 first.
    taps = check_weights(np.array([1, 2, 1], dtype=">f4"), shape)
    assert taps.dtype == np.float64 and taps.dtype.isnative
    with pytest.raises(ValueError, match=r"weights must be 1-D with at most min\(shape\) taps"):
        check_weights(np.ones(5), (4, 40))
    # float64 taps already C-contiguous are taken as they are, checked alike.
    with pytest.raises(ValueError, match=r"weights must be 1-D"):
        check_weights(np.full((3, 3), 1 / 9), shape)
    shared = np.array([0.25, 0.5, 0.25])
    shared.flags.writeable = False
    assert check_weights(shared, shape) is shared


def test_kernel_dtype_of_each_pair() -> None:
    def dtype_of(a: str, b: str) -> np.dtype:
        return kernel_dtype(np.zeros(1, dtype=a), np.zeros(1, dtype=b))

    assert dtype_of("uint8", "uint8") == np.uint8
    assert dtype_of("uint8", "uint16") == np.uint16
    assert dtype_of("float32", "float32") == np.float32
    assert dtype_of("int16", "int16") == np.float64
    assert dtype_of("uint8", "float32") == np.float32
    assert dtype_of("float16", "float16") == np.float64


def _chunks(taken: np.ndarray, n_chunks: int) -> list[int]:
    """The chunks a kernel of ``n_chunks`` takes from ``taken``, as the compiled ones do."""
    mine = []
    while (chunk := launch.take_chunk(taken)) < n_chunks:
        mine.append(chunk)
    return mine


def test_run_kernel_does_not_wait_for_pool_threads_that_never_started(monkeypatch) -> None:
    # A pool whose threads never start: the calling thread takes every chunk and the
    # launch returns without them instead of waiting for a pool thread to wake.
    pool = launch._HotPool(1, start=False)
    monkeypatch.setattr(launch, "_POOL", pool)
    monkeypatch.setattr(launch, "_POOL_PID", os.getpid())
    ran: list[tuple[int, int]] = []

    def kernel(taken: np.ndarray) -> None:
        ran.extend((threading.get_ident(), chunk) for chunk in _chunks(taken, 6))

    caller = threading.Thread(target=launch.run_kernel, args=(kernel, 2, 6, ()))
    caller.start()
    caller.join(timeout=20)
    assert not caller.is_alive(), "run_kernel waited for a pool thread that never started"
    assert sorted(chunk for _, chunk in ran) == list(range(6))
    assert {thread for thread, _ in ran} == {caller.ident}


def test_an_asleep_pool_thread_is_woken_by_the_next_launch() -> None:
    # Both chunks wait for each other: the launch ends only if a pool thread runs one.
    # Between launches the pool has waited long enough to fall asleep.
    for _ in range(3):
        both = threading.Barrier(2, timeout=20)
        threads: set[int] = set()

        def kernel(taken: np.ndarray, both=both, threads=threads) -> None:
            if launch.take_chunk(taken) < 2:  # one chunk a thread: the other is the other's
                threads.add(threading.get_ident())
                both.wait()

        launch.run_kernel(kernel, 2, 2, ())
        assert len(threads) == 2
        time.sleep(20 * launch._SPIN_S)


def test_an_exception_in_a_pool_thread_reaches_the_caller() -> None:
    caller = threading.get_ident()
    started = threading.Barrier(2, timeout=20)

    def kernel(taken: np.ndarray) -> None:
        chunk = launch.take_chunk(taken)
        started.wait()  # one chunk on each thread
        if threading.get_ident() != caller:
            raise RuntimeError(f"chunk {chunk} failed")

    with pytest.raises(RuntimeError, match=r"chunk \d failed"):
        launch.run_kernel(kernel, 2, 2, ())
    # The pool still serves the next launch.
    ran: list[int] = []
    launch.run_kernel(lambda taken: ran.extend(_chunks(taken, 8)), 2, 8, ())
    assert sorted(ran) == list(range(8))


def test_run_kernel_runs_every_chunk_once_over_threads() -> None:
    ran: list[int] = []
    calls: list[int] = []
    lock = threading.Lock()

    def kernel(taken: np.ndarray) -> None:
        mine = _chunks(taken, n_chunks)
        with lock:
            ran.extend(mine)
            calls.append(threading.get_ident())

    for n_threads, n_chunks in ((1, 5), (2, 1), (2, 7), (4, 9)):
        ran.clear()
        calls.clear()
        launch.run_kernel(kernel, n_threads, n_chunks, ())
        assert sorted(ran) == list(range(n_chunks))
        # One call a thread, whatever the number of chunks it took.
        assert len(calls) == len(set(calls)) <= min(n_threads, n_chunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("shape", [(1,), (3, 2, 11, 70), (2, 3, 5, 7), (0, 4)])
def test_aligned_empty_starts_a_cache_line(dtype, shape) -> None:
    # The rings' rows are read 64 bytes at a time; each must start a cache line.
    for _ in range(20):  # NumPy's own buffers start anywhere 16 bytes apart
        ring = aligned_empty(shape, dtype)
        assert ring.shape == shape and ring.dtype == dtype
        assert ring.flags.c_contiguous and ring.flags.writeable
        assert ring.ctypes.data % 64 == 0 or ring.size == 0
        ring[...] = 1
        assert np.all(ring == 1)


@pytest.mark.parametrize("itemsize", [4, 8])
@pytest.mark.parametrize("width", [1, 15, 16, 17, 500, 1024, 2048, 4096, 4100])
def test_ring_rows_start_cache_lines_one_line_apart_round_a_page(width, itemsize) -> None:
    stride = ring_width(width, itemsize) * itemsize
    assert stride >= width * itemsize
    assert stride % 64 == 0  # every row of an aligned ring starts a line
    assert stride % 4096 == 64  # the next row one line further round the 4 KiB page
