"""Sources: arrays and Zarr stores become lazy (image, y, x, channel) stacks; clear errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline.sources import open_pair


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
