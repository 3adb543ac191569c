"""The fused colour statistics kernel against the maps path and the float64 reference.

Two oracles:

* the maps path it replaces (``KernelSpec.maps``: the fused kernel per channel,
  channels averaged in float32, then ``block_statistics``): the same per-pixel
  values, so counts, extremes and histograms agree exactly and the component sums to
  float64 summation order (rtol 1e-12); ``SUM`` and ``M2`` come from the kernel's
  float64 deficits ``1 - ssim``, so they agree to the float32 rounding of the averaged
  maps (``kernel_cases.map_rounding``), as for the grey ``fused_packed_stats``;
* the float64 reference engine through ``pipeline.ssim(..., channel_axis=-1,
  engine="reference")`` (per-channel maps averaged per pixel, skimage's
  ``channel_axis`` convention): the float32 path's tolerance, 1e-5.

The engine's region-``all`` shortcut onto this kernel (``KernelSpec.whole_statistics``)
is tested in tests/reductions/test_kernel_spec.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import (
    NEAR_IDENTICAL,
    adversarial_pair,
    assert_packed_equal,
    colour_pair,
    exact_ssim,
    map_rounding,
    profile_spec,
)

import pipeline as sp
from pipeline.kernels.cpu.colour import fused_colour_packed_stats, fused_colour_packed_stats_stack
from pipeline.kernels.cpu.fused import fused_packed_stats
from pipeline.kernels.statistics import FIELDS
from pipeline.kernels.windows import window_weights
from pipeline.metrics.profiles import resolve_params
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.statistics import block_statistics, finalize_statistics

TOLERANCE = 1e-5
BINS = 37
PROFILES = ("wang2004", "skimage")


def _packed(x: np.ndarray, y: np.ndarray, spec: KernelSpec, threads: int | None) -> np.ndarray:
    return fused_colour_packed_stats(
        x,
        y,
        weights=np.asarray(spec.weights),
        uniform=spec.window == "uniform",
        c1=spec.c1,
        c2=spec.c2,
        bins=BINS,
        cov_norm=spec.cov_norm,
        threads=threads,
    )


def _maps_path(x: np.ndarray, y: np.ndarray, spec: KernelSpec) -> np.ndarray:
    """What the engine computed before: channel-averaged maps, then block_statistics."""
    return block_statistics(spec.maps(x[None], y[None]), None, 1, BINS)[0, 0]


def _shapes(profile: str) -> list[tuple[int, int]]:
    # Barely larger than the window (one valid row or column), odd sides, tall and wide.
    w = resolve_params(profile)[1].win_size
    return [(w, w), (w + 1, w + 2), (w, 40), (40, w), (67, 93)]


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize("profile", PROFILES)
def test_matches_maps_path(rng, kind, profile) -> None:
    for shape in _shapes(profile):
        x, y, data_range = colour_pair(rng, kind, (*shape, 3))
        spec = profile_spec(profile, data_range)
        assert_packed_equal(
            _packed(x, y, spec, 1), _maps_path(x, y, spec), extremes_exact=True, channels=3
        )


@pytest.mark.parametrize("kind", ["uint8", "float64"])
@pytest.mark.parametrize("profile", PROFILES)
def test_thread_counts_match_maps_path(rng, kind, profile) -> None:
    # Large enough for parallel row chunks and, single-threaded, for the uniform
    # path's running sums to restart (every 256 rows): the maps path does the same.
    x, y, data_range = colour_pair(rng, kind, (300, 217, 3))
    for threads in (1, 2, None):
        spec = profile_spec(profile, data_range, threads)
        assert_packed_equal(
            _packed(x, y, spec, threads), _maps_path(x, y, spec), extremes_exact=True, channels=3
        )


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize("profile", PROFILES)
def test_one_channel_is_the_grey_kernel_bit_for_bit(rng, kind, profile) -> None:
    # One channel takes no average: each row must be the grey kernel's own row, so the
    # packed statistics are identical to fused_packed_stats', not merely close.
    x, y, data_range = colour_pair(rng, kind, (300, 77, 1))
    for threads in (1, 2):
        spec = profile_spec(profile, data_range, threads)
        grey = fused_packed_stats(
            x[..., 0],
            y[..., 0],
            weights=np.asarray(spec.weights),
            uniform=spec.window == "uniform",
            c1=spec.c1,
            c2=spec.c2,
            bins=BINS,
            cov_norm=spec.cov_norm,
            threads=threads,
        )
        np.testing.assert_array_equal(_packed(x, y, spec, threads), grey)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_any_channel_count(rng, channels) -> None:
    x, y, data_range = colour_pair(rng, "uint8", (30, 41, channels))
    spec = profile_spec("wang2004", data_range)
    assert_packed_equal(
        _packed(x, y, spec, 1), _maps_path(x, y, spec), extremes_exact=True, channels=channels
    )


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("shape", [(11, 11), (12, 13), (48, 71)])
def test_matches_float64_reference(rng, kind, profile, shape) -> None:
    # The per-pixel channel mean of the reference engine's float64 maps.
    x, y, data_range = colour_pair(rng, kind, (*shape, 3))
    spec = profile_spec(profile, data_range)
    stats = finalize_statistics(_packed(x, y, spec, 1))
    score, maps = sp.ssim(
        x, y, data_range=data_range, profile=profile, channel_axis=-1, engine="reference", full=True
    )
    averaged = {
        name: maps[name].mean(axis=-1) for name in ("ssim", "luminance", "contrast", "structure")
    }
    assert stats["count"] == averaged["ssim"].size
    assert abs(stats["ssim"] - score) < TOLERANCE
    for name in ("luminance", "contrast", "structure"):
        assert abs(stats[name] - averaged[name].mean()) < TOLERANCE
    assert abs(stats["ssim_std"] - averaged["ssim"].std()) < TOLERANCE
    assert abs(stats["ssim_min"] - averaged["ssim"].min()) < TOLERANCE
    assert abs(stats["ssim_max"] - averaged["ssim"].max()) < TOLERANCE
    assert stats["ssim_hist"].sum() == averaged["ssim"].size


def test_identical_images(rng) -> None:
    x, _, data_range = colour_pair(rng, "uint8", (40, 52, 3))
    packed = _packed(x, x, profile_spec("wang2004", data_range), 1)
    n = 30 * 42
    assert packed[FIELDS.index("count")] == n
    assert packed[FIELDS.index("sum")] == n
    assert packed[FIELDS.index("m2")] == 0.0
    assert packed[FIELDS.index("min")] == packed[FIELDS.index("max")] == 1.0
    assert packed[-1] == n


def test_other_and_mixed_dtypes(rng) -> None:
    # Cast like fused_maps: other dtypes to float64, mixed dtypes to their common type.
    x, y, data_range = colour_pair(rng, "uint8", (25, 31, 3))
    spec = profile_spec("wang2004", data_range)
    for a, b in ((x.astype(np.int16), y.astype(np.int16)), (x, y.astype(np.uint16))):
        assert_packed_equal(
            _packed(a, b, spec, 1), _maps_path(a, b, spec), extremes_exact=True, channels=3
        )


def test_evaluate_colour_region_all_unchanged(rng) -> None:
    # Region "all" alone takes the fused colour kernel; with tiles the maps path runs.
    x, y, _ = colour_pair(rng, "uint8", (4, 70, 90, 3))
    fused = sp.evaluate(x, y, channel_axis=-1)
    maps = sp.evaluate(x, y, channel_axis=-1, regions="2x2").sel(region=["all"])
    for name in ("luminance", "contrast", "structure", "ssim_min", "ssim_max"):
        np.testing.assert_allclose(fused[name].values, maps[name].values, rtol=1e-12, atol=1e-15)
    # The kernel's mean and spread come from its float64 deficits, the maps path's from
    # the float32 averaged maps: apart by at most their rounding e per pixel (the
    # deviations by 2 e, hence the standard deviation by 2 e).
    e = map_rounding(3)
    np.testing.assert_allclose(fused["ssim"].values, maps["ssim"].values, rtol=0, atol=e)
    np.testing.assert_allclose(fused["ssim_std"], maps["ssim_std"], rtol=0, atol=2 * e)
    np.testing.assert_array_equal(fused["count"].values, maps["count"].values)
    np.testing.assert_array_equal(fused["ssim_hist"].values, maps["ssim_hist"].values)
    reference = sp.evaluate(x, y, channel_axis=-1, engine="reference")
    np.testing.assert_allclose(fused["ssim"].values, reference["ssim"].values, atol=TOLERANCE)


@pytest.mark.parametrize("bins", [0, -3, 2.5, True])
def test_bins_error(rng, bins) -> None:
    x, y, data_range = colour_pair(rng, "uint8", (20, 20, 3))
    spec = profile_spec("wang2004", data_range)
    with pytest.raises(ValueError, match=r"bins must be a positive integer \(got"):
        fused_colour_packed_stats(
            x, y, weights=np.asarray(spec.weights), uniform=False, c1=1.0, c2=1.0, bins=bins
        )


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "match"),
    [
        ((20, 20), (20, 20), r"needs two \(rows, cols, channels\) arrays .*got \(20, 20\)"),
        ((20, 20, 3), (20, 21, 3), r"of the same shape \(got \(20, 20, 3\) and \(20, 21, 3\)\)"),
        ((8, 20, 3), (8, 20, 3), r"weights must be 1-D with at most min\(shape\) taps"),
    ],
)
def test_shape_errors(x_shape, y_shape, match) -> None:
    spec = profile_spec("wang2004", 255.0)
    with pytest.raises(ValueError, match=match):
        fused_colour_packed_stats(
            np.zeros(x_shape, np.uint8),
            np.zeros(y_shape, np.uint8),
            weights=np.asarray(spec.weights),
            uniform=False,
            c1=spec.c1,
            c2=spec.c2,
            bins=BINS,
        )


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_map_sums_add_the_kernels_own_maps_in_the_statistics_pass(
    rng, profile, channels, threads
) -> None:
    # Reference: KernelSpec.maps (the fused engine's float32 maps, channel mean in
    # float32) of each image, summed with NumPy in float64. The packed statistics do
    # not change when the sums are asked for.
    spec = profile_spec(profile, 255.0)
    images = [colour_pair(rng, "uint8", (45, 52, channels))[:2] for _ in range(3)]
    win = len(spec.weights)
    sums = np.zeros((5, 45 - win + 1, 52 - win + 1))
    sums[4] = 7.0  # components after the fourth are left alone
    expected = np.zeros((4, 45 - win + 1, 52 - win + 1))
    for x, y in images:
        kernel = fused_packed_stats if channels == 1 else fused_colour_packed_stats
        args = (x[..., 0], y[..., 0]) if channels == 1 else (x, y)
        options = dict(
            weights=np.asarray(spec.weights),
            uniform=spec.window == "uniform",
            c1=spec.c1,
            c2=spec.c2,
            bins=BINS,
            cov_norm=spec.cov_norm,
            threads=threads,
        )
        with_sums = kernel(*args, **options, map_sums=sums)
        np.testing.assert_array_equal(with_sums, kernel(*args, **options))
        maps = spec.maps(x[None], y[None])
        for k, name in enumerate(("ssim", "luminance", "contrast", "structure")):
            expected[k] += maps[name][0].astype(np.float64)
    np.testing.assert_allclose(sums[:4], expected, rtol=0, atol=1e-12)
    assert (sums[4] == 7.0).all()


@pytest.mark.parametrize("kind", ["uint8", "uint16", "float32", "float64"])
@pytest.mark.parametrize(("images", "taps"), [(1, 11), (5, 7), (11, 11)])
def test_a_stack_in_one_serial_call_is_image_by_image_bit_for_bit(rng, kind, images, taps):
    # What a Dask task of several colour images runs with mean maps: groups of images
    # row by row (11 images: a group of 8 and one of 3), the same packed rows and map
    # sums, bit for bit, as one serial call per image; images flagged out of the sums
    # (a pair known to fail) are left out of them only.
    spec = profile_spec("wang2004", 255.0 if kind != "uint16" else 4095.0)
    weights = np.asarray(window_weights("gaussian", taps, 1.5))
    stack = [colour_pair(rng, kind, (31, 40, 3))[:2] for _ in range(images)]
    x, y = (np.stack([pair[k] for pair in stack]) for k in (0, 1))
    summed = np.arange(images) % 4 != 1
    options = dict(weights=weights, c1=spec.c1, c2=spec.c2, bins=BINS, cov_norm=spec.cov_norm)
    shape = (5, 31 - taps + 1, 40 - taps + 1)
    one_by_one, together = np.zeros(shape), np.zeros(shape)
    expected = [
        fused_colour_packed_stats(
            x[i], y[i], uniform=False, threads=1, map_sums=one_by_one if summed[i] else None,
            **options,
        )
        for i in range(images)
    ]  # fmt: skip
    got = fused_colour_packed_stats_stack(x, y, map_sums=together, summed=summed, **options)
    np.testing.assert_array_equal(got, np.stack(expected))
    np.testing.assert_array_equal(together, one_by_one)
    assert together[:4].any()


def test_a_stack_under_another_window_is_left_to_the_one_image_kernel(rng) -> None:
    x, y, _ = colour_pair(rng, "uint8", (30, 31, 3))
    even = np.full(8, 1 / 8)  # even windows take the five-moment path
    sums = np.zeros((5, 23, 24))
    stack = dict(c1=1.0, c2=1.0, bins=4)
    assert (
        fused_colour_packed_stats_stack(x[None], y[None], weights=even, map_sums=sums, **stack)
        is None
    )
    assert not sums.any()
    gaussian = np.asarray(window_weights("gaussian", 7, 1.5))
    sums = np.zeros((5, 24, 25))
    with pytest.raises(ValueError, match="summed must hold one flag per image"):
        fused_colour_packed_stats_stack(
            x[None], y[None], weights=gaussian, map_sums=sums, summed=[True, False], **stack
        )
    with pytest.raises(ValueError, match="the stacked colour kernel needs two"):
        fused_colour_packed_stats_stack(x, y, weights=gaussian, map_sums=sums, **stack)


def test_map_sums_of_the_wrong_shape_are_refused(rng) -> None:
    spec = profile_spec("wang2004", 255.0)
    x, y, _ = colour_pair(rng, "uint8", (30, 31, 3))
    options = dict(weights=np.asarray(spec.weights), uniform=False, c1=spec.c1, c2=spec.c2, bins=4)
    with pytest.raises(ValueError, match=r"map_sums must be a writable C-contiguous float64"):
        fused_colour_packed_stats(x, y, **options, map_sums=np.zeros((5, 19, 21)))
    with pytest.raises(ValueError, match=r"\(k >= 4, 20, 21\)"):
        fused_packed_stats(x[..., 0], y[..., 0], **options, map_sums=np.zeros((3, 20, 21)))
    with pytest.raises(TypeError, match="map_sums must be a numpy array"):
        fused_packed_stats(x[..., 0], y[..., 0], **options, map_sums=[[0.0]])


@pytest.mark.parametrize("kind", ["flat-255-vs-254", "float32-offset-1e4", "uint16-65535-edge"])
@pytest.mark.parametrize("profile", PROFILES)
def test_mean_within_1e8_of_exact(rng, kind, profile) -> None:
    # The channel mean of the exact per-channel means (kernel_cases.exact_ssim, an
    # extended-precision oracle): the kernel averages the channels' deficits 1 - ssim
    # in float64, so the float32 channel mean of the maps does not round it.
    pairs = [adversarial_pair(rng, kind, (60, 70)) for _ in range(3)]
    x = np.stack([pair[0] for pair in pairs], axis=-1)
    y = np.stack([pair[1] for pair in pairs], axis=-1)
    spec = profile_spec(profile, pairs[0][2])
    constants = {"weights": np.asarray(spec.weights), "c1": spec.c1, "c2": spec.c2}
    exact = np.mean(
        [exact_ssim(a, b, cov_norm=spec.cov_norm, **constants).mean() for a, b, _ in pairs]
    )
    packed = _packed(x, y, spec, 1)
    mean = packed[FIELDS.index("sum")] / packed[FIELDS.index("count")]
    assert abs(mean - exact) < 1e-8, f"off by {mean - exact:.1e}"


# Before var(x - y) was formed directly, v - 2 sigma_xy of five float32 moments cancelled:
# 1.0e-7 and 1.5e-7 off the exact oracle under wang2004 (the grey Gaussian maps path),
# -8.0e-8 and -4.6e-8 under the skimage profile (uniform 7x7, sample covariance; var(x - y)
# now from the exact int32 window sums).
@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("kind", NEAR_IDENTICAL)
def test_mean_of_near_identical_checkerboards_within_1e8_of_exact(kind, profile) -> None:
    # One channel the checkerboard, one its negative, one an equal pair (exactly 1).
    x0, y0, data_range = adversarial_pair(np.random.default_rng(0), kind, (50, 61))
    x = np.stack([x0, 255 - x0, x0], axis=-1)
    y = np.stack([y0, 255 - y0, x0], axis=-1)
    spec = profile_spec(profile, data_range)
    constants = {"weights": np.asarray(spec.weights), "c1": spec.c1, "c2": spec.c2}
    exact = np.mean(
        [
            exact_ssim(x[..., c], y[..., c], cov_norm=spec.cov_norm, **constants).mean()
            for c in range(3)
        ]
    )
    for threads in (1, 2):
        packed = _packed(x, y, spec, threads)
        mean = packed[FIELDS.index("sum")] / packed[FIELDS.index("count")]
        assert abs(mean - exact) < 1e-8, f"off by {mean - exact:.1e}"
