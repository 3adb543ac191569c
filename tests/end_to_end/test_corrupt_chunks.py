"""A Zarr chunk that is stored but cannot be read fails the pairs it holds; the run goes on.

A truncated or overwritten chunk file, one that decodes to the wrong size, a failed
checksum: the pairs whose pixels lie in it fail with the chunk's key and the array
named, for good (``--resume`` does not retry them); a chunk the system could not
read (EIO, EACCES) fails them as a transient failure. Every other pair equals a
clean run's values exactly, on both read paths (the direct chunk-file reader and
Zarr's own, for sharded or filtered arrays and for stores that are not local).

The clean run is the reference: the same stores before the damage, read by the same
code; tests/inputs/test_zarr_direct.py pins that read to Zarr's own ``array[region]``.

End to end: these runs go through ``evaluate``, the CLI and ingest stores, and assert
what :mod:`pipeline.inputs.zarr_checked` and :mod:`pipeline.inputs.zarr_direct` report
as the results a user reads; the single-read tests are in tests/inputs/.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from pipeline import evaluate, open_results
from pipeline.cli.main import main
from pipeline.inputs.files import TRANSIENT_SUFFIX, is_transient_status
from pipeline.inputs.zarr_direct import direct_reader

SHAPE = (4, 24, 32)
SCORES = ("ssim", "luminance", "contrast", "structure", "ssim_min", "ssim_max", "ssim_std", "count")

# name -> (zarr.create_array options, key of the chunk (or shard) holding image 2,
#          images that key holds, read path)
LAYOUTS = {
    "v2": ({"zarr_format": 2, "chunks": (1, 24, 16)}, "2.0.1", [2], "direct"),
    "v3": ({"chunks": (1, 24, 16)}, "c/2/0/1", [2], "direct"),
    "v2 filtered": (
        {"zarr_format": 2, "chunks": (1, 24, 16), "filters": [numcodecs.Delta(dtype="u1")]},
        "2.0.1",
        [2],
        "zarr",
    ),
    # A truncated or overwritten shard loses its index: both images in it fail.
    "v3 sharded": ({"chunks": (1, 12, 16), "shards": (2, 24, 32)}, "c/1/0/0", [2, 3], "zarr"),
}
DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    "garbage": lambda good: b"\x00garbage\xff" * 7,
}


@pytest.fixture
def stacks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 12, SHAPE), 0, 255).astype(np.uint8)
    return x, y


def _write(path: Path, data: np.ndarray, options: dict) -> Path:
    zarr.create_array(path, data=data, **options)
    return path


def _assert_only_failed(broken, clean, failed: list[int]) -> list[str]:
    """The statuses of ``failed`` (NaN scores); every other pair equals ``clean`` exactly."""
    texts = []
    for i in range(SHAPE[0]):
        status = str(broken.status.values[i])
        if i in failed:
            assert status != "ok"
            assert np.isnan(broken.ssim.values[i]).all()
            texts.append(status)
        else:
            assert status == "ok"
            for name in SCORES:
                np.testing.assert_array_equal(broken[name].values[i], clean[name].values[i])
    return texts


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_corrupt_chunk_fails_only_the_pairs_it_holds(tmp_path, stacks, layout, damage):
    options, key, held, path = LAYOUTS[layout]
    x = _write(tmp_path / "x.zarr", stacks[0], options)
    y = _write(tmp_path / "y.zarr", stacks[1], options)
    assert (direct_reader(zarr.open_array(y)) is not None) == (path == "direct")
    clean = evaluate(x, y).load()
    assert (clean.status == "ok").all()
    chunk = y / key
    chunk.write_bytes(DAMAGE[damage](chunk.read_bytes()))
    broken = evaluate(x, y).load()
    for status in _assert_only_failed(broken, clean, held):
        assert status.startswith(f"Zarr chunk '{key}' of array {y} could not be decoded (")
        assert not is_transient_status(status)  # the same bytes fail again: not retried


def test_chunk_of_the_wrong_size_fails_its_pair(tmp_path, stacks):
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 24, 16)})
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 24, 16)})
    clean = evaluate(x, y).load()
    # A valid zstd frame, one byte short of a chunk.
    (y / "c/1/0/0").write_bytes(numcodecs.Zstd().encode(b"x" * (24 * 16 - 1)))
    broken = evaluate(x, y).load()
    (status,) = _assert_only_failed(broken, clean, [1])
    assert status == (
        f"Zarr chunk 'c/1/0/0' of array {y} holds 383 bytes once decoded, "
        "not the 384 of a (1, 24, 16) chunk of uint8"
    )


def test_bad_inner_chunk_of_a_shard_fails_only_its_image(tmp_path, stacks):
    # Each inner chunk carries a CRC32C: a flipped byte fails that chunk only, and the
    # shard's other image (same file, its own chunk) is read and scored.
    options = {"chunks": (1, 24, 32), "shards": (2, 24, 32)}
    options["compressors"] = (ZstdCodec(), Crc32cCodec())
    x = _write(tmp_path / "x.zarr", stacks[0], options)
    y = _write(tmp_path / "y.zarr", stacks[1], options)
    clean = evaluate(x, y).load()
    shard = y / "c/1/0/0"
    data = bytearray(shard.read_bytes())
    # The shard index (at the end: an (offset, length) per inner chunk, then a CRC32C).
    index = np.frombuffer(bytes(data[-(2 * 16 + 4) : -4]), dtype="<u8").reshape(2, 2)
    data[int(index[1, 0]) + 3] ^= 0xFF  # inside image 3's chunk
    shard.write_bytes(bytes(data))
    broken = evaluate(x, y).load()
    (status,) = _assert_only_failed(broken, clean, [3])
    assert status.startswith(f"Zarr chunk 'c/1/0/0' of array {y} could not be decoded (ValueError")


def test_corrupt_chunk_in_a_store_that_is_not_local(stacks):
    store = zarr.storage.MemoryStore()
    x = zarr.create_array(store, name="x", data=stacks[0], chunks=(1, 24, 32))
    y = zarr.create_array(store, name="y", data=stacks[1], chunks=(1, 24, 32))
    clean = evaluate(x, y).load()
    buffer = zarr.core.buffer.default_buffer_prototype().buffer
    asyncio.run(store.set("x/c/0/0/0", buffer.from_bytes(b"not zstd")))
    broken = evaluate(x, y).load()
    (status,) = _assert_only_failed(broken, clean, [0])
    assert status.startswith("Zarr chunk 'x/c/0/0/0' of array memory://")
    assert "/x could not be decoded (" in status


@pytest.mark.parametrize("missing_chunks", ["fail", "fill"])
def test_corrupt_chunk_fails_its_pair_whatever_missing_chunks_says(
    tmp_path, stacks, missing_chunks
):
    # missing_chunks="fill" lets a chunk that is not stored stand for the fill value;
    # a chunk that is stored and broken is never taken for data.
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 24, 32)})
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 24, 32)})
    clean = evaluate(x, y).load()
    (x / "c/3/0/0").write_bytes(b"garbage")
    broken = evaluate(x, y, missing_chunks=missing_chunks).load()
    (status,) = _assert_only_failed(broken, clean, [3])
    assert status.startswith(f"Zarr chunk 'c/3/0/0' of array {x} could not be decoded")


def test_missing_and_corrupt_chunks_of_one_image_are_not_retried(tmp_path, stacks):
    # The missing chunk alone would be retried; the corrupt one fails again, so the
    # pair's status must not end with the transient suffix, whichever array holds which.
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 24, 16)})
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 24, 16)})
    (y / "c/1/0/0").write_bytes(b"garbage")  # image 1: both in the same array
    (y / "c/1/0/1").unlink()
    (x / "c/2/0/0").write_bytes(b"garbage")  # image 2: corrupt reference, missing generated
    (y / "c/2/0/1").unlink()
    status = evaluate(x, y).status.values.tolist()
    cases = [(1, f"'c/1/0/0' of array {y}", f"'c/1/0/1' of array {y}")]
    cases.append((2, f"'c/2/0/0' of array {x}", f"'c/2/0/1' of array {y}"))
    for i, corrupt, missing in cases:
        assert f"Zarr chunk {corrupt} could not be decoded" in status[i]
        assert f"Zarr chunk {missing} is not in the store" in status[i]
        assert not is_transient_status(status[i])
    assert status[0] == status[3] == "ok"


def test_corrupt_chunk_of_a_single_image(tmp_path, stacks):
    x = _write(tmp_path / "x.zarr", stacks[0][0], {"chunks": (12, 16)})
    y = _write(tmp_path / "y.zarr", stacks[1][0], {"chunks": (12, 16)})
    (y / "c/1/1").write_bytes(b"garbage")
    (status,) = evaluate(x, y).status.values.tolist()
    assert status.startswith(f"Zarr chunk 'c/1/1' of array {y} could not be decoded")


@pytest.mark.parametrize("layout", ["v3", "v3 sharded"])
@pytest.mark.parametrize(
    ("error", "text"),
    [
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    ],
)
def test_chunk_the_system_cannot_read_is_a_transient_failure(
    tmp_path, stacks, monkeypatch, layout, error, text
):
    # As root a chmod-000 file is read anyway: the failing read is simulated, on the
    # direct path at the chunk file's read, on Zarr's path at the store's.
    options, key, held, _ = LAYOUTS[layout]
    x = _write(tmp_path / "x.zarr", stacks[0], options)
    y = _write(tmp_path / "y.zarr", stacks[1], options)
    clean = evaluate(x, y).load()
    chunk = y / key
    read_bytes = Path.read_bytes

    def failing_read_bytes(path: Path) -> bytes:
        if path == chunk:
            raise error
        return read_bytes(path)

    get = zarr.storage.LocalStore.get

    async def failing_get(store, name, prototype=None, byte_range=None):
        if Path(store.root) / name == chunk:
            raise error
        return await get(store, name, prototype, byte_range)

    monkeypatch.setattr(Path, "read_bytes", failing_read_bytes)
    monkeypatch.setattr(zarr.storage.LocalStore, "get", failing_get)
    broken = evaluate(x, y).load()
    for status in _assert_only_failed(broken, clean, held):
        assert (
            status
            == f"Zarr chunk '{key}' of array {y} could not be read ({text}){TRANSIENT_SUFFIX}"
        )


def test_cli_finishes_with_the_failed_pairs(tmp_path, stacks, capsys):
    options = {"zarr_format": 2, "chunks": (1, 24, 32)}
    x = _write(tmp_path / "x.zarr", stacks[0], options)
    y = _write(tmp_path / "y.zarr", stacks[1], options)
    (y / "1.0.0").write_bytes((y / "1.0.0").read_bytes()[:-9])  # truncated
    out = tmp_path / "r.zarr"
    assert main(["evaluate", str(x), str(y), "--out", str(out), "--quiet"]) == 1
    status = open_results(out).status.values.tolist()
    assert status[0] == status[2] == status[3] == "ok"
    assert status[1].startswith(f"Zarr chunk '1.0.0' of array {y} could not be decoded")
    assert "1.0.0" in capsys.readouterr().err  # the failed pair is listed


def test_corrupt_chunk_of_an_ingest_store_fails_its_pair(tmp_path, stacks):
    from PIL import Image

    from pipeline.inputs.ingest import ingest_folder

    for side, images in zip(("ref", "gen"), stacks, strict=True):
        (tmp_path / side).mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image).save(tmp_path / side / f"{i}.png")
        ingest_folder(tmp_path / side, tmp_path / f"{side}.zarr")
    clean = evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr").load()
    stack = tmp_path / "gen.zarr" / "24x32x1_uint8" / "images"
    assert clean.image.values.tolist() == ["0.png", "1.png", "2.png", "3.png"]
    (stack / "c/1/0/0/0").write_bytes(b"garbage")  # the slot of 1.png
    broken = evaluate(tmp_path / "ref.zarr", tmp_path / "gen.zarr").load()
    (status,) = _assert_only_failed(broken, clean, [1])
    key = "24x32x1_uint8/images/c/1/0/0/0"  # the key in the store, as for missing chunks
    assert status.startswith(f"Zarr chunk '{key}' of array {stack} could not be decoded")


def test_image_with_many_broken_chunks_names_three_and_counts_the_rest(tmp_path, stacks):
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 12, 8)})  # 8 chunks per image
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 12, 8)})
    for j in range(2):
        for k in range(4):
            (y / f"c/0/{j}/{k}").write_bytes(b"garbage")
    status = str(evaluate(x, y).status.values[0])
    assert status.count("Zarr chunk 'c/0/") == 3
    assert status.endswith(f"; 5 more chunks of array {y} could not be read or decoded")
