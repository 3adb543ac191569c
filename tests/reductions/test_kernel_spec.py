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
from kernel_cases import assert_packed_equal, colour_pair, profile_spec

from pipeline.kernels import window_weights
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
