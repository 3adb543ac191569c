"""open_pair: arrays and Zarr stores become lazy (image, y, x, channel) stacks; clear errors.

Also the order in which :func:`pipeline.inputs.opening.open_pair` tries its openers,
and :func:`~pipeline.inputs.opening.register_pair_opener`.
"""

from __future__ import annotations

from dataclasses import replace

import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline.inputs.opening import open_pair
from pipeline.inputs.options import InputOptions


@pytest.fixture
def stack(rng):
    return rng.integers(0, 256, (3, 20, 24), dtype=np.uint8)


def test_numpy_stack_is_canonical_and_lazy(stack):
    pair = open_pair(stack, stack)
    assert isinstance(pair.reference, da.Array)
    assert pair.reference.shape == (3, 20, 24, 1)
    assert pair.image.tolist() == [0, 1, 2]
    assert pair.reference_names.tolist() == ["numpy array[0]", "numpy array[1]", "numpy array[2]"]
    np.testing.assert_array_equal(pair.generated[..., 0].compute(), stack)


def test_single_image_and_channels(rng):
    image = rng.integers(0, 256, (3, 20, 24), dtype=np.uint8)  # channels first
    pair = open_pair(image, image, channel_axis=0)
    assert pair.reference.shape == (1, 20, 24, 3)
    np.testing.assert_array_equal(pair.reference[0, :, :, 1].compute(), image[1])
    assert pair.reference_names.tolist() == ["numpy array"]
    grey = open_pair(image[0], image[0])
    assert grey.reference.shape == (1, 20, 24, 1)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_paths_are_read_lazily(tmp_path, stack, zarr_format):
    path = tmp_path / f"ref{zarr_format}.zarr"
    zarr.create_array(path, data=stack, chunks=(1, 8, 8), zarr_format=zarr_format)
    pair = open_pair(str(path), path)
    assert pair.native_chunks == (1, 8, 8)
    assert pair.reference.chunks[1] == (8, 8, 4)
    assert pair.reference_names[2] == f"{path}[2]"
    np.testing.assert_array_equal(pair.reference[..., 0].compute(), stack)


def test_sharded_zarr_is_read_one_shard_per_chunk(tmp_path, stack):
    path = tmp_path / "sharded.zarr"
    array = zarr.create_array(path, data=stack, chunks=(1, 4, 4), shards=(1, 8, 12))
    pair = open_pair(array, str(path))
    assert pair.native_chunks == (1, 8, 12)
    assert pair.reference.chunks[1:3] == ((8, 8, 4), (12, 12))
    np.testing.assert_array_equal(pair.generated[..., 0].compute(), stack)


def test_nothing_is_read_when_opening(tmp_path, stack):
    path = tmp_path / "ref.zarr"
    zarr.create_array(path, data=stack, chunks=(1, 8, 8))
    for chunk in (path / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"corrupt")
    pair = open_pair(path, path)  # metadata only: corrupt chunks go unnoticed until compute
    assert pair.n_images == 3


def test_shapes_differ_names_both(stack):
    with pytest.raises(ValueError, match=r"same shape \(got \(3, 20, 24\) and \(3, 20, 23\)\)"):
        open_pair(stack, stack[:, :, :23])


def test_channel_count_mismatch(rng):
    rgb = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (2, 16, 16, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"different channel counts \(3 and 4"):
        open_pair(rgb, rgba, channel_axis=-1)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"reference path '.*nowhere\.zarr' does not exist"):
        open_pair(tmp_path / "nowhere.zarr", tmp_path / "nowhere.zarr")


def test_path_that_is_not_zarr(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"reference path '.*plain' is not a readable Zarr store"):
        open_pair(tmp_path / "plain", tmp_path / "plain")


def test_group_is_not_an_array(tmp_path):
    group = zarr.open_group(tmp_path / "group.zarr", mode="w")
    group.create_array("images", shape=(2, 16, 16), dtype="uint8")
    with pytest.raises(ValueError, match=r"is a Zarr group, not an array; its arrays: images"):
        open_pair(tmp_path / "group.zarr", tmp_path / "group.zarr")
    with pytest.raises(ValueError, match=r"generated is a Zarr group, not an array"):
        open_pair(np.zeros((2, 16, 16), np.uint8), group)


def test_bad_types_and_shapes(rng):
    with pytest.raises(TypeError, match=r"reference must be a NumPy, Dask or Zarr array"):
        open_pair([[1, 2]], [[1, 2]])
    with pytest.raises(TypeError, match=r"integer or floating dtype \(got bool\)"):
        open_pair(np.zeros((2, 8, 8), bool), np.zeros((2, 8, 8), bool))
    with pytest.raises(ValueError, match=r"must be shaped \(image, y, x\[, channel\]\)"):
        open_pair(np.zeros((2, 2, 8, 8), np.uint8), np.zeros((2, 2, 8, 8), np.uint8))


def _zarr_reads(array):
    graph = dict(array.__dask_graph__())
    return [key for key in graph if isinstance(key, tuple) and key[0].startswith("from-zarr")]


@pytest.mark.parametrize(
    ("zarr_format", "shards", "channel_axis", "shape"),
    [
        (2, None, None, (3, 20, 24)),
        (3, None, None, (3, 21, 25)),  # uneven: short last chunks
        (3, (1, 8, 12), None, (3, 20, 24)),  # sharded: multiples of the shard
        (3, None, -1, (3, 20, 24, 3)),  # channels last
        (2, None, 0, (3, 20, 24)),  # one image, channels first
    ],
)
def test_planned_chunks_are_read_straight_from_zarr(
    tmp_path, rng, zarr_format, shards, channel_axis, shape
):
    data = rng.integers(0, 256, shape, dtype=np.uint8)
    inner = (1, 4, 4) + ((3,) if len(shape) == 4 else ())
    extra = {"shards": shards} if shards else {}
    path = tmp_path / "stack.zarr"
    zarr.create_array(path, data=data, chunks=inner, zarr_format=zarr_format, **extra)
    pair = open_pair(path, path, channel_axis=channel_axis)
    native = pair.native_chunks
    n, height, width, channels = pair.reference.shape
    # Two native chunks per tile along y and x, the image axis in one or several chunks.
    chunks = (
        tuple([native[0]] * (n // native[0])),
        tuple(min(2 * native[1], height - s) for s in range(0, height, 2 * native[1])),
        tuple(min(2 * native[2], width - s) for s in range(0, width, 2 * native[2])),
        (channels,),
    )
    x, y = pair.chunked(chunks)
    assert x.chunks == chunks
    assert x.name == y.name  # the same keys for every caller: read once
    # One Zarr read per planned chunk, no rechunk layer.
    assert len(_zarr_reads(x)) == x.npartitions
    assert not any("rechunk" in name for name in x.__dask_graph__().layers)
    np.testing.assert_array_equal(x.compute(), pair.reference.compute())


def test_chunks_that_split_a_zarr_chunk_are_rechunked(tmp_path, stack):
    path = tmp_path / "stack.zarr"
    zarr.create_array(path, data=stack, chunks=(1, 8, 8))
    pair = open_pair(path, path)
    chunks = ((3,), (12, 8), (24,), (1,))  # 12 splits the second chunk along y
    x, _ = pair.chunked(chunks)
    assert x.chunks == chunks
    assert any("rechunk" in name for name in x.__dask_graph__().layers)
    np.testing.assert_array_equal(x[..., 0].compute(), stack)


def test_a_replaced_stack_is_not_read_from_the_source(tmp_path, stack):
    path = tmp_path / "stack.zarr"
    zarr.create_array(path, data=stack, chunks=(1, 8, 8))
    pair = open_pair(path, path)
    changed = replace(pair, reference=pair.reference[:, ::-1])
    x, y = changed.chunked(((1, 1, 1), (16, 4), (16, 8), (1,)))
    np.testing.assert_array_equal(x[..., 0].compute(), stack[:, ::-1])
    np.testing.assert_array_equal(y[..., 0].compute(), stack)


def test_arrays_in_memory_are_rechunked(stack):
    pair = open_pair(stack, stack)
    assert pair.direct == (None, None)
    x, _ = pair.chunked(((1, 2), (10, 10), (24,), (1,)))
    np.testing.assert_array_equal(x[..., 0].compute(), stack)


_LAZY_PACKAGE = """
import sys, types
from pathlib import Path

import numpy as np
from PIL import Image

# A lazy ``pipeline/__init__``: the package without its eager imports.
package = types.ModuleType("pipeline")
package.__path__ = [str(Path(sys.argv[1]) / "pipeline")]
sys.modules["pipeline"] = package

from pipeline.engine.run import evaluate

root = Path(sys.argv[2])
rng = np.random.default_rng(0)
for side in ("real", "fake"):
    (root / side).mkdir()
for name in ("a.png", "b.png"):
    x = rng.integers(0, 256, (24, 30), dtype=np.uint8)
    Image.fromarray(x).save(root / "real" / name)
    Image.fromarray(255 - x).save(root / "fake" / name)
ds = evaluate(str(root / "real"), str(root / "fake"))
print(ds.image.values.tolist(), ds.status.values.tolist(), int(ds.sizes["region"]))
"""


def test_folders_open_without_the_package_init_registering_them(tmp_path):
    # The built-in openers are named by pipeline.inputs.opening, not registered by
    # pipeline/__init__ importing them.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _LAZY_PACKAGE, str(root), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['a.png', 'b.png'] ['ok', 'ok'] 1"


def test_a_registered_opener_is_tried_after_the_built_in_ones(monkeypatch, stack):
    import pipeline.inputs.opening as opening

    seen = []

    def opener(reference, generated, channel_axis, options):
        seen.append(type(reference).__name__)
        return None

    monkeypatch.setattr(opening, "_PAIR_OPENERS", [])
    opening.register_pair_opener(opener)
    opening.register_pair_opener(opener)  # once only
    pair = open_pair(stack, stack)
    assert seen == ["ndarray"] and pair.n_images == 3
    names = [getattr(o, "__name__", "") for o in opening._pair_openers()]
    assert names == ["open_folder_pair", "open_file_pair", "opener"]


def test_missing_chunks_setting_is_checked(stacks):
    with pytest.raises(
        ValueError, match=r"missing_chunks must be one of fail, fill \(got 'skip'\)"
    ):
        open_pair(*stacks, options=InputOptions(missing_chunks="skip"))
