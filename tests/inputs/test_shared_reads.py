"""shared_reads: one read per block feeds every part; the graphs hold no tuple tasks."""

from __future__ import annotations

import dask
import numpy as np
import zarr
from PIL import Image

from pipeline.inputs.folders import open_folder_pair
from pipeline.inputs.shared_reads import read_part, shared_reads
from pipeline.inputs.zarr_checked import dask_from_zarr_checked


class _Counted:
    """A read space of ``n`` slots that counts the reads made of it."""

    def __init__(self, n: int) -> None:
        self.shape = (n,)
        self.ndim = 1
        self.dtype = np.dtype(object)
        self.reads: list[tuple[int, int]] = []


def _read(source: _Counted, key: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    start, stop = key[0].start, key[0].stop
    source.reads.append((start, stop))
    slots = np.arange(start, stop)
    return slots[:, None] * np.ones((1, 3)), np.array([f"slot {k}" for k in slots], dtype=object)


def test_each_block_is_read_once_for_all_its_parts():
    source = _Counted(5)
    reads = shared_reads(source, _read, chunks=((2, 2, 1),), name="counted-reads")
    values = read_part(
        reads, 0, meta=np.empty((0, 0)), chunks=((2, 2, 1), (3,)), name="counted-values"
    )
    names = read_part(reads, 1, meta=np.empty((0,), dtype=object), name="counted-names")
    got_values, got_names = dask.compute(values, names, scheduler="sync")
    assert sorted(source.reads) == [(0, 2), (2, 4), (4, 5)]
    np.testing.assert_array_equal(got_values, np.arange(5)[:, None] * np.ones((1, 3)))
    assert list(got_names) == [f"slot {k}" for k in range(5)]
    assert values.chunks == ((2, 2, 1), (3,)) and names.chunks == ((2, 2, 1),)


def _tuple_tasks(*arrays) -> list:
    """Values of the arrays' graphs in the deprecated form: a tuple whose first item calls."""
    graph: dict = {}
    for array in arrays:
        graph.update(dict(array.__dask_graph__()))
    return [v for v in graph.values() if isinstance(v, tuple) and v and callable(v[0])]


def test_folder_and_zarr_graphs_hold_no_tuple_tasks(tmp_path):
    for side in ("reference", "generated"):
        (tmp_path / side).mkdir()
        for k in range(3):
            Image.fromarray(np.full((16, 16), 40 * k, np.uint8)).save(tmp_path / side / f"{k}.png")
    pair = open_folder_pair(tmp_path / "reference", tmp_path / "generated")
    assert pair is not None
    group = pair.groups[0]
    assert group.read_status is not None
    assert _tuple_tasks(group.reference, group.generated, group.read_status) == []
    array = zarr.create_array(
        tmp_path / "a.zarr", data=np.ones((4, 8, 8), np.uint8), chunks=(1, 4, 4)
    )
    pixels, status = dask_from_zarr_checked(array, (2, 4, 4), image_axis=0)
    assert _tuple_tasks(pixels, status) == []
    assert list(status.compute()) == ["ok"] * 4
