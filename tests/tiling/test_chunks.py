"""pipeline.tiling.chunks: overlap depth, merging small chunks, planning, valid blocks.

Also the commit batches, capped by the bytes of their packed statistics: planned by
:func:`pipeline.engine.plan.plan_run` within the budget, and evaluated to the same
values whatever the batches (a store laid out in other batches resumes in the new ones).
"""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipeline as sp
import pipeline.tiling.chunks
from pipeline.engine.run import plan_run
from pipeline.engine.settings import RunConfig
from pipeline.inputs.opening import open_pair
from pipeline.kernels import ssim_maps, window_weights
from pipeline.tiling.chunks import (
    _MIN_ALIGNED_TASKS,
    BATCH_STATISTICS_BYTES,
    block_centres,
    map_valid_blocks,
    merge_small_chunks,
    overlap_depth,
    plan_chunks,
    statistics_bytes_per_image,
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


def _tasks_per_batch(chunks, batches):
    """Tasks (image chunks x spatial tiles) of each batch, checking chunks never straddle one."""
    bounds = np.cumsum((0, *chunks[0])).tolist()
    tiles = len(chunks[1]) * len(chunks[2])
    counts = []
    for start, stop in batches:
        assert start in bounds and stop in bounds, (start, stop)
        counts.append((bounds.index(stop) - bounds.index(start)) * tiles)
    return counts


def test_statistics_bytes_per_image_counts_every_field_and_bin():
    # 4x4 regions and "all": 17 regions of 11 fields and 100 bins, float64.
    assert statistics_bytes_per_image(17, 100) == 17 * 111 * 8
    assert statistics_bytes_per_image(1, 0) == 88


@pytest.mark.parametrize("native", [1, 1000, 4096])
def test_batches_of_a_million_small_images_with_4x4_regions_stay_under_the_budget(native):
    # Sized by task count alone, a batch was 131,072 of these images: ~1.9 GB of
    # packed statistics. Capped, it still holds thousands of images in many tasks.
    per_image = statistics_bytes_per_image(17, 100)
    chunks, batches = plan_chunks(
        (10**6, 32, 32, 1),
        depth=5,
        native=(native, 32, 32),
        chunk_pixels=2**22,
        statistics_bytes=per_image,
    )
    sizes = [stop - start for start, stop in batches]
    assert max(sizes) * per_image <= BATCH_STATISTICS_BYTES
    assert min(sizes[:-1]) >= 4000
    assert min(_tasks_per_batch(chunks, batches)[:-1]) >= _MIN_ALIGNED_TASKS


def test_capped_batches_keep_whole_source_chunks_while_they_have_tasks_enough():
    # Region "all": 77,672 images fit the budget, 18 whole source chunks of 4096.
    chunks, batches = plan_chunks(
        (10**6, 32, 32, 1),
        depth=5,
        native=(4096, 32, 32),
        chunk_pixels=2**22,
        statistics_bytes=statistics_bytes_per_image(1, 100),
    )
    assert set(chunks[0][:-1]) == {4096}
    assert batches[0] == (0, 18 * 4096)


def test_plans_within_the_budget_are_unchanged():
    # 50,000 images of region "all" weigh 43 MB: one batch, planned by task count alone.
    shape, native = (50_000, 32, 32, 1), (1, 32, 32)
    capped = plan_chunks(
        shape,
        depth=5,
        native=native,
        chunk_pixels=2**22,
        statistics_bytes=statistics_bytes_per_image(1, 100),
    )
    assert capped == plan_chunks(shape, depth=5, native=native, chunk_pixels=2**22)
    assert capped[1] == ((0, 50_000),)


def test_an_explicit_batch_size_wins_over_the_budget():
    chunks, batches = plan_chunks(
        (10**6, 32, 32, 1),
        depth=5,
        native=(1, 32, 32),
        chunk_pixels=2**22,
        batch_images=131_072,
        statistics_bytes=statistics_bytes_per_image(17, 100),
    )
    assert batches[0] == (0, 131_072)
    assert chunks[0][0] == 4096  # the unchanged plan's tasks


@given(
    n=st.integers(1, 3000),
    side=st.integers(1, 90),
    native=st.integers(1, 700),
    chunk_pixels=st.integers(1, 2**16),
    statistics_bytes=st.none() | st.integers(1, 2**20),
    requested=st.just("auto")
    | st.tuples(st.integers(1, 60), st.integers(1, 90), st.integers(1, 90)),
    batch_images=st.none() | st.integers(1, 500),
)
@settings(max_examples=150, deadline=None)
def test_batches_cover_every_image_once_in_order(
    n, side, native, chunk_pixels, statistics_bytes, requested, batch_images
):
    chunks, batches = plan_chunks(
        (n, side, side, 1),
        depth=5,
        native=(native, side, side),
        chunk_pixels=chunk_pixels,
        requested=requested,
        batch_images=batch_images,
        statistics_bytes=statistics_bytes,
    )
    assert sum(chunks[0]) == n
    assert batches[0][0] == 0 and batches[-1][1] == n
    assert all(start < stop for start, stop in batches)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(batches))
    tasks = _tasks_per_batch(chunks, batches)  # image chunks never straddle a batch
    sizes = [stop - start for start, stop in batches]
    if batch_images is not None:
        assert set(sizes[:-1]) <= {batch_images}
    elif statistics_bytes is not None:
        most = max(1, BATCH_STATISTICS_BYTES // statistics_bytes)
        # Requested image chunks stay whole: a batch holds at least one.
        allowed = most if requested == "auto" else max(most, requested[0])
        assert max(sizes) <= allowed
        if requested == "auto" and len(batches) > 1 and sizes[0] <= most < n:
            # A capped batch still has tasks for several workers.
            assert tasks[0] >= min(_MIN_ALIGNED_TASKS, sizes[0])


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


def _many_pairs():
    x = da.zeros((200_000, 32, 32), dtype=np.uint8, chunks=(4096, 32, 32))
    return open_pair(x, x)


def test_plan_of_many_small_pairs_with_4x4_regions_stays_under_the_budget():
    # Sized by task count alone the batch was 131,072 pairs: ~1.9 GB of statistics
    # (test_batches_of_a_million_small_images_with_4x4_regions_stay_under_the_budget plans
    # 10**6 pairs; planning them here takes seconds).
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


def test_small_images_are_split_evenly_into_a_multiple_of_four_tasks() -> None:
    # At most 5 images a task: 13 tasks for 64 images, and on two workers the 13th
    # would run alone. Evened out: 16 tasks of 4 (1, 2 or 4 workers finish together).
    shape, native, pixels = (64, 512, 512, 3), (1, 512, 512), 5 * 512 * 512 * 3
    chunks, batches = plan_chunks(shape, depth=5, native=native, chunk_pixels=pixels)
    assert chunks[0] == (4,) * 16 and batches == ((0, 64),)
    assert chunks[1:] == ((512,), (512,), (3,))
    # 65 images: 14 tasks would be the plain split; 16 of 4 or 5 instead.
    chunks, _ = plan_chunks((65, 512, 512, 3), depth=5, native=native, chunk_pixels=pixels)
    assert len(chunks[0]) == 16 and sum(chunks[0]) == 65 and set(chunks[0]) == {4, 5}
    # Fewer images than four tasks can hold one each: left as they are.
    chunks, _ = plan_chunks((3, 512, 512, 3), depth=5, native=native, chunk_pixels=pixels)
    assert chunks[0] == (3,)


def test_with_mean_maps_small_colour_images_fill_a_task_per_channel() -> None:
    # Each task's mean-map sums are 40 bytes per map pixel, whatever its images: with mean
    # maps a task of small images counts chunk_pixels map pixels, so RGB pairs share tasks
    # 16 at a time as grey ones do, not 4 (fewer sums to allocate, fill and add up).
    native, pixels = (1, 512, 512), 2**22
    rgb, grey = (64, 512, 512, 3), (64, 512, 512, 1)
    assert plan_chunks(rgb, depth=5, native=native, chunk_pixels=pixels)[0][0] == (4,) * 16
    with_maps = plan_chunks(rgb, depth=5, native=native, chunk_pixels=pixels, mean_maps=True)
    assert with_maps[0][0] == (16,) * 4 and with_maps[1] == ((0, 64),)
    for maps in (False, True):
        assert (
            plan_chunks(grey, depth=5, native=native, chunk_pixels=pixels, mean_maps=maps)[0][0]
            == (16,) * 4
        )
    # Images larger than a task (pixels times channels) are tiled as before.
    for big in ((2, 4096, 4096, 3), (3, 1500, 1500, 3)):
        assert plan_chunks(
            big, depth=5, native=(1, 4096, 4096), chunk_pixels=pixels, mean_maps=True
        ) == (plan_chunks(big, depth=5, native=(1, 4096, 4096), chunk_pixels=pixels))


def test_even_split_keeps_whole_source_chunks_and_requested_chunks() -> None:
    # Source chunks of 4 images: tasks hold whole source chunks (the last may be short).
    chunks, _ = plan_chunks((30, 64, 64, 1), depth=3, native=(4, 64, 64), chunk_pixels=12 * 64 * 64)
    assert chunks[0] == (8, 8, 8, 6)
    # A requested image chunk is never evened out.
    requested, _ = plan_chunks(
        (13, 64, 64, 1), depth=3, native=(1, 64, 64), chunk_pixels=100, requested=(5, 64, 64)
    )
    assert requested[0] == (5, 5, 3)


def test_an_images_statistics_do_not_depend_on_how_many_share_its_task() -> None:
    # Evening out the tasks puts some images alone in a task: their maps (alone, views
    # of the kernel's (row, map, column) output) must reduce exactly as in a task of several.
    rng = np.random.default_rng(17)
    x = rng.integers(0, 256, (12, 32, 32), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    settings = {"regions": "4x4", "hist_bins": 20}
    several = sp.evaluate(x, y, chunks=(3, 32, 32), **settings)
    alone = sp.evaluate(x, y, chunks=(1, 32, 32), **settings)
    per_pair = [name for name in several.data_vars if "image" in several[name].dims]
    assert "ssim_std" in per_pair
    for name in per_pair:
        np.testing.assert_array_equal(alone[name].values, several[name].values, err_msg=name)


@pytest.mark.parametrize(
    ("grid", "image_chunks"), [((9, 11), (2, 1)), ((1, 1), (3,)), ((2, 3, 4), (1,))]
)
def test_merged_block_statistics_are_those_of_the_whole_image(rng, grid, image_chunks):
    # Each block's packed partials of random values; merged (runs of 8, then runs of
    # runs) they are the statistics of every value at once, checked against NumPy.
    from pipeline.kernels.statistics import COUNT, HIST, M2, MAX, MIN, SUM
    from pipeline.reductions.statistics import block_statistics
    from pipeline.tiling.chunks import merge_block_statistics

    n = sum(image_chunks)
    values = {b: rng.random((n, 3, 4)) * 2 - 1 for b in itertools.product(*map(range, grid))}
    blocks = np.empty((n, *grid, 1, HIST + 10))
    for b, ssim in values.items():
        maps = {"ssim": ssim, "luminance": ssim, "contrast": ssim, "structure": ssim}
        blocks[(slice(None), *b)] = block_statistics(maps, None, 1, 10)
    per_block = da.from_array(
        blocks, chunks=(image_chunks, *((1,) * g for g in grid), 1, HIST + 10)
    )
    merged = merge_block_statistics(per_block, axis=tuple(range(1, len(grid) + 1)))
    assert merged.chunks == (image_chunks, (1,), (HIST + 10,))
    got = merged.compute(scheduler="threads")
    every = np.concatenate([v.reshape(n, -1) for v in values.values()], axis=1)
    np.testing.assert_array_equal(got[:, 0, COUNT], every.shape[1])
    np.testing.assert_allclose(got[:, 0, SUM], every.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(got[:, 0, M2], every.var(axis=1) * every.shape[1], rtol=1e-10)
    np.testing.assert_array_equal(got[:, 0, MIN], every.min(axis=1))
    np.testing.assert_array_equal(got[:, 0, MAX], every.max(axis=1))
    assert (got[:, 0, HIST:].sum(axis=1) == every.shape[1]).all()


def test_merged_block_statistics_follow_the_runs_of_eight_bit_for_bit(rng):
    # The merge order written out: the 9 x 11 blocks in row-major order in runs of 8
    # (13 runs, the last of 3), those 13 in runs of 8 (2), then the 2: merge_statistics
    # of each run, compared bit for bit (float M2 merges depend on the order).
    from pipeline.kernels.statistics import HIST, merge_statistics
    from pipeline.reductions.statistics import block_statistics
    from pipeline.tiling.chunks import MERGE_EVERY, merge_block_statistics

    assert MERGE_EVERY == 8
    grid = (9, 11)
    blocks = np.empty((2, *grid, 1, HIST + 10))
    for b in itertools.product(*map(range, grid)):
        ssim = (rng.random((2, 3, 4)) * 2 - 1) * 10.0 ** rng.integers(-3, 3)
        maps = {"ssim": ssim, "luminance": ssim, "contrast": ssim, "structure": ssim}
        blocks[(slice(None), *b)] = block_statistics(maps, None, 1, 10)
    per_block = da.from_array(blocks, chunks=((1, 1), (1,) * 9, (1,) * 11, 1, HIST + 10))
    got = merge_block_statistics(per_block, axis=(1, 2)).compute(scheduler="threads")
    level = [blocks[:, i, j] for i, j in itertools.product(*map(range, grid))]
    while len(level) > 1:
        runs = [level[i : i + 8] for i in range(0, len(level), 8)]
        level = [np.asarray(merge_statistics(np.stack(run, axis=1), axis=1)) for run in runs]
    np.testing.assert_array_equal(got, level[0])


def test_merge_block_statistics_refuses_other_axes():
    from pipeline.tiling.chunks import merge_block_statistics

    per_block = da.zeros((2, 3, 3, 1, 12), chunks=(1, 1, 1, 1, 6))
    with pytest.raises(ValueError, match=r"axis must be the block axes 1 \.\. n \(got \(2, 3\)\)"):
        merge_block_statistics(per_block, axis=(2, 3))
    with pytest.raises(ValueError, match=r"trailing axes must be one chunk each"):
        merge_block_statistics(per_block, axis=(1, 2))
