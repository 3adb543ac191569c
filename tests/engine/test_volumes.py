"""pipeline.engine.volumes: a stack evaluated as one 3-D volume, chunk by chunk.

``evaluate(..., volume=True)`` equals the in-memory float64 reference
(``engine="reference"``) within 1e-9 for any chunking and scikit-image's N-D
``structural_similarity`` within 1e-6; regions are columns through ``z`` or label
masks; what volume mode refuses. :func:`pipeline.ssim` on a volume in memory (an
N-D window), the reference of the chunked ones, is tested in tests/metrics/test_score.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.testing import smooth_volume_pair, unreadable_stack

TOLERANCE = 1e-9

SKIMAGE_KWARGS: dict[str, dict[str, Any]] = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("chunks", [(17, 30, 26), (6, 11, 9), (4, 13, 30), (17, 7, 5)], ids=str)
def test_volume_matches_skimage_and_in_memory(profile, chunks):
    rng = np.random.default_rng(11)
    x, y = smooth_volume_pair(rng, (17, 30, 26))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, profile=profile, engine="reference", chunks=chunks
    )
    assert ds.sizes["image"] == 1
    got = float(ds["ssim"].sel(region="all").values[0])
    expected = structural_similarity(x, y, data_range=1.0, **SKIMAGE_KWARGS[profile])
    assert got == pytest.approx(expected, abs=1e-6)
    in_memory, maps = sp.ssim(x, y, data_range=1.0, profile=profile, engine="reference", full=True)
    assert got == pytest.approx(in_memory, abs=TOLERANCE)
    assert int(ds["count"].values[0, 0]) == maps["ssim"].size
    assert float(ds["ssim_std"].values[0, 0]) == pytest.approx(maps["ssim"].std(), abs=TOLERANCE)
    assert ds.attrs["volume"] == 1


def test_volume_grid_regions_are_columns_through_z():
    rng = np.random.default_rng(12)
    x, y = smooth_volume_pair(rng, (13, 28, 24))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, regions="2x3", engine="reference", chunks=(7, 9, 10)
    )
    _, maps = sp.ssim(x, y, data_range=1.0, engine="reference", full=True)
    radius = 5
    rows = (np.arange(28) * 2 // 28)[radius : 28 - radius]
    cols = (np.arange(24) * 3 // 24)[radius : 24 - radius]
    for i in range(2):
        for j in range(3):
            inside = maps["ssim"][:, rows == i][:, :, cols == j]
            region = ds.sel(region=f"r{i}c{j}")
            assert int(region["count"].values[0]) == inside.size
            assert float(region["ssim"].values[0]) == pytest.approx(inside.mean(), abs=TOLERANCE)


@pytest.mark.parametrize("volume_labels", [False, True])
def test_volume_label_regions(volume_labels):
    rng = np.random.default_rng(13)
    x, y = smooth_volume_pair(rng, (14, 22, 20))
    if volume_labels:
        labels = np.zeros((14, 22, 20), np.uint8)
        labels[:7] = 1
        labels[7:, :, 10:] = 2
    else:
        labels = np.zeros((22, 20), np.uint8)
        labels[:, 10:] = 1
        labels[15:] = 2
    ds = sp.evaluate(
        x,
        y,
        volume=True,
        data_range=1.0,
        regions="labels",
        labels=labels,
        engine="reference",
        chunks=(6, 8, 7),
    )
    _, maps = sp.ssim(x, y, data_range=1.0, engine="reference", full=True)
    inner = (labels if volume_labels else np.broadcast_to(labels, x.shape))[5:-5, 5:-5, 5:-5]
    for value in (1, 2):
        region = ds.sel(region=f"label{value}")
        selected = maps["ssim"][inner == value]
        assert int(region["count"].values[0]) == selected.size
        assert float(region["ssim"].values[0]) == pytest.approx(selected.mean(), abs=TOLERANCE)


def test_colour_volume_matches_skimage():
    rng = np.random.default_rng(14)
    x, y = smooth_volume_pair(rng, (12, 16, 14, 3))
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, channel_axis=-1, engine="reference", chunks=(6, 8, 7)
    )
    expected = structural_similarity(
        x, y, data_range=1.0, channel_axis=-1, **SKIMAGE_KWARGS["wang2004"]
    )
    assert float(ds["ssim"].values[0, 0]) == pytest.approx(expected, abs=1e-6)


def test_volume_refusals():
    stack = unreadable_stack((8, 30, 30))
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        sp.evaluate(stack, stack, volume=True)
    stack = unreadable_stack((12, 30, 30))
    with pytest.raises(ValueError, match=r"volume=True needs engine 'auto' or 'reference'"):
        sp.evaluate(stack, stack, volume=True, engine="fused")
    with pytest.raises(ValueError, match=r"save_maps is not available with volume=True"):
        sp.evaluate(stack, stack, volume=True, save_maps=True, maps_output="m.zarr")
    with pytest.raises(TypeError, match=r"volume must be true or false \(got 1\)"):
        sp.RunConfig(volume=1)


def test_volume_needs_one_slice_shape():
    import dataclasses

    from pipeline.engine.volumes import as_volume_pair
    from pipeline.inputs.opening import open_pair

    stack = np.zeros((12, 20, 20), np.uint8)
    pair = open_pair(stack, stack)
    with pytest.raises(ValueError, match=r"volume=True needs slices of one shape \(got 2 size"):
        as_volume_pair(dataclasses.replace(pair, groups=(pair, pair)))
    single = as_volume_pair(dataclasses.replace(pair, groups=(pair,)))
    assert single.reference.shape == (1, 12, 20, 20, 1)


@pytest.mark.parametrize("volume_labels", [False, True])
def test_volume_mse_and_psnr_over_every_voxel_match_skimage(volume_labels):
    """Reference: skimage's mean_squared_error / peak_signal_noise_ratio on the voxels."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    rng = np.random.default_rng(15)
    x, y = smooth_volume_pair(rng, (14, 22, 20))
    labels = np.zeros((14, 22, 20) if volume_labels else (22, 20), np.uint8)
    labels[..., 3:15, 4:12] = 1
    labels[..., 16:, :] = 2
    ds = sp.evaluate(
        x, y, volume=True, data_range=1.0, regions="labels", labels=labels, chunks=(6, 8, 7)
    )
    full = labels if volume_labels else np.broadcast_to(labels, x.shape)
    for region, mask in (
        ("all", np.ones(x.shape, bool)),
        ("label1", full == 1),
        ("label2", full == 2),
    ):
        got = ds.sel(region=region)
        assert float(got["mse"].values[0]) == pytest.approx(
            mean_squared_error(x[mask], y[mask]), rel=TOLERANCE
        )
        assert float(got["psnr"].values[0]) == pytest.approx(
            peak_signal_noise_ratio(x[mask], y[mask], data_range=1.0), rel=TOLERANCE
        )
