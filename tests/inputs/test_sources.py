"""pipeline.inputs.sources: the statuses of a pair's two reads joined into one."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from dask.local import get_sync

from pipeline.inputs.files import TRANSIENT_SUFFIX, is_transient_status
from pipeline.inputs.opening import open_pair
from pipeline.inputs.sources import join_statuses, open_array


def test_joined_status_is_transient_only_when_every_failure_is():
    # A pair whose two reads failed, one for good and one transiently, fails for good:
    # a retry would meet the permanent failure again.
    retry = "chunk missing" + TRANSIENT_SUFFIX
    statuses = [
        da.from_array(np.array(texts, dtype=object), chunks=2)
        for texts in (["corrupt", "ok", retry, "ok"], [retry, retry, "ok", "ok"])
    ]
    joined = join_statuses(*statuses).compute().tolist()
    assert joined == [f"{retry}; corrupt", retry, retry, "ok"]
    assert [is_transient_status(text) for text in joined[:3]] == [False, True, True]


# -- Zarr arrays behind URLs ------------------------------------------------------------


def _remote_stack(url: str, data: np.ndarray, chunks: tuple[int, ...]) -> None:
    import zarr

    from pipeline.storage.locations import location, zarr_store

    store = zarr_store(location(url), read_only=False)
    array = zarr.create_array(store, shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[:] = data


def test_numpy_source_is_read_in_place_under_a_fresh_key() -> None:
    # No copy and no hash of the pixels: the one block of the graph is the caller's
    # array, and two opens of the same array never share a key.
    source = np.arange(2 * 5 * 6 * 3, dtype=np.uint8).reshape(2, 5, 6, 3)
    first, label, native = open_array(source, "reference")
    second, _, _ = open_array(source, "reference")
    assert label == "numpy array" and native == (1, 1, 1, 1)
    assert first.name != second.name
    (block,) = dict(first.__dask_graph__()).values()
    assert block is source
    assert first.chunks == ((2,), (5,), (6,), (3,)) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[1, 2:4].compute(), source[1, 2:4])


def test_in_memory_pair_is_cut_into_views_not_copies() -> None:
    # Dask's rechunk copies each piece of a one-block array; the run's tasks read views.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (13, 9, 10, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (13, 9, 10, 3), dtype=np.uint8)
    pair = open_pair(x, y, channel_axis=-1)
    chunks = ((5, 5, 3), (4, 5), (10,), (3,))
    stacks = pair.chunked(chunks)
    again = pair.chunked(chunks)
    for stack, source, other in zip(stacks, (x, y), again, strict=True):
        assert stack.chunks == chunks and stack.name == other.name
        np.testing.assert_array_equal(stack.compute(), source)
        (piece,) = get_sync(dict(stack.__dask_graph__()), [(stack.name, 1, 1, 0, 0)])
        np.testing.assert_array_equal(piece, source[5:10, 4:9])
        assert np.shares_memory(piece, source)


def test_zarr_url_reads_the_same_pixels_and_names_the_url(
    s3_bucket: str, stacks: tuple[np.ndarray, np.ndarray]
) -> None:
    from pipeline.inputs.opening import open_pair

    x, y = stacks
    _remote_stack(f"s3://{s3_bucket}/x.zarr", x, (2, 12, 16))
    _remote_stack(f"s3://{s3_bucket}/y.zarr", y, (2, 12, 16))
    pair = open_pair(f"s3://{s3_bucket}/x.zarr", f"s3://{s3_bucket}/y.zarr")
    assert pair.native_chunks == (2, 12, 16)
    np.testing.assert_array_equal(pair.reference.compute()[..., 0], x)
    np.testing.assert_array_equal(pair.generated.compute()[..., 0], y)
    assert pair.reference_names[1] == f"s3://{s3_bucket}/x.zarr[1]"
    assert list(pair.read_status.compute()) == ["ok"] * len(x)


def test_zarr_url_missing_chunk_fails_its_images_naming_the_url(
    s3_bucket: str, stacks: tuple[np.ndarray, np.ndarray]
) -> None:
    from pipeline.inputs.opening import open_pair
    from pipeline.storage.locations import filesystem, location

    x, _ = stacks
    url = f"s3://{s3_bucket}/x.zarr"
    _remote_stack(url, x, (1, 24, 32))
    pair = open_pair(url, url)
    # The chunk of image 2 vanishes after the run was planned.
    filesystem(location(url)).rm(f"{s3_bucket}/x.zarr/c/2/0/0")
    status = list(pair.read_status.compute())
    assert status[:2] == ["ok", "ok"] and status[3] == "ok"
    assert f"'c/2/0/0' of array s3://{s3_bucket}/x.zarr is not in the store" in status[2]


@pytest.mark.parametrize(
    ("suffix", "error", "match"),
    [
        ("/nope.zarr", FileNotFoundError, "reference Zarr store: no object or prefix at s3://"),
        ("/group.zarr", ValueError, "is a Zarr group, not an array; its arrays: a"),
    ],
)
def test_zarr_url_bad_inputs_are_named_before_work(
    s3_bucket: str, suffix: str, error: type[Exception], match: str
) -> None:
    import zarr

    from pipeline.inputs.sources import open_array
    from pipeline.storage.locations import location, zarr_store

    group = zarr.open_group(zarr_store(location(f"s3://{s3_bucket}/group.zarr"), read_only=False))
    group.create_array("a", shape=(4,), dtype="uint8")
    with pytest.raises(error, match=match):
        open_array(f"s3://{s3_bucket}{suffix}", "reference")
    with pytest.raises(FileNotFoundError, match="bucket 'absent-bucket-7' of s3://absent"):
        open_array("s3://absent-bucket-7/x.zarr", "reference")


def test_file_url_is_a_local_zarr_path(tmp_path, stacks: tuple[np.ndarray, np.ndarray]) -> None:
    import zarr

    from pipeline.inputs.sources import open_array

    x, _ = stacks
    zarr.create_array(tmp_path / "x.zarr", shape=x.shape, dtype=x.dtype)[:] = x
    array, label, _ = open_array(f"file://{tmp_path}/x.zarr", "reference")
    np.testing.assert_array_equal(array.compute(), x)
    assert label == str(tmp_path / "x.zarr")


def test_graph_of_a_zarr_url_pickles_for_distributed_workers(
    s3_bucket: str, stacks: tuple[np.ndarray, np.ndarray]
) -> None:
    import pickle

    from pipeline.inputs.opening import open_pair

    x, _ = stacks
    _remote_stack(f"s3://{s3_bucket}/x.zarr", x, (2, 12, 16))
    pair = open_pair(f"s3://{s3_bucket}/x.zarr", f"s3://{s3_bucket}/x.zarr")
    copy = pickle.loads(pickle.dumps((pair.reference, pair.read_status)))
    pixels, status = copy[0].compute(scheduler="sync"), copy[1].compute(scheduler="sync")
    np.testing.assert_array_equal(pixels[..., 0], x)
    assert list(status) == ["ok"] * len(x)


def test_zarr_over_https_is_read_only_and_read(
    tmp_path, stacks: tuple[np.ndarray, np.ndarray]
) -> None:
    import functools
    import http.server
    import threading

    import zarr

    from pipeline.inputs.sources import open_array

    pytest.importorskip("aiohttp")
    x, _ = stacks
    zarr.create_array(tmp_path / "x.zarr", shape=x.shape, chunks=(1, 12, 16), dtype=x.dtype)[:] = x

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        root = f"http://127.0.0.1:{server.server_address[1]}"
        array, label, _ = open_array(f"{root}/x.zarr", "reference")
        np.testing.assert_array_equal(array.compute(), x)
        assert label == f"{root}/x.zarr"
        with pytest.raises(FileNotFoundError, match=f"no Zarr metadata .* at {root}/none.zarr"):
            open_array(f"{root}/none.zarr", "reference")
    finally:
        server.shutdown()
        server.server_close()
