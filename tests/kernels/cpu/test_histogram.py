"""Row histograms and extremes: exactly np.histogram and the float min/max, on every path."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.cpu.histogram import _FAST_BINS, _SHORT, add_extremes_and_counts
from pipeline.kernels.statistics import bin_edges


def _reference(values: np.ndarray, bins: int) -> tuple[np.ndarray, float, float]:
    """np.histogram of the values clipped to [-1, 1] (what the kernels promise), and extremes."""
    as64 = values.astype(np.float64)
    counts, _ = np.histogram(np.clip(as64, -1.0, 1.0), bins=bin_edges(bins))
    return counts, float(as64.min()), float(as64.max())


def _edge_values(bins: int, dtype: type) -> np.ndarray:
    """Every edge, its float neighbours in ``dtype``, the range ends and a little outside."""
    edges = bin_edges(bins).astype(dtype)
    near = [edges, np.nextafter(edges, dtype(-2)), np.nextafter(edges, dtype(2))]
    return np.concatenate([*near, np.array([-1.0, 1.0, -1.0000001, 1.0000001, 0.0], dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bins", [1, 2, 7, 20, 100, 1000])
@pytest.mark.parametrize("length", [1, _SHORT - 1, _SHORT, 3 * _SHORT + 3, 5000])
def test_counts_and_extremes_equal_numpy(rng, dtype, bins, length) -> None:
    # Runs of every length class (scalar pass under _SHORT, vectorised passes from
    # it, with a remainder for the interleaved counts), every edge and its neighbours
    # included, values a rounding error outside [-1, 1] too.
    pool = np.concatenate([_edge_values(bins, dtype), rng.uniform(-1, 1, 4000).astype(dtype)])
    values = rng.permutation(pool)[:length] if length <= pool.size else rng.choice(pool, length)
    padded = np.concatenate([rng.uniform(-1, 1, 5).astype(dtype), values])  # a run not at 0
    counts = np.zeros(bins)
    low, high = add_extremes_and_counts(padded[5:], np.inf, -np.inf, counts)
    expected, lo, hi = _reference(values, bins)
    np.testing.assert_array_equal(counts, expected)
    assert (low, high) == (lo, hi)


def test_counts_accumulate_over_runs_and_extremes_carry(rng) -> None:
    values = rng.uniform(-0.5, 0.9, 3000).astype(np.float32)
    counts = np.zeros(100)
    low, high = 0.95, 0.95  # extremes of earlier rows, outside this run's range on one side
    for start, stop in ((0, 10), (10, 1500), (1500, 1500), (1500, 3000)):
        low, high = add_extremes_and_counts(values[start:stop], low, high, counts)
    expected, lo, _ = _reference(values, 100)
    np.testing.assert_array_equal(counts, expected)
    assert (low, high) == (lo, 0.95)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_runs_take_the_scalar_extremes(rng, dtype) -> None:
    # A column of a 2-D map is not contiguous: the integer-key extremes need
    # contiguous memory, so this takes the other implementation; same answers.
    maps = rng.uniform(-1, 1, (500, 3)).astype(dtype)
    column = maps[:, 1]
    counts = np.zeros(50)
    low, high = add_extremes_and_counts(column, np.inf, -np.inf, counts)
    expected, lo, hi = _reference(column, 50)
    np.testing.assert_array_equal(counts, expected)
    assert (low, high) == (lo, hi)


def test_negative_values_and_signed_zero_order(rng) -> None:
    # The integer keys flip negative floats' magnitude bits: the most negative value wins.
    values = np.array([-0.25, -0.75, 0.0, -0.0, 0.5, -0.7499999] * 20, dtype=np.float32)
    counts = np.zeros(8)
    low, high = add_extremes_and_counts(values, np.inf, -np.inf, counts)
    assert (low, high) == (-0.75, 0.5)
    np.testing.assert_array_equal(counts, _reference(values, 8)[0])


@pytest.mark.parametrize("length", [10, 500])
def test_nan_is_counted_in_range_and_never_written_out_of_bounds(length) -> None:
    # Non-finite windows are screened before the kernels (nan_policy); should a NaN
    # still arrive, it lands in bin 0 rather than past the end of the counts.
    values = np.full(length, 0.5, dtype=np.float32)
    values[3] = np.nan
    counts = np.zeros(12)
    guard = np.zeros(4)
    buffer = np.concatenate([counts, guard])
    add_extremes_and_counts(values, np.inf, -np.inf, buffer[:12])
    assert buffer[:12].sum() == length
    assert buffer[0] == 1
    np.testing.assert_array_equal(buffer[12:], guard)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_next_to_every_edge_take_the_exact_bin(rng, dtype) -> None:
    # The vectorised pass guesses bins in float32 and hands values within its
    # rounding error of an edge to the exact float64 test: runs made only of
    # such values (each edge and its float neighbours, 37 bins so that the
    # edges are not float32 numbers) and of values beside them.
    bins = 37
    near = _edge_values(bins, dtype)
    values = rng.permutation(np.concatenate([near, near + dtype(3e-6), near - dtype(3e-6)]))
    values = np.clip(values, dtype(-1.5), dtype(1.5))
    counts = np.zeros(bins)
    add_extremes_and_counts(values, np.inf, -np.inf, counts)
    np.testing.assert_array_equal(counts, _reference(values, bins)[0])


def test_more_bins_than_the_float32_guess_covers(rng) -> None:
    # Beyond _FAST_BINS bins every value takes the exact float64 test.
    bins = _FAST_BINS + 3
    values = np.concatenate([rng.uniform(-1, 1, 300), _edge_values(bins, np.float64)[-40:]])
    counts = np.zeros(bins)
    add_extremes_and_counts(values, np.inf, -np.inf, counts)
    np.testing.assert_array_equal(counts, _reference(values, bins)[0])
