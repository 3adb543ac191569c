"""Tiling: overlap depth, explicit merging of small chunks, planning, valid blocks."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.kernels import ssim_maps, window_weights
from pipeline.tiling import (
    block_centres,
    map_valid_blocks,
    merge_small_chunks,
    overlap_depth,
    plan_chunks,
)


def test_overlap_depth_is_the_window_radius():
    assert overlap_depth(11) == 5
    assert overlap_depth(7) == 3
    assert overlap_depth(1) == 0


@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.integers(0, 8))
@settings(max_examples=60, deadline=None)
def test_merge_small_chunks_keeps_length_and_reaches_minimum(chunks, minimum):
    merged = merge_small_chunks(tuple(chunks), minimum)
    assert sum(merged) == sum(chunks)
    if sum(chunks) >= minimum:
        assert min(merged) >= minimum
    # Merging only joins neighbours: every merged boundary is an original boundary.
    assert set(np.cumsum(merged)) <= set(np.cumsum(chunks))


def test_merge_small_chunks_examples():
    assert merge_small_chunks((1, 1, 1, 1, 1, 1, 1), 5) == (7,)
    assert merge_small_chunks((6, 2, 2, 2, 6, 1), 5) == (6, 6, 7)
    assert merge_small_chunks((5, 5), 5) == (5, 5)


def test_small_images_are_batched_not_one_task_each():
    chunks, batches = plan_chunks(
        (100_000, 32, 32, 1), depth=5, native=(1, 32, 32), chunk_pixels=2**21
    )
    assert len(chunks[0]) < 100
    assert chunks[1:3] == ((32,), (32,))
    assert batches[0] == (0, 2048 * 32) and batches[-1][1] == 100_000
    bounds = set(np.cumsum(chunks[0]).tolist())
    assert {stop for _, stop in batches} <= bounds  # no image chunk straddles a batch


def test_big_images_are_tiled_in_multiples_of_the_source_chunks():
    chunks, batches = plan_chunks(
        (1, 20_000, 20_000, 1), depth=5, native=(1, 1000, 1000), chunk_pixels=2**21
    )
    assert chunks[0] == (1,)
    assert all(c % 1000 == 0 for c in chunks[1])
    assert max(chunks[1]) * max(chunks[2]) <= 2**21
    assert batches == ((0, 1),)


def test_requested_and_input_chunks_are_kept_but_merged():
    chunks, _ = plan_chunks(
        (4, 30, 30, 3), depth=5, native=(1, 30, 30), chunk_pixels=100, requested=(2, 7, 3)
    )
    assert chunks == ((2, 2), (7, 7, 7, 9), (6, 6, 6, 6, 6), (3,))
    chunks, batches = plan_chunks(
        (4, 30, 30, 1),
        depth=3,
        native=(1, 30, 30),
        chunk_pixels=100,
        requested="input",
        input_chunks=((3, 1), (1, 29), (30,), (1,)),
        batch_images=2,
    )
    assert chunks[:2] == ((2, 2), (30,))
    assert batches == ((0, 2), (2, 4))


@pytest.mark.parametrize(
    ("index", "expected"), [(0, (5, 6)), (1, (6, 13)), (2, (13, 20)), (3, (20, 20))]
)
def test_block_centres(index, expected):
    # The last block lies wholly in the border band: its valid map is empty.
    bounds = np.array([0, 6, 13, 20, 25])
    assert block_centres(bounds, index, 5, 25) == expected


def test_map_valid_blocks_reassembles_the_valid_map_exactly(rng):
    x = rng.random((2, 37, 29, 1))
    y = rng.random((2, 37, 29, 1))
    weights = window_weights("gaussian", 11, 1.5)
    expected = [
        ssim_maps(x[i, ..., 0], y[i, ..., 0], weights=weights, c1=1e-4, c2=9e-4)["ssim"]
        for i in range(2)
    ]
    chunks = ((1, 1), (5, 6, 13, 13), (7, 22), (1,))
    seen: dict[tuple[int, int], np.ndarray] = {}

    def block_fn(xb, yb, *, rows, cols):
        maps = ssim_maps(xb[0, ..., 0], yb[0, ..., 0], weights=weights, c1=1e-4, c2=9e-4)
        assert maps["ssim"].shape == (max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0))
        key = (rows[0], cols[0])
        seen[key] = maps["ssim"]
        return np.array([[maps["ssim"].sum(), maps["ssim"].size]])

    out = map_valid_blocks(
        block_fn,
        [da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks)],
        depth=5,
        out_tail=(2,),
    )
    assert out.shape == (2, 4, 2, 2)
    totals = out.compute(scheduler="synchronous").sum(axis=(1, 2))
    for i in range(2):
        assert totals[i, 1] == expected[i].size
        np.testing.assert_allclose(totals[i, 0], expected[i].sum(), rtol=1e-13)


def test_map_valid_blocks_refuses_chunks_below_the_depth(rng):
    x = da.zeros((1, 20, 20, 1), chunks=(1, 3, 20, 1))
    with pytest.raises(ValueError, match=r"at least the overlap depth 5 \(got \(3, 3, 3"):
        map_valid_blocks(lambda *a, **k: a[0], [x], depth=5, out_tail=(1,))
