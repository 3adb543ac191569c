"""Reductions: packed partials equal NumPy on the whole map and merge in any order."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.statistics import FIELDS, bin_edges, empty_statistics, merge_statistics
from pipeline.reductions.statistics import block_statistics, finalize_statistics

BINS = 20


def _maps(rng, shape):
    ssim = rng.uniform(-1, 1, shape)
    return {
        "ssim": ssim,
        "luminance": rng.random(shape),
        "contrast": rng.random(shape),
        "structure": rng.uniform(-1, 1, shape),
    }


def test_single_block_matches_numpy(rng):
    maps = _maps(rng, (2, 9, 11))
    maps["ssim"][0, 0, :3] = [-1.0, 1.0, 0.0]  # edges of the histogram range
    ids = rng.integers(-1, 3, (2, 9, 11))
    stats = finalize_statistics(block_statistics(maps, ids, 4, BINS))
    for i in range(2):
        for r in range(4):
            where = np.ones((9, 11), bool) if r == 0 else ids[i] == r - 1
            values = maps["ssim"][i][where]
            assert stats["count"][i, r] == values.size
            np.testing.assert_allclose(stats["ssim"][i, r], values.mean(), rtol=0, atol=1e-14)
            np.testing.assert_allclose(stats["ssim_std"][i, r], values.std(), rtol=0, atol=1e-14)
            assert stats["ssim_min"][i, r] == values.min()
            assert stats["ssim_max"][i, r] == values.max()
            np.testing.assert_allclose(
                stats["structure"][i, r], maps["structure"][i][where].mean(), atol=1e-14
            )
            hist, _ = np.histogram(values, bins=BINS, range=(-1, 1))
            np.testing.assert_array_equal(stats["ssim_hist"][i, r], hist)


def test_histogram_bins_agree_with_numpy_at_every_edge():
    edges = bin_edges(BINS)
    values = np.concatenate([edges, np.nextafter(edges, -2), np.nextafter(edges, 2)])
    values = np.clip(values, -1, 1)[None, None, :]
    maps = {name: values for name in ("ssim", "luminance", "contrast", "structure")}
    stats = finalize_statistics(block_statistics(maps, None, 1, BINS))
    hist, _ = np.histogram(values, bins=BINS, range=(-1, 1))
    np.testing.assert_array_equal(stats["ssim_hist"][0, 0], hist)


def test_merge_in_any_grouping_equals_the_whole(rng):
    maps = _maps(rng, (1, 40, 30))
    maps["ssim"] = 0.999 + 1e-4 * maps["ssim"]  # near-constant: where naive variance cancels
    ids = rng.integers(-1, 2, (1, 40, 30))
    whole = finalize_statistics(block_statistics(maps, ids, 3, BINS))
    parts = []
    for rows in (slice(0, 3), slice(3, 25), slice(25, 40)):
        for cols in (slice(0, 1), slice(1, 30)):
            sub = {k: v[:, rows, cols] for k, v in maps.items()}
            parts.append(block_statistics(sub, ids[:, rows, cols], 3, BINS))
    parts.append(empty_statistics(1, 3, BINS))  # a block in the border band
    stacked = np.stack(parts, axis=1)
    merged = finalize_statistics(merge_statistics(stacked, axis=1))
    tree = merge_statistics(
        np.stack([merge_statistics(stacked[:, :3], 1), merge_statistics(stacked[:, 3:], 1)], 1), 1
    )
    for result in (merged, finalize_statistics(tree)):
        for name, value in whole.items():
            np.testing.assert_allclose(result[name], value, rtol=1e-12, atol=1e-15, err_msg=name)


def test_merge_keepdims_over_two_axes(rng):
    parts = np.stack(
        [block_statistics(_maps(rng, (2, 4, 4)), None, 1, BINS) for _ in range(6)], axis=1
    ).reshape(2, 2, 3, 1, len(FIELDS) + BINS)
    out = merge_statistics(parts, axis=(1, 2), keepdims=True)
    assert out.shape == (2, 1, 1, 1, len(FIELDS) + BINS)
    assert (out[:, 0, 0, 0, 0] == 96).all()


def test_empty_regions_are_nan_with_zero_count(rng):
    maps = _maps(rng, (1, 3, 3))
    stats = finalize_statistics(block_statistics(maps, np.full((1, 3, 3), -1), 2, BINS))
    assert stats["count"][0, 1] == 0
    for name in ("ssim", "luminance", "ssim_std", "ssim_min", "ssim_max"):
        assert np.isnan(stats[name][0, 1])
    assert stats["ssim_hist"][0, 1].sum() == 0


@pytest.mark.parametrize("n_regions", [1, 5])
def test_empty_block(n_regions):
    maps = {k: np.zeros((3, 0, 4)) for k in ("ssim", "luminance", "contrast", "structure")}
    out = block_statistics(maps, None, n_regions, BINS)
    np.testing.assert_array_equal(out, empty_statistics(3, n_regions, BINS))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_deficit_map_gives_sum_and_m2(rng, dtype):
    # With the fused kernel's deficit map (1 - ssim before float32 rounds ssim) the SUM
    # and M2 come from it, the extremes and histogram from the ssim map. A deficit
    # unrelated to the ssim map here, so that the test sees which one each field reads.
    maps = {k: v.astype(np.float32) for k, v in _maps(rng, (2, 9, 11)).items()}
    maps["deficit"] = (1e-3 * rng.random((2, 9, 11))).astype(dtype)
    maps["deficit"][1, 4] = 1e-3  # a run of equal deficits: where a naive variance cancels
    ids = rng.integers(-1, 3, (2, 9, 11))
    stats = finalize_statistics(block_statistics(maps, ids, 4, BINS))
    for i in range(2):
        for r in range(4):
            where = np.ones((9, 11), bool) if r == 0 else ids[i] == r - 1
            deficit = maps["deficit"][i][where].astype(np.longdouble)
            ssim = maps["ssim"][i][where]
            mean = 1 - deficit.mean()  # exact reference: the extended-precision mean
            assert abs(stats["ssim"][i, r] - float(mean)) <= 1e-15
            spread = float(np.sqrt(((deficit - deficit.mean()) ** 2).mean()))
            np.testing.assert_allclose(stats["ssim_std"][i, r], spread, rtol=1e-12, atol=0)
            assert stats["ssim_min"][i, r] == ssim.min()
            assert stats["ssim_max"][i, r] == ssim.max()
            np.testing.assert_allclose(
                stats["contrast"][i, r], maps["contrast"][i][where].mean(dtype=float), atol=1e-14
            )
            hist, _ = np.histogram(ssim, bins=BINS, range=(-1, 1))
            np.testing.assert_array_equal(stats["ssim_hist"][i, r], hist)


def test_deficit_map_keeps_the_mean_of_a_flat_pair(rng):
    # The float32 map of SSIM 1 - 7.7e-6 rounds every pixel the same way (2.9e-8 off):
    # a mean of the map keeps that, a mean from the deficits does not.
    deficit = np.full((1, 6, 7), 7.7e-6, dtype=np.float32)
    maps = {
        "ssim": 1 - deficit,
        "luminance": 1 - deficit,
        "contrast": deficit,
        "structure": deficit,
    }
    exact = 1 - float(deficit[0, 0, 0])
    assert abs(float(maps["ssim"][0, 0, 0]) - exact) > 1e-8
    ids = np.zeros((1, 6, 7), dtype=np.int64)
    with_deficit = finalize_statistics(block_statistics({**maps, "deficit": deficit}, ids, 2, 4))
    np.testing.assert_allclose(with_deficit["ssim"][0], exact, rtol=0, atol=1e-15)
    assert with_deficit["ssim_std"][0].max() == 0.0
