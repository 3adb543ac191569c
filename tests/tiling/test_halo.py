"""map_overlapping: the same overlapped blocks as dask's overlap(boundary="none"), fewer tasks."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline.tiling.halo import map_overlapping


def _dask_blocks(array, depth, axes):
    """Every overlapped block as dask.array.overlap gives it, by block index."""
    overlapped = da.overlap.overlap(
        array,
        depth={axis: (depth if axis in axes else 0) for axis in range(array.ndim)},
        boundary="none",
        allow_rechunk=False,
    )
    grid = overlapped.numblocks
    return {
        index: overlapped.blocks[index].compute(scheduler="synchronous")
        for index in itertools.product(*(range(n) for n in grid))
    }


def _our_blocks(arrays, depth, axes):
    """Every overlapped block map_overlapping hands to its function, by block index."""
    seen = {}

    def record(*blocks, location):
        seen[location] = [b.copy() for b in blocks]
        return np.zeros((1,) * (len(location) + 1))

    grid = arrays[0].numblocks[:-1]
    out = map_overlapping(
        record,
        arrays,
        depth=depth,
        axes=axes,
        chunks=(*((1,) * n for n in grid), (1,)),
        meta=np.empty((0,) * (len(grid) + 1)),
    )
    out.compute(scheduler="synchronous")
    return seen


@pytest.mark.parametrize(
    ("shape", "chunks", "depth", "axes"),
    [
        ((2, 37, 29, 1), ((1, 1), (5, 6, 13, 13), (7, 22), (1,)), 5, (1, 2)),  # uneven
        ((1, 20, 20, 3), ((1,), (5, 5, 5, 5), (5, 15), (3,)), 5, (1, 2)),  # chunks == depth
        ((1, 16, 16, 1), ((1,), (16,), (16,), (1,)), 3, (1, 2)),  # one block: nothing to lend
        ((3, 9, 10, 12, 1), ((3,), (4, 5), (3, 3, 4), (6, 6), (1,)), 2, (1, 2, 3)),  # volume
        ((2, 30, 30, 1), ((2,), (10, 10, 10), (15, 15), (1,)), 0, (1, 2)),  # no overlap
    ],
)
def test_blocks_equal_dask_overlap(rng, shape, chunks, depth, axes):
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = rng.random(shape).astype(np.float32)
    arrays = [da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks)]
    ours = _our_blocks(arrays, depth, axes)
    for k, array in enumerate(arrays):
        expected = _dask_blocks(array, depth, axes)
        assert len(ours) == len(expected)
        for index, block in expected.items():
            got = ours[index[:-1]][k]
            assert got.dtype == block.dtype
            np.testing.assert_array_equal(got, block, err_msg=f"block {index}")


def test_output_blocks_keep_their_place_and_the_graph_is_small(rng):
    x = da.from_array(rng.random((1, 40, 40, 1)), chunks=(1, 10, 10, 1))
    out = map_overlapping(
        lambda xb, *, location: np.array([[[[xb.shape[1], xb.shape[2], *location[1:]]]]]),
        [x],
        depth=4,
        axes=(1, 2),
        chunks=((1,), (1,) * 4, (1,) * 4, (4,)),
        meta=np.empty((0, 0, 0, 0)),
    )
    values = out.compute()
    assert values.shape == (1, 4, 4, 4)
    # Inner blocks grow by the depth on both sides, edge blocks on one.
    assert values[0, 0, 0].tolist() == [14, 14, 0, 0]
    assert values[0, 1, 2].tolist() == [18, 18, 1, 2]
    assert values[0, 3, 3].tolist() == [14, 14, 3, 3]
    # One read, one edge-lending and one consuming task per block.
    (optimized,) = dask.optimize(out)
    assert len(optimized.__dask_graph__()) <= 3 * 16 + 1


def test_works_under_a_threaded_scheduler_with_shared_inputs(rng):
    x = rng.random((2, 32, 31, 1))
    array = da.from_array(x, chunks=(1, 8, 9, 1))
    out = map_overlapping(
        lambda a, b, *, location: np.array([[[[float((a - b).sum()), a.sum()]]]]),
        [array, array],
        depth=3,
        axes=(1, 2),
        chunks=((1, 1), (1,) * 4, (1,) * 4, (2,)),
        meta=np.empty((0, 0, 0, 0)),
    )
    values = out.compute(scheduler="threads")
    assert (values[..., 0] == 0).all()
    expected = sum(
        block.sum() for block in _dask_blocks(array, 3, (1, 2)).values()
    )  # each block's own overlapped sum
    assert np.isclose(values[..., 1].sum(), expected)


def test_refuses_a_chunked_last_axis_or_unequal_chunks():
    x = da.zeros((1, 20, 20, 4), chunks=(1, 10, 10, 2))
    with pytest.raises(ValueError, match=r"single chunk along the last axis"):
        map_overlapping(
            lambda *b, location: b[0],
            [x],
            depth=2,
            axes=(1, 2),
            chunks=x.chunks,
            meta=np.empty((0,) * 4),
        )
    y = da.zeros((1, 20, 20, 1), chunks=(1, 10, 10, 1))
    z = da.zeros((1, 20, 20, 1), chunks=(1, 5, 10, 1))
    with pytest.raises(ValueError, match=r"must share their chunks"):
        map_overlapping(
            lambda *b, location: b[0],
            [y, z],
            depth=2,
            axes=(1, 2),
            chunks=y.chunks,
            meta=np.empty((0,) * 4),
        )
    with pytest.raises(ValueError, match=r"at least the overlap depth 6 \(got \(5, 5, 5, 5\)"):
        map_overlapping(
            lambda *b, location: b[0],
            [z],
            depth=6,
            axes=(1, 2),
            chunks=z.chunks,
            meta=np.empty((0,) * 4),
        )


def test_reads_with_room_get_their_halo_in_place(tmp_path, rng):
    # Zarr stacks read straight from their chunk files with room for the halo: each
    # block is the array its read made, extended where it lies (no copy of the tile).
    from pipeline.inputs.padded import room_around
    from pipeline.inputs.zarr_direct import dask_from_zarr

    shape, chunks = (2, 37, 29), (1, 10, 8)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    store = zarr.create_array(tmp_path / "x.zarr", shape=shape, chunks=chunks, dtype="u1")
    store[...] = x
    array = dask_from_zarr(zarr.open_array(tmp_path / "x.zarr", mode="r"), chunks, room=(0, 4, 4))
    canonical = array[..., None]
    seen, in_place = {}, {}

    def record(block, *, location):
        seen[location] = block.copy()
        around = room_around(block)
        in_place[location] = around is not None and (
            around.__array_interface__["data"][0] == block.__array_interface__["data"][0]
        )
        return np.zeros((1,) * (len(location) + 1))

    grid = canonical.numblocks[:-1]
    map_overlapping(
        record,
        [canonical],
        depth=4,
        axes=(1, 2),
        chunks=(*((1,) * n for n in grid), (1,)),
        meta=np.empty((0,) * (len(grid) + 1)),
    ).compute(scheduler="threads")
    expected = _dask_blocks(da.from_array(x[..., None], chunks=(*chunks, 1)), 4, (1, 2))
    assert len(seen) == len(expected)
    for index, block in expected.items():
        np.testing.assert_array_equal(seen[index[:-1]], block, err_msg=f"block {index}")
    assert all(in_place.values())


def test_an_in_memory_source_is_never_written(rng):
    # Views of the caller's image have its other pixels around them: the halo is
    # built in a new array, and a read-only image stays as it was.
    x = rng.integers(0, 256, (1, 30, 30, 1), dtype=np.uint8)
    x.flags.writeable = False
    before = x.copy()
    ours = _our_blocks([da.from_array(x, chunks=(1, 10, 10, 1))], 3, (1, 2))
    expected = _dask_blocks(da.from_array(before, chunks=(1, 10, 10, 1)), 3, (1, 2))
    for index, block in expected.items():
        np.testing.assert_array_equal(ours[index[:-1]][0], block)
    np.testing.assert_array_equal(x, before)
