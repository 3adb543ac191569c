"""Regions: grid and tile specs, label masks, membership by window centre."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline.reductions.regions import parse_regions, region_ids


def test_all_has_no_sub_regions():
    plan = parse_regions("all", (20, 30), n_images=2)
    assert plan.names == ("all",)
    assert region_ids(plan, (5, 15), (5, 25), 2) is None


def test_grid_names_and_membership_by_centre():
    plan = parse_regions("2x3", (20, 30), n_images=1)
    assert plan.names == ("all", "r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2")
    ids = region_ids(plan, (5, 15), (5, 25), 1)
    assert ids.shape == (1, 10, 20)
    # Centre row 9 is in tile row 0, centre row 10 in tile row 1 (floor(y * 2 / 20)).
    assert ids[0, 4, 4] == 0 and ids[0, 5, 4] == 3
    # Centre column 9 -> tile column 0, column 10 -> tile column 1, column 20 -> 2.
    assert ids[0, 0, 4] == 0 and ids[0, 0, 5] == 1 and ids[0, 0, 15] == 2


def test_tile_size_spec_rounds_up():
    plan = parse_regions("8px", (20, 17), n_images=1)
    assert plan.names[1:] == tuple(f"r{i}c{j}" for i in range(3) for j in range(3))
    ids = region_ids(plan, (0, 20), (0, 17), 1)
    assert ids[0, 16, 16] == 8 and ids[0, 7, 8] == 1


def test_label_regions_found_or_named(rng):
    mask = rng.integers(0, 4, (12, 12))
    plan = parse_regions("labels", (12, 12), n_images=3, labels=mask)
    assert plan.names == ("all", "label1", "label2", "label3")
    ids = region_ids(plan, (0, 12), (0, 12), 3, mask[None])
    np.testing.assert_array_equal(ids[0], np.where(mask > 0, mask - 1, -1))
    # Only some labels as regions: the others are set to 0 (background) first.
    subset = np.where(np.isin(mask, (0, 3)), mask, 0)
    named = parse_regions(
        "labels", (12, 12), n_images=3, labels=subset, label_names={3: "face", 0: "background"}
    )
    assert named.names == ("all", "background", "face")
    ids = region_ids(named, (0, 12), (0, 12), 3, subset[None])
    expected = np.select([subset == 0, subset == 3], [0, 1], -1)
    np.testing.assert_array_equal(ids[2], expected)
    with pytest.raises(ValueError, match=r"hold value\(s\) 1, 2 that label_names does not name"):
        parse_regions("labels", (12, 12), n_images=3, labels=mask, label_names={3: "face"})


def test_labels_from_zarr_and_per_image(tmp_path, rng):
    mask = rng.integers(0, 3, (2, 10, 10)).astype(np.uint16)
    zarr.create_array(tmp_path / "labels.zarr", data=mask, chunks=(1, 5, 5))
    plan = parse_regions("labels", (10, 10), n_images=2, labels=str(tmp_path / "labels.zarr"))
    assert isinstance(plan.labels, da.Array)
    assert plan.labels.shape == (2, 10, 10)


def test_label_mask_of_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"labels must have shape \(20, 30\) or \(4, 20, 30\).*"
        r"\(got \(20, 31\)",
    ):
        parse_regions("labels", (20, 30), n_images=4, labels=np.zeros((20, 31), dtype=int))


def test_label_mask_of_floats():
    with pytest.raises(TypeError, match=r"labels must hold integers \(got dtype float64"):
        parse_regions("labels", (4, 4), n_images=1, labels=np.zeros((4, 4)))


def test_reserved_label_name_and_bad_spec():
    with pytest.raises(ValueError, match=r"may not use the reserved name 'all'"):
        parse_regions(
            "labels", (4, 4), n_images=1, labels=np.ones((4, 4), int), label_names={1: "all"}
        )
    with pytest.raises(ValueError, match=r"regions must be 'all', a grid 'RxC'.*got '3x'"):
        parse_regions("3x", (4, 4), n_images=1)
    with pytest.raises(ValueError, match=r"regions='labels' needs labels"):
        parse_regions("labels", (4, 4), n_images=1)
