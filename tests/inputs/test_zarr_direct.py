"""The direct chunk-file reader gives exactly what Zarr gives, or leaves the read to Zarr.

Reference: Zarr's own ``array[region]`` on the same store (zarr-python is the
independent implementation of the format here). A chunk file that cannot be read
or decoded is named by a :class:`~pipeline.inputs.zarr_direct.ChunkReadError`,
transient only when a retry may pass, and the other chunks of the read are kept.
"""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec

import pipeline.inputs.zarr_direct as zarr_direct
from pipeline import evaluate
from pipeline.inputs.files import TRANSIENT_SUFFIX
from pipeline.inputs.opening import open_pair
from pipeline.inputs.options import InputOptions
from pipeline.inputs.padded import room_around
from pipeline.inputs.zarr_direct import (
    ChunkFileReader,
    ChunkReadError,
    dask_from_zarr,
    direct_reader,
)

SHAPE = (3, 37, 29)
CHUNKS = (2, 10, 8)  # uneven: edge chunks are partial along every axis

# name -> keyword arguments of zarr.create_array that this reader must read itself
DIRECT_LAYOUTS = {
    "v3 default (zstd)": {},
    "v3 zstd with checksum": {"compressors": ZstdCodec(level=3, checksum=True)},
    "v3 uncompressed": {"compressors": None},
    "v3 blosc": {"compressors": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")},
    "v3 gzip": {"compressors": GzipCodec(level=6)},
    "v3 big-endian bytes": {"serializer": BytesCodec(endian="big"), "dtype": "uint16"},
    "v3 float32": {"dtype": "float32"},
    "v3 int16": {"dtype": "int16"},
    "v3 bool": {"dtype": "bool"},
    "v2 zstd": {"zarr_format": 2, "compressors": numcodecs.Zstd(level=1)},
    "v2 blosc": {"zarr_format": 2, "compressors": numcodecs.Blosc(cname="zstd", shuffle=2)},
    "v2 zlib": {"zarr_format": 2, "compressors": numcodecs.Zlib(level=1)},
    "v2 gzip": {"zarr_format": 2, "compressors": numcodecs.GZip(level=5)},
    "v2 uncompressed": {"zarr_format": 2, "compressors": None},
    "v2 big-endian float64": {"zarr_format": 2, "dtype": ">f8"},
    "v2 '/' separator": {"zarr_format": 2, "chunk_key_encoding": {"name": "v2", "separator": "/"}},
}

# layouts the reader must leave to Zarr
ZARR_LAYOUTS = {
    "v3 sharded": {"shards": (2, 20, 16)},
    "v3 crc32c": {"compressors": (ZstdCodec(), Crc32cCodec())},
    "v3 transpose filter": {"filters": TransposeCodec(order=(2, 1, 0))},
    "v2 delta filter": {"zarr_format": 2, "filters": [numcodecs.Delta(dtype="u1")]},
    "v2 Fortran order": {"zarr_format": 2, "order": "F"},
    "v2 lz4 (not checked here)": {"zarr_format": 2, "compressors": numcodecs.LZ4()},
}


def _create(path, data, **options):
    options = {"chunks": CHUNKS, "dtype": "uint8", **options}
    array = zarr.create_array(path, shape=data.shape, **options)
    array[...] = data.astype(options["dtype"])
    return zarr.open_array(path, mode="r")


def _regions(rng, n=25):
    """Random boxes (inside one chunk, across many, at the edges), plus whole and empty."""
    out = [tuple(slice(0, s) for s in SHAPE), (slice(1, 1), slice(0, 5), slice(2, 9))]
    for _ in range(n):
        box = []
        for s in SHAPE:
            a, b = sorted(rng.integers(0, s + 1, 2))
            box.append(slice(int(a), int(max(b, a + 1))))
        out.append(tuple(box))
    return out


@pytest.fixture
def data(rng):
    return rng.integers(0, 250, SHAPE).astype(np.float64) - 7.0


@pytest.mark.parametrize("layout", sorted(DIRECT_LAYOUTS))
def test_direct_layouts_read_exactly_what_zarr_reads(tmp_path, rng, data, layout):
    array = _create(tmp_path / "a.zarr", data, **DIRECT_LAYOUTS[layout])
    reader = direct_reader(array)
    assert isinstance(reader, ChunkFileReader), layout
    for region in _regions(rng):
        got, want = reader[region], array[region]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    stack = dask_from_zarr(array, (1, 7, 29))
    assert stack.name.startswith("from-zarr-direct-")
    np.testing.assert_array_equal(stack.compute(), array[...])


@pytest.mark.parametrize("layout", sorted(ZARR_LAYOUTS))
def test_other_layouts_are_left_to_zarr(tmp_path, data, layout):
    array = _create(tmp_path / "a.zarr", data, **ZARR_LAYOUTS[layout])
    assert direct_reader(array) is None
    stack = dask_from_zarr(array, array.shards or array.chunks)
    np.testing.assert_array_equal(stack.compute(), array[...])


def test_in_memory_store_is_left_to_zarr(data):
    array = zarr.create_array(zarr.storage.MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="u1")
    array[...] = data.astype("u1")
    assert direct_reader(array) is None


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_chunks_without_a_file_follow_zarrs_fill_value(tmp_path, rng, data, zarr_format):
    # Never-written chunks and chunks left out because they equal the fill value.
    array = zarr.create_array(
        tmp_path / "a.zarr",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="int16",
        fill_value=-3,
        zarr_format=zarr_format,
        config={"write_empty_chunks": False},
    )
    array[0, :20, :16] = data[0, :20, :16]
    array[2, 10:20] = -3  # a whole row of chunks equal to the fill value: no files
    array = zarr.open_array(tmp_path / "a.zarr", mode="r")
    reader = direct_reader(array)
    assert reader is not None
    for region in _regions(rng):
        np.testing.assert_array_equal(reader[region], array[region])


def test_array_inside_a_group(tmp_path, data):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    array = group.create_array("sub/images", shape=SHAPE, chunks=CHUNKS, dtype="u1")
    array[...] = data.astype("u1")
    reopened = zarr.open_array(tmp_path / "g.zarr" / "sub" / "images", mode="r")
    for source in (array, reopened):
        reader = direct_reader(source)
        assert reader is not None
        np.testing.assert_array_equal(reader[:, 3:30, 5:20], data.astype("u1")[:, 3:30, 5:20])


def test_other_indexing_goes_to_zarr(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data)
    reader = direct_reader(array)
    np.testing.assert_array_equal(reader[1:3], array[1:3])  # trailing axes whole
    np.testing.assert_array_equal(reader[1], array[1])
    np.testing.assert_array_equal(reader[:, ::3, 2:9], array[:, ::3, 2:9])


def test_corrupt_chunk_file_is_named(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data)
    chunk = tmp_path / "a.zarr" / "c" / "1" / "2" / "1"
    chunk.write_bytes(b"not zstd at all")
    reader = direct_reader(array)
    np.testing.assert_array_equal(reader[:, :20, :8], array[:, :20, :8])  # elsewhere fine
    with pytest.raises(ValueError, match=r"Zarr chunk file '.*c/1/2/1' could not be decoded"):
        reader[2:3, 20:30, 8:16]


def test_chunk_of_the_wrong_size_is_named(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data)
    (tmp_path / "a.zarr" / "c" / "0" / "0" / "0").write_bytes(numcodecs.Zstd().encode(b"x" * 99))
    with pytest.raises(ValueError, match=r"c/0/0/0' holds 99 bytes once decoded, not the 160"):
        direct_reader(array)[0:1, 0:1, 0:1]


def test_corrupt_chunk_file_fails_its_pair_in_evaluate(tmp_path, rng):
    stack = rng.integers(0, 256, (2, 24, 24), dtype=np.uint8)
    good = zarr.create_array(tmp_path / "good.zarr", data=stack, chunks=(1, 24, 24))
    bad = zarr.create_array(tmp_path / "bad.zarr", data=stack, chunks=(1, 24, 24))
    assert good.shape == bad.shape
    (tmp_path / "bad.zarr" / "c" / "1" / "0" / "0").write_bytes(b"corrupt")
    ds = evaluate(tmp_path / "good.zarr", tmp_path / "bad.zarr")
    assert ds.status.values[0] == "ok" and ds.ssim.values[0, 0] == 1.0  # identical images
    assert str(ds.status.values[1]).startswith(
        f"Zarr chunk 'c/1/0/0' of array {tmp_path / 'bad.zarr'} could not be decoded ("
    )
    assert np.isnan(ds.ssim.values[1, 0])


def test_relative_store_path_is_read_from_any_directory(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _create("a.zarr", data)
    reader = direct_reader(zarr.open_array("a.zarr", mode="r"))
    monkeypatch.chdir(tmp_path.parent)  # e.g. a worker started elsewhere
    np.testing.assert_array_equal(reader[:, 2:30, 1:9], data.astype("u1")[:, 2:30, 1:9])


def test_reader_pickles_and_tokenizes_deterministically(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data)
    reader = pickle.loads(pickle.dumps(direct_reader(array)))
    np.testing.assert_array_equal(reader[:, 5:25, 3:17], array[:, 5:25, 3:17])
    again = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert dask_from_zarr(array, CHUNKS).name == dask_from_zarr(again, CHUNKS).name
    assert dask_from_zarr(array, CHUNKS).name != dask_from_zarr(array, (3, 37, 29)).name


@pytest.mark.parametrize("missing_chunks", ["fail", "fill"])
def test_engine_reads_zarr_sources_directly_with_the_same_results(tmp_path, rng, missing_chunks):
    reference = rng.integers(0, 256, (3, 40, 36), dtype=np.uint8)
    noise = rng.integers(-30, 31, reference.shape)
    generated = np.clip(reference + noise, 0, 255).astype(np.uint8)
    zarr.create_array(tmp_path / "x.zarr", data=reference, chunks=(2, 16, 16))
    zarr.create_array(tmp_path / "y.zarr", data=generated, chunks=(2, 16, 16))
    options = InputOptions(missing_chunks=missing_chunks)
    pair = open_pair(tmp_path / "x.zarr", tmp_path / "y.zarr", options=options)
    for stack in pair.chunked(((1, 1, 1), (16, 16, 8), (16, 16, 4), (1,))):
        graph = dict(stack.__dask_graph__())
        assert any(isinstance(value, ChunkFileReader) for value in graph.values())
    from_zarr = evaluate(
        tmp_path / "x.zarr", tmp_path / "y.zarr", chunks=(1, 16, 16), missing_chunks=missing_chunks
    )
    in_memory = evaluate(reference, generated, chunks=(1, 16, 16))
    for name in ("ssim", "luminance", "contrast", "structure", "ssim_min", "ssim_max"):
        np.testing.assert_array_equal(from_zarr[name].values, in_memory[name].values)


def _write(path: Path, data: np.ndarray, options: dict) -> Path:
    zarr.create_array(path, data=data, **options)
    return path


def test_reader_reads_the_other_chunks_and_names_the_bad_one(tmp_path, stacks):
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 12, 16)})
    (y / "c/1/1/0").write_bytes(b"garbage")
    reader = direct_reader(zarr.open_array(y, mode="r"))
    assert reader is not None
    out, missing, failed = reader.read([(0, 4), (0, 24), (0, 32)])
    assert missing == [] and [index for index, _ in failed] == [(1, 1, 0)]
    assert not failed[0][1].transient
    expected = stacks[1].copy()
    expected[1, 12:24, 0:16] = 0  # never taken for data
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(
        ChunkReadError, match=r"Zarr chunk file '.*y\.zarr/c/1/1/0' could not be decoded \("
    ):
        reader[1:2]


@pytest.mark.parametrize(
    ("error", "reason", "transient"),
    [
        (OSError(errno.EIO, "Input/output error"), "could not be read (Input/output error)", True),
        (TimeoutError("timed out"), "could not be read (timed out)", True),
        (ConnectionResetError("reset by peer"), "could not be read (reset by peer)", True),
        (MemoryError(), "could not be decoded (ran out of memory)", True),
        (
            OSError("no errno: a codec's own error"),
            "could not be decoded (OSError: no errno",
            False,
        ),
        (
            RuntimeError("Zstd error " + "x" * 400),
            "could not be decoded (RuntimeError: Zstd",
            False,
        ),
    ],
)
def test_read_failures_are_transient_only_when_a_retry_may_pass(error, reason, transient):
    text, retried = zarr_direct.read_failure(error)
    assert text.startswith(reason) and retried is transient
    assert len(text) < 260  # a decoder's long message is cut


def test_chunk_read_error_survives_pickling():
    # A worker process sends it back to the client (processes or distributed scheduler).
    import pickle

    sent = ChunkReadError(
        "/data/y.zarr/c/1/0/0", "could not be read (Input/output error)", transient=True
    )
    error = pickle.loads(pickle.dumps(sent))
    assert (error.path, error.transient) == ("/data/y.zarr/c/1/0/0", True)
    assert str(error) == (
        "Zarr chunk file '/data/y.zarr/c/1/0/0' could not be read (Input/output error)"
        + TRANSIENT_SUFFIX
    )


@pytest.mark.parametrize(
    "layout", ["v3 default (zstd)", "v3 blosc", "v3 uncompressed", "v3 gzip", "v2 zstd"]
)
def test_reads_with_room_give_the_same_pixels_inside_room_where_the_array_goes_on(
    tmp_path, rng, data, layout
):
    array = _create(tmp_path / "a.zarr", data, **DIRECT_LAYOUTS[layout])
    reader = direct_reader(array, (0, 3, 2))
    assert isinstance(reader, ChunkFileReader) and reader.room == (0, 3, 2)
    regions = _regions(rng)
    # Every result kept alive: no buffer of one read is handed to a later one.
    got = [reader[region] for region in regions]
    for region, tile in zip(regions, got, strict=True):
        np.testing.assert_array_equal(tile, array[region])
        if tile.size == 0:
            continue
        around = room_around(tile)
        assert around is not None
        (y0, y1), (x0, x1) = [(s.start, s.stop) for s in region[1:]]
        expected = (
            tile.shape[0],
            tile.shape[1] + 3 * (y0 > 0) + 3 * (y1 < SHAPE[1]),
            tile.shape[2] + 2 * (x0 > 0) + 2 * (x1 < SHAPE[2]),
        )
        assert around.shape == expected
    # The same reads with room or without are different keys, the same pixels.
    with_room = dask_from_zarr(array, (1, 10, 8), room=(0, 3, 2))
    assert with_room.name != dask_from_zarr(array, (1, 10, 8)).name
    np.testing.assert_array_equal(with_room.compute(scheduler="threads"), array[...])


def test_room_must_be_one_non_negative_halo_per_axis(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data)
    with pytest.raises(ValueError, match=r"room must give a non-negative halo per axis of the 3-D"):
        ChunkFileReader(array, None, np.dtype("uint8"), (1, 1))


@pytest.mark.parametrize("size", [1, 255, 256, 257, 65791, 65792, 65793, 10**6])
def test_zstd_content_size_is_read_from_the_frame_header(size):
    frame = numcodecs.Zstd(level=1).encode(bytes(size))
    assert zarr_direct._zstd_content_size(bytes(frame[:18])) == size
    assert zarr_direct._zstd_content_size(b"not a zstd frame at all") is None


def test_blosc_chunk_of_the_wrong_size_is_named(tmp_path, data):
    array = _create(tmp_path / "a.zarr", data, **DIRECT_LAYOUTS["v3 blosc"])
    (tmp_path / "a.zarr" / "c" / "0" / "0" / "0").write_bytes(numcodecs.Blosc().encode(b"x" * 99))
    with pytest.raises(ValueError, match=r"c/0/0/0' holds 99 bytes once decoded, not the 160"):
        direct_reader(array)[0:1, 0:1, 0:1]
