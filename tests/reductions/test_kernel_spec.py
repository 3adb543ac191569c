"""pipeline.reductions.kernel_spec: ``KernelSpec``, what one block needs to compute its maps.

``KernelSpec.whole_statistics`` (the engine's region-``all`` shortcut: packed
statistics straight from the fused grey, luma or colour kernel) gives the numbers
of ``block_statistics`` over ``KernelSpec.maps`` (counts and histograms exact, sums
to float64 summation order), and declines (None) where no such path applies: the
reference engine, blocks without valid windows. The kernels themselves are tested
in tests/kernels/cpu/test_fused.py and tests/kernels/cpu/test_colour.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import (
    ADVERSARIAL,
    adversarial_pair,
    assert_packed_equal,
    colour_pair,
    exact_ssim,
    profile_spec,
)

from pipeline.kernels import window_weights
from pipeline.kernels.statistics import COUNT, FIELDS, HIST, M2, SUM
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.statistics import block_statistics

BINS = 37
PROFILES = ("wang2004", "skimage")


def _window_spec(engine: str, color_mode: str, window: str = "gaussian") -> KernelSpec:
    weights = window_weights(window, 7, 1.5)
    return KernelSpec(
        window=window,
        weights=tuple(float(w) for w in weights),
        c1=(0.01 * 255) ** 2,
        c2=(0.03 * 255) ** 2,
        cov_norm=1.0,
        depth=3,
        engine=engine,
        color_mode=color_mode,
        device="cpu",
        kernel_threads=1,
    )


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
@pytest.mark.parametrize(("color_mode", "channels"), [("channels", 1), ("luma", 3)])
def test_engine_whole_statistics_match_maps_path(rng, window, color_mode, channels) -> None:
    # The engine's region-"all" shortcut gives the numbers of its maps path.
    shape = (3, 60, 45, channels)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
    spec = _window_spec("auto", color_mode, window)
    whole = spec.whole_statistics(x, y, 20)
    assert whole is not None
    assert_packed_equal(whole, block_statistics(spec.maps(x, y), None, 1, 20))


def test_engine_whole_statistics_declines_other_paths(rng) -> None:
    x = rng.integers(0, 256, (1, 40, 40, 3), dtype=np.uint8)
    # The reference engine keeps its float64 maps (the 1e-9 exactness tests), and
    # blocks without valid windows take the maps path's empty result. (Colour blocks
    # take the fused colour kernel: test_engine_whole_statistics_for_colour.)
    assert (
        _window_spec("reference", "channels").whole_statistics(x[..., :1], x[..., :1], 10) is None
    )
    assert _window_spec("reference", "channels").whole_statistics(x, x, 10) is None
    assert (
        _window_spec("auto", "channels").whole_statistics(x[:, :6, :, :1], x[:, :6, :, :1], 10)
        is None
    )
    assert _window_spec("auto", "channels").whole_statistics(x[:, :6], x[:, :6], 10) is None


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("threads", [1, None])
def test_engine_whole_statistics_for_colour(rng, profile, threads) -> None:
    x, y, data_range = colour_pair(rng, "uint8", (3, 60, 45, 3))
    spec = profile_spec(profile, data_range, threads)
    whole = spec.whole_statistics(x, y, BINS)
    assert whole is not None
    assert_packed_equal(
        whole, block_statistics(spec.maps(x, y), None, 1, BINS), extremes_exact=True
    )


def _grid_ids(n: int, h: int, w: int) -> np.ndarray:
    """A 2x2 grid of regions over ``(n, h, w)`` valid maps (region ids 0..3)."""
    rows = (np.arange(h) >= h // 2).astype(np.int64)
    cols = (np.arange(w) >= w // 2).astype(np.int64)
    return np.broadcast_to(2 * rows[:, None] + cols[None, :], (n, h, w)).copy()


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("channels", [1, 3])
def test_stored_maps_with_deficits_give_the_packed_region_all(rng, profile, channels) -> None:
    # A run with regions reduces stored maps; with the fused kernel's deficit map its
    # region "all" is the packed path's (the run without regions): the same row sums
    # of the same deficits, so SUM to the float64 summation order of a row (1e-15
    # relative), M2 (two-pass against Chan-merged rows; a spread of 1e-8 about SSIM
    # near 1 here) to 1e-9, the packed path's own tolerance (kernel_cases).
    x, y, data_range = colour_pair(rng, "uint16", (2, 61, 47, channels))
    spec = profile_spec(profile, data_range)
    whole = spec.whole_statistics(x, y, BINS)
    assert whole is not None
    maps = spec.maps(x, y, deficit=True)
    assert maps["deficit"].dtype == np.float64
    ids = _grid_ids(*maps["ssim"].shape)
    stored = block_statistics(maps, ids, 5, BINS)
    np.testing.assert_allclose(stored[:, :1, SUM], whole[..., SUM], rtol=1e-15, atol=0)
    np.testing.assert_allclose(stored[:, :1, M2], whole[..., M2], rtol=1e-9, atol=0)
    others = [k for k in range(HIST) if k not in (SUM, M2)]
    np.testing.assert_allclose(stored[:, :1, others], whole[..., others], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(stored[:, :1, HIST:], whole[..., HIST:])
    # The sub-regions partition region "all".
    np.testing.assert_allclose(stored[:, 1:, SUM].sum(axis=1), stored[:, 0, SUM], rtol=1e-14)
    assert (stored[:, 1:, COUNT].sum(axis=1) == stored[:, 0, COUNT]).all()
    # Without the deficits (and on the reference engine) the maps' own sums, as before.
    plain = spec.maps(x, y)
    assert "deficit" not in plain
    assert_packed_equal(block_statistics(plain, None, 1, BINS), whole, channels=channels)
    reference = _window_spec("reference", "channels")
    assert "deficit" not in reference.maps(x[..., :1], y[..., :1], deficit=True)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_region_means_from_stored_maps_against_the_exact_means(
    rng, kind, channels, profile
) -> None:
    # Region means of stored maps against the extended-precision oracle
    # (kernel_cases.exact_ssim: explicit windows in np.longdouble) over the same
    # windows, 2x2 grid. Flat pairs: exact to 1e-13, where the float32 map of flat
    # 255 vs 254 is 2.9e-8 off on every pixel (8.9e-8 for three channels averaged in
    # float32), which the maps' own sums kept. Region "all": within 1e-8, the packed
    # path's bound. Sub-regions of edges and noise (~500 pixels here) keep the float32
    # rounding of the deficit itself where SSIM is far from 1, which averages out less
    # over fewer pixels: up to 1.5e-8 observed (uniform 7, uint16 edge), so 2e-8.
    pairs = [adversarial_pair(rng, kind, (48, 56)) for _ in range(channels)]
    x = np.stack([a for a, _, _ in pairs], axis=-1)[None]
    y = np.stack([b for _, b, _ in pairs], axis=-1)[None]
    spec = profile_spec(profile, pairs[0][2])
    maps = spec.maps(x, y, deficit=True)
    ids = _grid_ids(*maps["ssim"].shape)
    stored = block_statistics(maps, ids, 5, BINS)
    exact = np.mean(
        [
            exact_ssim(
                a, b, weights=np.asarray(spec.weights), c1=spec.c1, c2=spec.c2,
                cov_norm=spec.cov_norm,
            )
            for a, b, _ in pairs
        ],
        axis=0,
    )  # fmt: skip
    assert exact.shape == maps["ssim"].shape[1:]
    flat = kind.startswith("flat-") and "beside" not in kind
    for region in range(5):
        where = np.ones(exact.shape, bool) if region == 0 else ids[0] == region - 1
        error = stored[0, region, SUM] / stored[0, region, COUNT] - exact[where].mean()
        bound = 1e-13 if flat else (1e-8 if region == 0 else 2e-8)
        assert abs(error) <= bound, (region, error)
    assert stored.shape == (1, 5, len(FIELDS) + BINS)
