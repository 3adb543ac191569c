"""The compiled CPU kernel against the float64 reference path (the oracle).

Tolerance 1e-5 (the float32 path) on every map (max abs) and on the
mean. The Gaussian path accumulates centre-shifted float32 moments (law of total
variance, see pipeline/kernels/cpu/gaussian.py), the uniform path float64 running sums
(exact int32 sums for uint8 under windows of up to 13 taps);
observed differences are ~1e-7..1.4e-6, adversarial cases included.

Also covers pipeline.kernels.cpu.chunk, .gaussian, .uniform and .combine, whose
compiled routines (the row loop, the two window passes, the per-pixel combine)
are only reachable through the entry points tested here: ``fused_maps``,
``fused_score`` and ``fused_packed_stats`` (directly or via ``block_maps``), and
the argument checks of pipeline.kernels.cpu.launch that these raise. Likewise
pipeline.kernels.cpu.partials: ``add_row_partial`` through ``fused_packed_stats``
here, its whole-image and region reductions through
``pipeline.reductions.statistics.block_statistics`` (tests/reductions/). The engine's
region-``all`` shortcut onto ``fused_packed_stats``
(``KernelSpec.whole_statistics``) is tested in tests/reductions/test_kernel_spec.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from kernel_cases import (
    ADVERSARIAL,
    NEAR_IDENTICAL,
    adversarial_pair,
    assert_packed_equal,
    checkerboard_pair,
    exact_ssim,
    kernel_params,
    map_rounding,
)
from skimage import data

import pipeline as sp
from pipeline.kernels import MAP_NAMES, block_maps, window_weights
from pipeline.kernels.cpu.combine import COL
from pipeline.kernels.cpu.fused import (
    fused_maps,
    fused_maps_and_score,
    fused_packed_stats,
    fused_score,
)
from pipeline.kernels.cpu.gaussian import (
    _FAR_ALL,
    _FAR_NONE,
    _FAR_SOME,
    _TWO_PARTS,
    _vertical_sweep_sd,
    _vertical_sweep_sd_xy,
)
from pipeline.kernels.statistics import FIELDS
from pipeline.reductions.statistics import block_statistics

TOLERANCE = 1e-5


def _assert_close(fused: dict, reference: dict) -> None:
    for name in reference:
        diff = np.abs(fused[name].astype(np.float64) - reference[name])
        assert diff.max() < TOLERANCE, f"{name}: max abs difference {diff.max():.2e}"
    mean_diff = abs(fused["ssim"].mean(dtype=np.float64) - reference["ssim"].mean())
    assert mean_diff < TOLERANCE


def _assert_score_relation(with_maps: float, alone: float, window: str, dtype) -> None:
    """The score of a pass with maps against :func:`fused_score`'s.

    A Gaussian window of up to 11 (odd) taps scores in the sum/difference basis
    (pipeline/kernels/cpu/gaussian.py); its maps carry ``var(x - y)`` beside the five
    moments, so both form ``sigma_x^2 + sigma_y^2 - 2 sigma_xy`` directly: two
    computations of one mean, not bit for bit, that differ by float32 rounding
    (<= 3.0e-9 observed on the adversarial pairs, <= 3e-10 on near-identical
    checkerboards, where the five moments alone were 1e-7 apart). The uniform
    window's score of uint8 pixels sums three integer moments, not four
    (``uniform.SCORE_INT_ROWS``): ``sigma_x^2 + sigma_y^2`` is rounded once, not as two
    terms, so it too differs by float32 rounding. Of other pixels it takes the maps'
    path: the same number.
    """
    if window == "uniform" and np.dtype(dtype) != np.uint8:
        assert with_maps == alone
    else:
        assert abs(with_maps - alone) < MEAN_TOLERANCE


def _pair(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> tuple:
    """An image pair and its data range; 'far' kinds sit where float32 moments cancel."""
    if kind == "uint8":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        noise = rng.integers(-40, 41, shape)
        return x, np.clip(x + noise, 0, 255).astype(np.uint8), 255.0
    if kind == "uint8-flat-bright":
        # Flat 255 regions beside an edge: float32 E[x^2] - mu^2 loses ~1e-4 of cs here.
        x = np.full(shape, 255, dtype=np.uint8)
        x[:, : shape[1] // 3] = 0
        y = x.copy()
        y[rng.random(shape) < 0.02] = 254
        return x, y, 255.0
    if kind == "uint16-far":
        x = (60000 + rng.integers(-50, 51, shape)).astype(np.uint16)
        y = (x.astype(np.int64) + rng.integers(-20, 21, shape)).astype(np.uint16)
        x[: shape[0] // 4] = 100  # an edge from ~0 to ~60000 inside the same block
        return x, y, 65535.0
    if kind == "uint8-checkerboard":
        # Near-identical high-contrast textures: v - 2 sigma_xy cancels in float32.
        return checkerboard_pair(shape, 50, 48)
    if kind == "float32":
        x = rng.random(shape, dtype=np.float32)
        y = np.clip(x + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1)
        return x, y, 1.0
    if kind == "float64-far":
        x = 1000.0 + rng.random(shape)
        return x, x + rng.normal(0, 0.05, shape), 1.0
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["uint8", "uint8-flat-bright", "uint16-far", "float32", "float64-far", "uint8-checkerboard"],
)
@pytest.mark.parametrize(
    ("window", "win_size", "covariance"),
    [
        ("gaussian", 11, "population"),  # wang2004
        ("gaussian", 7, "sample"),
        ("uniform", 7, "sample"),  # skimage defaults
        ("uniform", 3, "population"),
        ("uniform", 15, "sample"),
    ],
)
def test_fused_matches_reference(rng, kind, window, win_size, covariance) -> None:
    x, y, data_range = _pair(rng, kind, (67, 81))
    params = kernel_params(window, win_size, covariance, data_range)
    reference = block_maps(x, y, engine="reference", **params)
    fused = block_maps(x, y, engine="fused", **params)
    assert fused["ssim"].dtype == np.float32
    assert set(fused) == set(MAP_NAMES)
    _assert_close(fused, reference)


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e12])
@pytest.mark.parametrize(
    ("window", "win_size"), [("gaussian", 11), ("gaussian", 13), ("uniform", 7)]
)
def test_contrast_and_structure_at_every_scale(rng, scale, window, win_size) -> None:
    # The comparison step takes sigma_x sigma_y as one square root of the product of the
    # variances where that product can neither overflow nor matter if it underflows
    # (C2 >= 2^-40, every variance of the tile <= 2^63), as two roots elsewhere. Data
    # scaled 1e-9 (C2 ~ 1e-21) and 1e12 (variances ~ 1e23) take two roots, scale 1 one
    # root. Reference: the float64 reference engine on the same data, every map within
    # TOLERANCE; SSIM's maps do not depend on the scale when the data range follows it.
    x = rng.random((60, 70))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    # Nearly flat columns beside textured ones (exactly flat ones would test the float64
    # reference's own E[x^2] - mu^2 cancellation, 1e-5 of structure there).
    x[:, :20] = 0.5 + 1e-3 * x[:, :20]
    params = kernel_params(window, win_size, "sample", scale)
    xs, ys = x * scale, y * scale
    scaled = block_maps(xs, ys, engine="fused", **params)
    _assert_close(scaled, block_maps(xs, ys, engine="reference", **params))
    unit = block_maps(x, y, engine="fused", **kernel_params(window, win_size, "sample", 1.0))
    for name in MAP_NAMES:
        np.testing.assert_allclose(scaled[name], unit[name], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("win_size", [2, 5, 7, 8, 13])
def test_uint8_uniform_integer_sums_at_the_extremes(rng, win_size) -> None:
    # uint8 under a uniform window of up to INT_TAPS (13) taps takes exact int32
    # sums: 0/255 pixels make the largest sums and variance numerators there
    # (13 taps: 169 * 169 * 255^2 = 1.86e9, just below 2^31); windows of every
    # size class of the binary doubling (even, odd, a power of two).
    x = np.where(rng.random((60, 70)) < 0.5, 0, 255).astype(np.uint8)
    y = x.copy()
    y[rng.random(x.shape) < 0.1] = 128
    params = kernel_params("uniform", win_size, "sample", 255.0)
    reference = block_maps(x, y, engine="reference", **params)
    for threads in (None, 1):
        _assert_close(block_maps(x, y, engine="fused", threads=threads, **params), reference)
    del params["window"], params["components"]
    assert fused_score(x, x, uniform=True, threads=1, **params) == 1.0


@pytest.mark.parametrize("shape", [(11, 11), (11, 40), (40, 11), (12, 13), (300, 12)])
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_odd_shapes(rng, shape, window) -> None:
    # Barely larger than the window, a one-row or one-column valid region.
    x, y, data_range = _pair(rng, "uint8", shape)
    params = kernel_params(window, 11, "population", data_range)
    reference = block_maps(x, y, engine="reference", **params)
    for threads in (None, 1):
        fused = block_maps(x, y, engine="fused", threads=threads, **params)
        assert fused["ssim"].shape == (shape[0] - 10, shape[1] - 10)
        _assert_close(fused, reference)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_components_multiply_to_ssim(rng, window) -> None:
    x, y, data_range = _pair(rng, "uint8", (64, 64))
    maps = block_maps(x, y, engine="fused", **kernel_params(window, 7, "population", data_range))
    product = maps["luminance"] * maps["contrast"] * maps["structure"]
    np.testing.assert_allclose(product, maps["ssim"], atol=TOLERANCE)
    np.testing.assert_allclose(maps["luminance"] * maps["cs"], maps["ssim"], atol=TOLERANCE)


def test_without_components_returns_ssim_and_cs_only(rng) -> None:
    x, y, data_range = _pair(rng, "uint8", (40, 50))
    params = {**kernel_params("gaussian", 11, "population", data_range), "components": False}
    fused = block_maps(x, y, engine="fused", **params)
    assert set(fused) == {"ssim", "cs"}
    _assert_close(fused, block_maps(x, y, engine="reference", **params))


def test_identity_is_one(rng) -> None:
    x, _, data_range = _pair(rng, "uint16-far", (50, 50))
    maps = block_maps(
        x, x, engine="fused", **kernel_params("gaussian", 11, "population", data_range)
    )
    np.testing.assert_allclose(maps["ssim"], 1.0, atol=TOLERANCE)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint32])
def test_other_integer_dtypes_are_cast(rng, dtype) -> None:
    x = rng.integers(0, 1000, (40, 45)).astype(dtype)
    y = (x + rng.integers(0, 50, x.shape)).astype(dtype)
    params = kernel_params("uniform", 7, "sample", 1000.0)
    _assert_close(
        block_maps(x, y, engine="fused", **params), block_maps(x, y, engine="reference", **params)
    )


def test_mixed_dtypes(rng) -> None:
    x = rng.integers(0, 256, (40, 45), dtype=np.uint8)
    y = x.astype(np.uint16) + 3
    params = kernel_params("gaussian", 11, "population", 255.0)
    _assert_close(
        block_maps(x, y, engine="fused", **params), block_maps(x, y, engine="reference", **params)
    )


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_thread_counts_agree(rng, window) -> None:
    x, y, data_range = _pair(rng, "float32", (203, 97))
    params = kernel_params(window, 7, "population", data_range)
    serial = block_maps(x, y, engine="fused", threads=1, **params)
    for threads in (None, 2):
        parallel = block_maps(x, y, engine="fused", threads=threads, **params)
        for name in serial:
            np.testing.assert_allclose(parallel[name], serial[name], atol=1e-6)


def test_concurrent_calls_from_threads(rng) -> None:
    # Dask runs blocks on many worker threads at once: serial kernels must be
    # re-entrant, and parallel launches from several threads must not abort.
    pairs = [_pair(rng, "uint8", (160, 150)) for _ in range(6)]  # above the parallel threshold
    params = kernel_params("gaussian", 11, "population", 255.0)
    expected = [block_maps(x, y, engine="reference", **params) for x, y, _ in pairs]
    for threads in (1, None):

        def run(pair: tuple, threads: int | None = threads) -> dict:
            return block_maps(pair[0], pair[1], engine="fused", threads=threads, **params)

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(run, pairs))
        for fused, reference in zip(results, expected, strict=True):
            _assert_close(fused, reference)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_score_is_the_mean_of_the_map(rng, window, threads) -> None:
    # 300 x 260: large enough for the parallel kernel (several row chunks).
    x, y, data_range = _pair(rng, "uint8", (300, 260))
    params = kernel_params(window, 7, "sample", data_range)
    del params["window"], params["components"]
    maps = fused_maps(x, y, uniform=window == "uniform", threads=threads, **params)
    score = fused_score(x, y, uniform=window == "uniform", threads=threads, **params)
    # The score sums the float64 deficits 1 - ssim; the stored map is 1 - d rounded
    # to float32, at most map_rounding() (2^-25) off per pixel.
    # The Gaussian score takes the sum/difference basis, the maps the five moments:
    # each within 1e-8 of the exact mean (test_mean_within_1e8_of_exact).
    mean = maps["ssim"].astype(np.float64).mean()
    paths = 2 * MEAN_TOLERANCE if window == "gaussian" else 1e-15
    assert abs(score - mean) <= map_rounding() + paths
    assert score != mean  # the deficits, not the rounded map
    # A reordered float64 sum of ones is still exact.
    assert fused_score(x, x, uniform=window == "uniform", threads=threads, **params) == 1.0


@pytest.mark.parametrize("components", [True, False])
@pytest.mark.parametrize("uint8", [True, False])  # uniform: exact int32 or float64 sums
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_maps_with_the_deficit_plane(rng, window, uint8, components) -> None:
    # deficit=True adds the comparison step's 1 - ssim as a float64 map: the other
    # maps are unchanged, ssim is exactly 1 - deficit with the deficit rounded to
    # float32, and its float64 sum is the score's (the mean free of float32 rounding).
    x, y, data_range = _pair(rng, "uint8" if uint8 else "uint16-far", (300, 260))
    params = kernel_params(window, 7, "sample", data_range)
    del params["window"], params["components"]
    args = {"uniform": window == "uniform", "components": components, "threads": 2, **params}
    plain = fused_maps(x, y, **args)
    maps = fused_maps(x, y, deficit=True, **args)
    assert set(maps) == {*plain, "deficit"}
    for name, value in plain.items():
        np.testing.assert_array_equal(maps[name], value)
    deficit = maps["deficit"]
    assert deficit.dtype == np.float64 and deficit.shape == plain["ssim"].shape
    np.testing.assert_array_equal(np.float32(1) - deficit.astype(np.float32), maps["ssim"])
    both, score = fused_maps_and_score(x, y, deficit=True, **args)
    np.testing.assert_array_equal(both["deficit"], deficit)
    n = deficit.size
    assert abs(score - (n - deficit.sum(dtype=np.float64)) / n) <= 1e-15
    alone = fused_score(x, y, **{k: v for k, v in args.items() if k != "components"})
    _assert_score_relation(score, alone, window, x.dtype)


@pytest.mark.parametrize("kind", ["uint8", "uint16-far", "float64-far", "uint8-flat-bright"])
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
@pytest.mark.parametrize("shape", [(300, 517), (11, 40), (40, 11), (700, 64)])
def test_packed_stats_match_block_statistics(rng, kind, window, shape) -> None:
    # The fused row-by-row reduction (Chan-merged M2) against the two-pass
    # block_statistics of the same kernel's float32 maps (SUM and M2 to the maps'
    # rounding: the kernel sums its deficits, see assert_packed_equal).
    x, y, data_range = _pair(rng, kind, shape)
    params = kernel_params(window, 11, "sample", data_range)
    del params["window"], params["components"]
    uniform = window == "uniform"
    m2 = FIELDS.index("m2")
    serial = None
    for threads in (1, 2, None):
        maps = fused_maps(x, y, uniform=uniform, threads=threads, **params)
        expected = block_statistics({k: v[None] for k, v in maps.items()}, None, 1, 37)[0, 0]
        packed = fused_packed_stats(x, y, uniform=uniform, bins=37, threads=threads, **params)
        assert_packed_equal(packed, expected)
        if serial is None:
            serial = packed
        elif not uniform:
            # The same per-pixel deficits (the Gaussian path's rows do not depend on the
            # row chunks), merged per chunk by Chan's update: M2 to ~1e-12.
            np.testing.assert_allclose(packed[m2], serial[m2], rtol=1e-11)


def test_packed_stats_of_identical_images(rng) -> None:
    x, _, data_range = _pair(rng, "uint8", (64, 80))
    params = kernel_params("gaussian", 11, "population", data_range)
    del params["window"], params["components"]
    packed = fused_packed_stats(x, x, uniform=False, bins=10, threads=1, **params)
    n = 54 * 70
    assert packed[FIELDS.index("count")] == n
    assert packed[FIELDS.index("sum")] == n
    assert packed[FIELDS.index("m2")] == 0.0
    assert packed[FIELDS.index("min")] == packed[FIELDS.index("max")] == 1.0
    assert packed[-1] == n  # 1.0 falls in the last bin, as in np.histogram


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_packed_stats_bins_error(rng, bins) -> None:
    x, y, data_range = _pair(rng, "uint8", (32, 32))
    params = kernel_params("gaussian", 7, "population", data_range)
    del params["window"], params["components"]
    with pytest.raises(ValueError, match=r"bins must be a positive integer \(got"):
        fused_packed_stats(x, y, uniform=False, bins=bins, **params)


def test_photograph_through_ssim_default_engine() -> None:
    # The default engine of sp.ssim on 2-D NumPy input is the fused kernel.
    x = data.camera()
    y = np.clip(x.astype(np.int16) + (np.arange(x.size).reshape(x.shape) % 7) - 3, 0, 255).astype(
        np.uint8
    )
    for profile in ("wang2004", "skimage"):
        fast, maps = sp.ssim(x, y, profile=profile, full=True)
        slow = sp.ssim(x, y, profile=profile, engine="reference")
        assert abs(fast - slow) < TOLERANCE
        assert maps["ssim"].dtype == np.float32


def test_colour_photograph_through_ssim() -> None:
    x = data.astronaut()
    y = x[::-1, ::-1].copy()
    fast, maps = sp.ssim(x, y, channel_axis=-1, full=True)
    slow, reference = sp.ssim(x, y, channel_axis=-1, full=True, engine="reference")
    assert abs(fast - slow) < TOLERANCE
    assert maps["ssim"].shape == (502, 502, 3)
    for name in MAP_NAMES:
        assert np.abs(maps[name] - reference[name]).max() < TOLERANCE


@pytest.mark.parametrize(
    ("threads", "error", "match"),
    [
        (0, ValueError, r"threads must be a positive integer or None \(got 0\)"),
        (1.5, TypeError, r"threads must be a positive integer or None \(got 1.5\)"),
        (True, TypeError, r"threads must be a positive integer or None \(got True\)"),
    ],
)
def test_threads_errors(rng, threads, error, match) -> None:
    x, y, _ = _pair(rng, "uint8", (20, 20))
    with pytest.raises(error, match=match):
        block_maps(
            x, y, engine="fused", threads=threads, **kernel_params("gaussian", 7, "sample", 255)
        )


def test_shape_errors(rng) -> None:
    x = rng.random((20, 20))
    weights = window_weights("gaussian", 11, 1.5)
    with pytest.raises(ValueError, match="two 2-D arrays of the same shape"):
        fused_maps(x, x[:10], weights=weights, uniform=False, c1=1.0, c2=1.0)
    with pytest.raises(ValueError, match="weights must be 1-D with at most min"):
        fused_maps(x[:5], x[:5], weights=weights, uniform=False, c1=1.0, c2=1.0)


@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize(
    ("window", "win_size", "covariance"),
    [("gaussian", 11, "population"), ("gaussian", 7, "sample"), ("uniform", 7, "sample")],
)
def test_adversarial_precision(rng, kind, window, win_size, covariance) -> None:
    # The Gaussian path computes float32 moments centred on each window's
    # centre sample; these pairs are where plain float32 E[x^2] - mu^2 misses
    # 1e-5 by 10-60x (benchmarks/README-kernels.md, precision table).
    x, y, data_range = adversarial_pair(rng, kind, (70, 90))
    params = kernel_params(window, win_size, covariance, data_range)
    _assert_close(
        block_maps(x, y, engine="fused", **params), block_maps(x, y, engine="reference", **params)
    )


@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_identity_and_symmetry_are_exact(rng, kind, window) -> None:
    x, y, data_range = adversarial_pair(rng, kind, (40, 300))
    params = kernel_params(window, 11, "population", data_range)
    identity = block_maps(x, x, engine="fused", **params)
    for name in ("ssim", "cs", "luminance"):
        assert (identity[name] == 1).all(), name
    # contrast and structure go through sqrt(sigma^2), whose square rounds.
    for name in ("contrast", "structure"):
        np.testing.assert_allclose(identity[name], 1.0, atol=1e-6)
    forward = block_maps(x, y, engine="fused", **params)
    backward = block_maps(y, x, engine="fused", **params)
    for name in forward:
        np.testing.assert_array_equal(forward[name], backward[name])


def test_weights_errors(rng) -> None:
    x = rng.random((20, 20))
    with pytest.raises(ValueError, match=r"weights must be symmetric \(got \[0\.2"):
        fused_maps(x, x, weights=np.array([0.2, 0.3, 0.5]), uniform=False, c1=1.0, c2=1.0)
    big = np.zeros((1100, 1100))
    with pytest.raises(ValueError, match=r"weights must have at most 1040 taps \(got 1041\)"):
        fused_maps(big, big, weights=np.full(1041, 1 / 1041), uniform=True, c1=1.0, c2=1.0)


# The mean's bound: the 1e-8, against an exact oracle. Observed after the
# deficit form (benchmarks/README-kernels.md, "Mean accuracy"): <= 7e-9 on these
# pairs (float32 rounding of d where SSIM is far from 1: edges, salt and pepper);
# before it: up to 2.9e-8 (flat 255 vs 254) and 2.8e-8 (uniform, float64 offset 1e4).
MEAN_TOLERANCE = 1e-8


@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize(
    ("window", "win_size", "covariance"), [("gaussian", 11, "population"), ("uniform", 7, "sample")]
)
def test_mean_within_1e8_of_exact(rng, kind, window, win_size, covariance) -> None:
    # The oracle is kernel_cases.exact_ssim: explicit windows in extended precision,
    # moments about each window's mean (the float64 reference engine's E[x^2] - mu^2
    # is itself ~1e-8 off on data offset by 1e4). The score and the packed SUM come
    # from the kernel's float64 sums of its deficits 1 - ssim, one thread and several.
    x, y, data_range = adversarial_pair(rng, kind, (70, 90))
    params = kernel_params(window, win_size, covariance, data_range)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    uniform = window == "uniform"
    for threads in (1, 2):
        score = fused_score(x, y, uniform=uniform, threads=threads, **params)
        assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"
        packed = fused_packed_stats(x, y, uniform=uniform, bins=10, threads=threads, **params)
        mean = packed[FIELDS.index("sum")] / packed[FIELDS.index("count")]
        assert abs(mean - exact) < MEAN_TOLERANCE, f"packed mean off by {mean - exact:.1e}"


@pytest.mark.parametrize("win_size", [3, 5, 7, 9, 10, 11, 13])
@pytest.mark.parametrize(
    "kind", ["salt-and-pepper", "uint16-65535-edge", "float32-offset-1e4", "float64-offset-1e4"]
)
def test_score_in_the_sum_difference_basis(rng, kind, win_size) -> None:
    # Odd Gaussian windows of up to 11 taps score in the sum/difference basis (smaller
    # ones read the 11-tap sweep's missing columns with weight 0); 10 and 13 taps keep
    # the five moments. Every path: within 1e-8 of the exact oracle, exactly 1 for
    # equal images, exactly symmetric, the same rows over any number of threads (the
    # float64 sum of the rows in another order). float32 pixels offset by 1e4 carry
    # the float32 rounding of s_x + s_y (without it: 5e-8 off).
    x, y, data_range = adversarial_pair(rng, kind, (300, 64))
    params = kernel_params("gaussian", win_size, "sample", data_range)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    score = fused_score(x, y, uniform=False, threads=1, **params)
    assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"
    assert fused_score(y, x, uniform=False, threads=1, **params) == score
    assert fused_score(x, x, uniform=False, threads=1, **params) == 1.0
    assert abs(fused_score(x, y, uniform=False, threads=2, **params) - score) < 1e-14


def _faint_texture_beside_steps(rng, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 levels: a 0/255 step every 90 columns, +-2 of texture, y within +-1 of x."""
    step = np.where((np.arange(shape[1]) // 90) % 2 == 1, 255, 0)
    x = np.clip(step[None, :] + rng.integers(-2, 3, shape), 0, 255)
    y = np.clip(x + rng.integers(-1, 2, shape), 0, 255)
    return x, y


@pytest.mark.parametrize(
    ("dtype", "scale", "offset"),
    [
        (np.uint8, 1, 0),
        (np.uint16, 257, 0),
        (np.float32, 1 / 255, 10.0),
        (np.float64, 1 / 255, 1e4),
    ],
)
def test_score_of_faint_texture_beside_a_far_brighter_region(rng, dtype, scale, offset) -> None:
    # The score keeps each column mean as one float32 number less its tile's
    # reference (a ring value of the tile's middle column; pipeline/kernels/cpu/
    # gaussian.py): a smooth window beside a far brighter region of the same tile
    # rounds its deviations relative to that distance instead of its own. Faint
    # texture beside full-range steps in every tile of 256 columns, near-identical
    # images, floats offset far from zero: within 1e-8 of the exact oracle, exactly
    # symmetric, exactly 1 for equal images.
    x, y = _faint_texture_beside_steps(rng, (120, 600))
    x = (x * scale + offset).astype(dtype)
    y = (y * scale + offset).astype(dtype)
    data_range = 255.0 * scale
    params = kernel_params("gaussian", 11, "population", data_range)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    for threads in (2, 1):
        score = fused_score(x, y, uniform=False, threads=threads, **params)
        assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"
    assert fused_score(y, x, uniform=False, threads=1, **params) == score
    assert fused_score(x, x, uniform=False, threads=1, **params) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_score_of_data_far_outside_its_data_range(rng, dtype) -> None:
    # A step of 1000 data ranges puts the one-part column means of the right half
    # beyond 512 sqrt(C2): the windows that hold such a column are made from the
    # sweeps with each mean in two parts, whose precision does not depend on the
    # means' size. Within 2e-9 of the exact oracle (one part alone left 2.1e-7 for
    # float32 and 7.8e-8 for float64).
    shape = (200, 200)
    step = np.where(np.arange(shape[1]) > shape[1] // 2, 1000.0, 0.0)
    x = step[None, :] + rng.normal(0, 0.01, shape)
    y = x + rng.normal(0, 0.01, shape)
    x, y = x.astype(dtype), y.astype(dtype)
    params = kernel_params("gaussian", 11, "population", 1.0)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    score = fused_score(x, y, uniform=False, threads=1, **params)
    assert abs(score - exact) < 2e-9, f"score off by {score - exact:.1e}"
    assert fused_score(y, x, uniform=False, threads=1, **params) == score


@pytest.mark.parametrize("summed", [True, False])
def test_one_part_sweeps_tell_none_some_or_all_far_columns(summed) -> None:
    # The score's one-part vertical sweeps report whether none, some or all of their
    # columns' means lie beyond the spread; the two-part sweeps report none. A wrong
    # answer would not change the bits (some is the general case) but would make
    # the comparison step read means that were never written, or sweep twice.
    win, width = 11, 40
    g = window_weights("gaussian", win, 1.5).astype(np.float32)
    col = np.zeros(8 * COL, np.float32)
    limit = 100.0
    for offset, columns, expected in [
        (0.0, slice(0, 0), _FAR_NONE),
        (1e4, slice(7, 9), _FAR_SOME),
        (1e4, slice(0, width), _FAR_ALL),
        (np.nan, slice(20, 21), _FAR_SOME),
    ]:
        ring = np.ones((2, win, width + 16), np.float32)
        ring[:, :, columns] += offset
        sweep = _vertical_sweep_sd if summed else _vertical_sweep_sd_xy
        found = sweep(ring[0], ring[1], g, 0, 0, width, col, None, limit)
        assert found == expected, (offset, columns)
        assert sweep(ring[0], ring[1], g, 0, 0, width, col, _TWO_PARTS, limit) == _FAR_NONE


@pytest.mark.parametrize(("high", "low"), [(50, 48), (20, 19)])
def test_score_of_near_identical_checkerboards(high, low) -> None:
    # uint8 128 +- high against 128 +- low: sigma_x^2 + sigma_y^2 - 2 sigma_xy of the
    # five float32 moments cancels (1.0e-7 and 1.5e-7 off before); V- = var(x - y) of
    # the sum/difference basis does not (the maps path: the test below).
    rows, cols = np.indices((60, 70))
    sign = np.where((rows + cols) % 2 == 0, 1, -1)
    x = (128 + high * sign).astype(np.uint8)
    y = (128 + low * sign).astype(np.uint8)
    params = kernel_params("gaussian", 11, "population", 255.0)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    score = fused_score(x, y, uniform=False, **params)
    assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"


@pytest.mark.parametrize("kind", NEAR_IDENTICAL)
@pytest.mark.parametrize(("win_size", "covariance"), [(11, "population"), (7, "sample")])
def test_maps_path_mean_of_near_identical_checkerboards(rng, kind, win_size, covariance) -> None:
    # The maps path (maps and score in one pass, packed statistics, stored deficits)
    # forms var(x - y) directly beside the five moments: within 1e-8 of the exact
    # oracle (kernel_cases.exact_ssim) where v - 2 sigma_xy of the five float32
    # moments left 1.0e-7 (50 vs 48) and 1.5e-7 (20 vs 19) under 11 taps, 0.7e-7 and
    # 1.2e-7 under 7; and within 1e-8 of fused_score's sum/difference basis (observed
    # <= 3e-10 on these pairs; 1e-7 apart before).
    x, y, data_range = adversarial_pair(rng, kind, (60, 70))
    params = kernel_params("gaussian", win_size, covariance, data_range)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    alone = fused_score(x, y, uniform=False, threads=1, **params)
    for threads in (1, 2):
        maps, score = fused_maps_and_score(
            x, y, uniform=False, threads=threads, deficit=True, **params
        )
        assert abs(score - exact) < MEAN_TOLERANCE, f"maps' score off by {score - exact:.1e}"
        assert abs(score - alone) < MEAN_TOLERANCE
        stored = 1 - maps["deficit"].mean(dtype=np.float64)
        assert abs(stored - exact) < MEAN_TOLERANCE, f"stored deficits off by {stored - exact:.1e}"
        packed = fused_packed_stats(x, y, uniform=False, bins=10, threads=threads, **params)
        mean = packed[FIELDS.index("sum")] / packed[FIELDS.index("count")]
        assert abs(mean - exact) < MEAN_TOLERANCE, f"packed mean off by {mean - exact:.1e}"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("win_size", [11, 7, 3, 13])
def test_maps_identity_and_symmetry_in_every_dtype(dtype, win_size) -> None:
    # var(x - y) is 0 for equal images (m = 0) and the same for swapped ones (m -> -m
    # exactly): ssim, cs and luminance are exactly 1 for (x, x), every map is the same
    # bits for (y, x) as for (x, y), and the stored deficits are exactly 0 for (x, x).
    # 13 taps keep the five moments.
    x, y, data_range = checkerboard_pair((40, 53), 50, 48, dtype)
    y = y.copy()
    y[5:9, 10:30] = x[5:9, 10:30]  # an identical patch inside the texture
    params = kernel_params("gaussian", win_size, "sample", data_range)
    del params["window"]
    identity = fused_maps(x, x, uniform=False, deficit=True, **params)
    for name in ("ssim", "cs", "luminance"):
        assert (identity[name] == 1).all(), name
    assert (identity["deficit"] == 0).all()
    forward = fused_maps(x, y, uniform=False, deficit=True, **params)
    backward = fused_maps(y, x, uniform=False, deficit=True, **params)
    for name in forward:
        np.testing.assert_array_equal(forward[name], backward[name])
    assert (forward["ssim"] < 1).any()


@pytest.mark.parametrize("kind", [*NEAR_IDENTICAL, "salt-and-pepper", "float32-offset-1e4"])
@pytest.mark.parametrize("win_size", [3, 7, 11, 13])
def test_maps_without_components(rng, kind, win_size) -> None:
    # ssim and cs alone (MS-SSIM's scales) under odd windows of up to 11 taps take the
    # score's sum/difference passes (13 taps: the five moments): per pixel within 1e-5
    # of the float64 reference, the mean within 1e-8 of the exact oracle (but for the
    # checkerboards under 13 taps), exactly symmetric, exactly 1 (deficit 0) for equal
    # images.
    x, y, data_range = adversarial_pair(rng, kind, (50, 61))
    params = kernel_params("gaussian", win_size, "sample", data_range)
    del params["window"], params["components"]
    maps, score = fused_maps_and_score(
        x, y, uniform=False, components=False, deficit=True, **params
    )
    assert set(maps) == {"ssim", "cs", "deficit"}
    reference = block_maps(x, y, engine="reference", window="gaussian", components=False, **params)
    _assert_close({k: maps[k] for k in ("ssim", "cs")}, reference)
    exact = exact_ssim(x, y, **params).mean()
    if win_size <= 11 or kind not in NEAR_IDENTICAL:  # 13 taps: five moments, 1e-7 there
        assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"
    backward = fused_maps(y, x, uniform=False, components=False, deficit=True, **params)
    for name in maps:
        np.testing.assert_array_equal(maps[name], backward[name])
    same = fused_maps(x, x, uniform=False, components=False, deficit=True, **params)
    assert (same["ssim"] == 1).all() and (same["cs"] == 1).all()
    assert (same["deficit"] == 0).all()


def test_flat_pair_mean_is_not_the_rounded_map(rng) -> None:
    # Flat 255 against 254: SSIM = 1 - 1/(255^2 + 254^2 + C1) on every pixel, which
    # float32 holds only to 2.9e-8, the same on every pixel; the deficits do not round.
    x, y, data_range = adversarial_pair(rng, "flat-255-vs-254", (40, 50))
    params = kernel_params("gaussian", 11, "population", data_range)
    del params["window"], params["components"]
    exact = 1 - 1 / (255.0**2 + 254.0**2 + params["c1"])
    assert abs(fused_score(x, y, uniform=False, **params) - exact) < 1e-12
    ssim_map = fused_maps(x, y, uniform=False, **params)["ssim"]
    assert abs(ssim_map.mean(dtype=np.float64) - exact) > 1e-8  # why the map is not summed


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_maps_and_score_in_one_pass(rng, window) -> None:
    # The maps of fused_maps, bit for bit, and the mean of their deficits, from one pass.
    x, y, data_range = adversarial_pair(rng, "flat-255-beside-0", (300, 80))
    params = kernel_params(window, 7, "sample", data_range)
    del params["window"]
    uniform = window == "uniform"
    for threads in (1, 2):
        maps, score = fused_maps_and_score(x, y, uniform=uniform, threads=threads, **params)
        expected = fused_maps(x, y, uniform=uniform, threads=threads, **params)
        assert set(maps) == set(expected)
        for name in expected:
            np.testing.assert_array_equal(maps[name], expected[name])
        del params["components"]
        alone = fused_score(x, y, uniform=uniform, threads=threads, **params)
        _assert_score_relation(score, alone, window, x.dtype)
        params["components"] = True


@pytest.mark.parametrize("kind", NEAR_IDENTICAL)
@pytest.mark.parametrize(
    ("win_size", "covariance", "dtype"),
    [
        (7, "sample", np.uint8),  # skimage defaults: the exact int32 7x7 tile pass
        (7, "sample", np.float32),  # the float64 7x7 tile pass
        (9, "population", np.float32),  # float64 running sums
        (11, "sample", np.float64),
        (11, "sample", np.uint8),  # exact int32 sums, other sizes
        (15, "population", np.uint16),  # float64 sums of integers (beyond INT_TAPS)
    ],
)
def test_uniform_mean_of_near_identical_checkerboards(kind, win_size, covariance, dtype) -> None:
    # The uniform window forms var(x - y) from its float64 (or exact int32) window sums
    # before any float32 rounding: the score, the maps' score, the stored deficits and
    # the packed mean are within 1e-8 of the exact oracle (kernel_cases.exact_ssim),
    # where v - 2 sigma_xy of the five float32 moments left up to 9e-8 (50 vs 48: -8.0e-8
    # under the uint8 7x7 window, +8.5e-8 for float32, -8.8e-8 for float64 under 9
    # taps); the maps within 1e-5 of the float64 reference per pixel.
    _, high, _, low = kind.split("-")
    x, y, data_range = checkerboard_pair((60, 70), int(high), int(low), dtype)
    params = kernel_params("uniform", win_size, covariance, data_range)
    del params["window"], params["components"]
    exact = exact_ssim(x, y, **params).mean()
    reference = block_maps(x, y, engine="reference", window="uniform", components=True, **params)
    for threads in (1, 2):
        score = fused_score(x, y, uniform=True, threads=threads, **params)
        assert abs(score - exact) < MEAN_TOLERANCE, f"score off by {score - exact:.1e}"
        maps, with_maps = fused_maps_and_score(
            x, y, uniform=True, threads=threads, deficit=True, **params
        )
        assert with_maps == score  # the uniform window's score takes the maps' path
        _assert_close(maps, reference)
        stored = 1 - maps["deficit"].mean(dtype=np.float64)
        assert abs(stored - exact) < MEAN_TOLERANCE, f"stored deficits off by {stored - exact:.1e}"
        packed = fused_packed_stats(x, y, uniform=True, bins=10, threads=threads, **params)
        mean = packed[FIELDS.index("sum")] / packed[FIELDS.index("count")]
        assert abs(mean - exact) < MEAN_TOLERANCE, f"packed mean off by {mean - exact:.1e}"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("win_size", [7, 9, 15])
def test_uniform_identity_and_symmetry_in_every_dtype(dtype, win_size) -> None:
    # var(x - y) = var_x + var_y - 2 cov of the unrounded (float64 or exact integer)
    # moments: exactly 0 for equal images (the three are the same number) and the same
    # for swapped ones (var_x + var_y commutes, the sums of x y and y x are equal).
    x, y, data_range = checkerboard_pair((40, 53), 50, 48, dtype)
    y = y.copy()
    y[5:9, 10:30] = x[5:9, 10:30]  # an identical patch inside the texture
    params = kernel_params("uniform", win_size, "sample", data_range)
    del params["window"]
    identity = fused_maps(x, x, uniform=True, deficit=True, **params)
    for name in ("ssim", "cs", "luminance"):
        assert (identity[name] == 1).all(), name
    assert (identity["deficit"] == 0).all()
    forward = fused_maps(x, y, uniform=True, deficit=True, **params)
    backward = fused_maps(y, x, uniform=True, deficit=True, **params)
    for name in forward:
        np.testing.assert_array_equal(forward[name], backward[name])
    assert (forward["ssim"] < 1).any()
    del params["components"]
    assert fused_score(x, x, uniform=True, **params) == 1.0
    assert fused_score(x, y, uniform=True, **params) == fused_score(y, x, uniform=True, **params)
