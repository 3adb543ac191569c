"""A Zarr chunk that is not in the store fails the pairs it holds; the rest equal a clean run.

Zarr itself reads a missing chunk as the fill value. Here every read task also
reports the chunks it did not find, on both read paths (the direct chunk-file
reader and Zarr's own, for sharded or filtered arrays), and a store whose
metadata declares an absurd shape is refused before anything is read.

End to end: these runs go through ``evaluate`` (planning, reading, results), and assert
what :mod:`pipeline.inputs.zarr_checked` reports as the results a user reads.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

import pipeline.inputs.zarr_checked as zarr_checked
import pipeline.inputs.zarr_direct as zarr_direct
from pipeline import evaluate
from pipeline.inputs.files import TRANSIENT_SUFFIX

SHAPE = (4, 24, 32)

# name -> (zarr.create_array options, key of the chunk (or shard) holding image 2, read path)
LAYOUTS = {
    "v2": ({"zarr_format": 2, "chunks": (1, 24, 16)}, "2.0.1", "direct"),
    "v3": ({"chunks": (1, 24, 16)}, "c/2/0/1", "direct"),
    "v3 sharded": ({"chunks": (1, 12, 16), "shards": (2, 24, 32)}, "c/1/0/0", "zarr"),
    "v3 crc32c": (
        {"chunks": (1, 24, 16), "compressors": (ZstdCodec(), Crc32cCodec())},
        "c/2/0/1",
        "zarr",
    ),
}
SCORES = ("ssim", "luminance", "contrast", "structure", "ssim_min", "ssim_max", "count")


@pytest.fixture
def stacks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 12, SHAPE), 0, 255).astype(np.uint8)
    return x, y


def _write(path: Path, data: np.ndarray, options: dict) -> Path:
    zarr.create_array(path, data=data, **options)
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_missing_chunk_fails_the_pairs_it_holds(tmp_path, stacks, layout):
    options, key, path = LAYOUTS[layout]
    x = _write(tmp_path / "x.zarr", stacks[0], options)
    y = _write(tmp_path / "y.zarr", stacks[1], options)
    assert (zarr_direct.direct_reader(zarr.open_array(y)) is not None) == (path == "direct")
    clean = evaluate(x, y).load()
    assert (clean.status == "ok").all()
    (y / key).unlink()  # an interrupted copy
    broken = evaluate(x, y).load()
    held = [2, 3] if "shard" in layout else [2]  # a shard holds images 2 and 3
    for i in range(SHAPE[0]):
        status = str(broken.status.values[i])
        if i in held:
            assert f"Zarr chunk '{key}' of array {y}" in status
            assert status.endswith(TRANSIENT_SUFFIX)  # --resume retries it
            assert np.isnan(broken.ssim.values[i]).all()
        else:
            assert status == "ok"
            for name in SCORES:
                np.testing.assert_array_equal(broken[name].values[i], clean[name].values[i])
    # Stores sparse on purpose: the fill value (0) stands for the missing pixels.
    filled = evaluate(x, y, missing_chunks="fill").load()
    assert (filled.status == "ok").all()
    expected = stacks[1].copy()
    expected[np.asarray(zarr.open_array(y)[...]) != stacks[1]] = 0
    in_memory = evaluate(stacks[0], expected)
    for name in SCORES:
        np.testing.assert_array_equal(filled[name].values, in_memory[name].values)


def test_status_comes_from_the_reads_at_the_planned_chunks(tmp_path, stacks, monkeypatch):
    # Storage chunks of 2 images, planned chunks of 4: one read task per planned chunk,
    # each chunk file read once, and the status of images 2 and 3 from those same reads.
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (2, 24, 32)})
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (2, 24, 32)})
    (y / "c/1/0/0").unlink()
    reads: list[tuple] = []
    original = zarr_checked.read_checked

    def counting(source, region):
        reads.append((source.array.store.root.name, tuple(region)))
        return original(source, region)

    monkeypatch.setattr(zarr_checked, "read_checked", counting)
    planned = [("x.zarr", ((0, 4), (0, 24), (0, 32))), ("y.zarr", ((0, 4), (0, 24), (0, 32)))]
    ds = evaluate(x, y, chunks=(4, 24, 32), mean_maps=False)
    assert sorted(reads) == planned
    assert [s == "ok" for s in ds.status.values] == [True, True, False, False]
    # With mean maps, a batch in which a pair failed while read is summed again over its
    # ok pairs: a second read, at the same planned chunks, with the same statuses.
    reads.clear()
    with_maps = evaluate(x, y, chunks=(4, 24, 32), mean_maps=True)
    assert sorted(set(reads)) == planned
    assert with_maps.status.values.tolist() == ds.status.values.tolist()


def test_chunk_deleted_while_the_run_reads(tmp_path, stacks):
    x = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 24, 32)})
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 24, 32)})

    def delete_after_first_batch(done: int, total: int, images: int) -> None:
        if done == 1:
            (y / "c/3/0/0").unlink()

    ds = evaluate(x, y, batch_images=1, on_batch=delete_after_first_batch)
    assert ds.status.values[:3].tolist() == ["ok"] * 3
    assert "'c/3/0/0'" in str(ds.status.values[3])


def test_single_image_with_a_missing_chunk(tmp_path, stacks):
    x = _write(tmp_path / "x.zarr", stacks[0][0], {"chunks": (12, 16)})
    y = _write(tmp_path / "y.zarr", stacks[1][0], {"chunks": (12, 16)})
    (x / "c/1/1").unlink()
    ds = evaluate(x, y)
    assert ds.status.values.tolist()[0].startswith(f"Zarr chunk 'c/1/1' of array {x}")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_absurd_shape_in_metadata_is_refused_before_any_read(
    tmp_path, stacks, zarr_format, monkeypatch
):
    path = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 8, 8), "zarr_format": zarr_format})
    metadata = path / ("zarr.json" if zarr_format == 3 else ".zarray")
    document = json.loads(metadata.read_text())
    document["shape"] = [10**9] * 3
    metadata.write_text(json.dumps(document))

    def no_reads(*args, **kwargs):
        raise AssertionError("a chunk was read")

    monkeypatch.setattr(zarr_direct.ChunkFileReader, "read", no_reads)
    monkeypatch.setattr(zarr_checked, "read_checked", no_reads)
    expected = (
        rf"reference Zarr array {path} declares shape \(1000000000, 1000000000, 1000000000\) "
        rf"\({10**27} elements\), more than max_input_elements=1099511627776"
    )
    with pytest.raises(ValueError, match=expected):
        evaluate(path, stacks[1])


def test_max_input_elements_is_a_setting(tmp_path, stacks):
    path = _write(tmp_path / "x.zarr", stacks[0], {"chunks": (1, 8, 8)})
    with pytest.raises(ValueError, match=r"\(3072 elements\), more than max_input_elements=3000"):
        evaluate(stacks[0], path, max_input_elements=3000)
    assert len(evaluate(path, path, max_input_elements=3072).image) == SHAPE[0]


def test_missing_chunk_in_a_store_that_is_not_local(stacks):
    # Zarr's own read path over any store (here in memory, as for object stores).
    store = zarr.storage.MemoryStore()
    x = zarr.create_array(store, name="x", data=stacks[0], chunks=(1, 24, 32))
    y = zarr.create_array(store, name="y", data=stacks[1], chunks=(1, 24, 32))
    assert zarr_direct.direct_reader(y) is None
    asyncio.run(store.delete("y/c/1/0/0"))
    ds = evaluate(x, y)
    assert [s == "ok" for s in ds.status.values] == [True, False, True, True]
    assert "Zarr chunk 'y/c/1/0/0' of array memory://" in str(ds.status.values[1])


@pytest.mark.parametrize("profile", ["wang2004", "wang2009"])
def test_a_label_mask_with_a_missing_chunk_refuses_the_run(tmp_path, stacks, profile):
    # Every pair's regions come from the mask: a chunk of it read as 0 (background) would
    # silently move its pixels out of their regions, so the run stops before any work.
    x, y = stacks
    if profile == "wang2009":  # large enough that ssim.m's automatic downsampling is 2
        x, y = np.tile(x, (1, 16, 16)), np.tile(y, (1, 16, 16))
    labels = np.ones(x.shape[1:], np.uint8)
    labels[:, x.shape[2] // 2 :] = 2
    path = tmp_path / "labels.zarr"
    zarr.create_array(path, data=labels, chunks=(x.shape[1], x.shape[2] // 2))
    settings = {"regions": "labels", "labels": str(path), "profile": profile}
    whole = evaluate(x, y, **settings).load()
    assert set(whole.region.values) == {"all", "label1", "label2"}
    (path / "c" / "0" / "1").unlink()
    with pytest.raises(ValueError, match=r"labels from .*labels\.zarr cannot be used: .*c/0/1"):
        evaluate(x, y, **settings)
    # Sparse on purpose: the fill value (0, background) stands for the missing chunk.
    filled = evaluate(x, y, missing_chunks="fill", **settings).load()
    assert set(filled.region.values) == {"all", "label1"}
