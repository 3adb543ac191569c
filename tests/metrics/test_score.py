"""pipeline.ssim against scikit-image on real photographs, plus SSIM's properties.

Reference: scikit-image 0.26 `skimage.metrics.structural_similarity`, an
independent implementation (scipy.ndimage filters over the whole image, then a
crop of the window radius). The `wang2004` profile must equal it called with
`gaussian_weights=True, sigma=1.5, use_sample_covariance=False`, and the
`skimage` profile must equal its defaults, both within 1e-6 (the README's profile table).
Volumes too: a 3-D input (grey or with a channel axis) takes an N-D window and equals
scikit-image's N-D `structural_similarity` within 1e-6; its chunked form,
``evaluate(..., volume=True)``, is tested in tests/engine/test_volumes.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from kernel_cases import exact_ssim, means_of_every_path
from skimage.metrics import structural_similarity

import pipeline
import pipeline.metrics.loss
import pipeline.metrics.multiscale
import pipeline.metrics.score
from pipeline import ssim
from pipeline.kernels.windows import window_weights
from pipeline.testing import DEGRADATIONS, degrade, photograph, smooth_volume_pair

TOLERANCE = 1e-6
# ssim() against the float64 reference engine.
SCORE_TOLERANCE = 1e-8


def full_tolerance(reference: float) -> float:
    """ssim(full=True)'s score against the float64 reference engine.

    The maps path rounds each deficit ``d = 1 - ssim`` to float32 (2^-24 relative):
    1e-8 near 1, more where SSIM is far from 1 (1.6e-8 for an inverted photograph,
    whose mean ``d`` is 1.45).
    """
    return SCORE_TOLERANCE + 2.0**-24 * abs(1.0 - reference)


SKIMAGE_ARGS = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


def skimage_ssim(x, y, profile, **kwargs):
    return structural_similarity(x, y, **SKIMAGE_ARGS[profile], **kwargs)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
@pytest.mark.parametrize("name", ["camera", "moon"])
def test_grey_uint8_photographs_match_skimage(name, kind, profile, rng):
    x = photograph(name)
    y = degrade(x, kind, rng=rng)
    expected = skimage_ssim(x, y, profile, data_range=255)
    assert ssim(x, y, profile=profile) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("kind", ["noise", "jpeg", "color_shift"])
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_colour_uint8_photographs_match_skimage(name, kind, profile, rng):
    x = photograph(name)
    y = degrade(x, kind, rng=rng)
    expected = skimage_ssim(x, y, profile, data_range=255, channel_axis=-1)
    assert ssim(x, y, profile=profile, channel_axis=-1) == pytest.approx(expected, abs=TOLERANCE)


def test_channel_axis_first_equals_channel_axis_last(rng):
    x = photograph("chelsea")
    y = degrade(x, "blur", rng=rng)
    last = ssim(x, y, channel_axis=-1)
    first = ssim(np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0), channel_axis=0)
    assert first == pytest.approx(last, abs=1e-12)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_uint16_matches_skimage(profile, rng):
    # 16-bit data near the top of the range, where float32 moments would cancel badly.
    x = (photograph("camera").astype(np.uint16) * 16 + 60000).astype(np.uint16)
    y = degrade(x, "noise", rng=rng, strength=3, data_range=65535)
    expected = skimage_ssim(x, y, profile, data_range=65535)
    assert ssim(x, y, profile=profile) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_float_matches_skimage(profile, dtype, rng):
    x = photograph("coins").astype(dtype) / 255
    y = degrade(x, "blur", rng=rng, data_range=1.0)
    # skimage computes float32 input in float32; give it float64 so that the
    # reference is the exact value, not skimage's own rounding.
    expected = skimage_ssim(x.astype(np.float64), y.astype(np.float64), profile, data_range=1.0)
    assert ssim(x, y, profile=profile, data_range=1.0) == pytest.approx(expected, abs=TOLERANCE)


def test_parameter_overrides_match_skimage(rng):
    x = photograph("camera")[:200, :300]
    y = degrade(x, "noise", rng=rng)
    # skimage's Gaussian has radius int(3.5 * sigma + 0.5): 7 for sigma 2, i.e. 15 taps.
    expected = structural_similarity(
        x, y, data_range=255, gaussian_weights=True, sigma=2.0, use_sample_covariance=False
    )
    assert ssim(x, y, sigma=2.0, win_size=15) == pytest.approx(expected, abs=TOLERANCE)
    expected = structural_similarity(x, y, data_range=255, win_size=11, K1=0.02, K2=0.05)
    got = ssim(x, y, profile="skimage", win_size=11, k1=0.02, k2=0.05)
    assert got == pytest.approx(expected, abs=TOLERANCE)
    expected = structural_similarity(x, y, data_range=255, use_sample_covariance=False)
    assert ssim(x, y, profile="skimage", covariance="population") == pytest.approx(
        expected, abs=TOLERANCE
    )


def test_full_maps_are_valid_region_and_match_skimage(rng):
    x = photograph("camera")[:100, :140]
    y = degrade(x, "jpeg", rng=rng)
    score, maps = ssim(x, y, full=True)
    assert set(maps) == {"ssim", "luminance", "contrast", "structure", "cs"}
    for m in maps.values():
        assert m.shape == (90, 130)
    _, skimage_map = skimage_ssim(x, y, "wang2004", data_range=255, full=True)
    np.testing.assert_allclose(maps["ssim"], skimage_map[5:-5, 5:-5], atol=TOLERANCE)
    # The score is the mean of the maps path's own deficits (float64 sums, from the same
    # pass); the call without full=True takes the score's own path (the sum/difference
    # basis). Both within 1e-8 of the float64 reference engine, so of each other; the mean
    # of the returned float32 map keeps its rounding.
    reference = ssim(x, y, engine="reference")
    assert abs(score - reference) < full_tolerance(reference)
    assert abs(ssim(x, y) - reference) < SCORE_TOLERANCE
    assert score == pytest.approx(float(maps["ssim"].mean(dtype=np.float64)), abs=3e-8)


def test_full_maps_keep_channel_axis(rng):
    x = photograph("coffee")[:60, :80]
    y = degrade(x, "noise", rng=rng)
    _, maps = ssim(np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0), channel_axis=0, full=True)
    assert maps["ssim"].shape == (3, 50, 70)


# float64 reference maps multiply exactly; the float32 fused maps to float32 rounding.
@pytest.mark.parametrize(("engine", "atol"), [("reference", 1e-12), ("auto", 1e-6)])
@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_components_multiply_to_ssim(profile, engine, atol, rng):
    x = photograph("brick")[:128, :128]
    y = degrade(x, "contrast", rng=rng, strength=40)
    _, maps = ssim(x, y, profile=profile, full=True, engine=engine)
    lum, con, struct = maps["luminance"], maps["contrast"], maps["structure"]
    np.testing.assert_allclose(lum * con * struct, maps["ssim"], atol=atol)
    np.testing.assert_allclose(lum * maps["cs"], maps["ssim"], atol=atol)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("fill", [0, 1, 128, 255])
def test_identity_is_one_even_for_constant_images(profile, fill, rng):
    constant = np.full((32, 40), fill, dtype=np.uint8)
    score, maps = ssim(constant, constant, profile=profile, full=True)
    assert score == 1.0
    for m in maps.values():
        assert np.all(np.isfinite(m))
    noise = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    assert ssim(noise, noise, profile=profile) == pytest.approx(1.0, abs=1e-12)


def test_symmetric_and_bounded(rng):
    x = photograph("camera")[:96, :96]
    for y in (degrade(x, "noise", rng=rng, strength=80), 255 - x, rng.permutation(x)):
        a, maps = ssim(x, y, full=True)
        # Both paths are exactly symmetric (x and y take the same instructions; the
        # score's sum/difference basis only negates x - y); each is within its bound of
        # the float64 reference engine.
        assert a == ssim(y, x, full=True)[0]
        assert ssim(x, y) == ssim(y, x)
        reference = ssim(x, y, engine="reference")
        assert abs(ssim(x, y) - reference) < SCORE_TOLERANCE
        assert abs(a - reference) < full_tolerance(reference)
        assert -1.0 <= a <= 1.0
        assert maps["ssim"].min() >= -1.0 and maps["ssim"].max() <= 1.0


def test_inverted_image_scores_negative():
    x = photograph("camera")
    assert ssim(x, 255 - x) < 0


def test_data_range_from_integer_dtypes(rng):
    x = rng.integers(0, 1000, (40, 40), dtype=np.uint16)
    y = rng.integers(0, 1000, (40, 40), dtype=np.uint16)
    assert ssim(x, y) == pytest.approx(ssim(x, y, data_range=65535), abs=1e-15)
    assert ssim(x, y) != pytest.approx(ssim(x, y, data_range=1000), abs=1e-3)
    signed = x.astype(np.int16)
    assert ssim(signed, y.astype(np.int16)) == pytest.approx(
        ssim(x, y, data_range=65535), abs=1e-12
    )


def test_uint8_equals_same_values_as_float_with_range_255(rng):
    x = photograph("coins")
    y = degrade(x, "noise", rng=rng)
    assert ssim(x.astype(np.float32), y.astype(np.float32), data_range=255) == pytest.approx(
        ssim(x, y), abs=1e-12
    )


@pytest.mark.parametrize(
    "module", [pipeline.metrics.score, pipeline.metrics.multiscale, pipeline.metrics.loss]
)
def test_docstring_examples_run(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_public_api_is_exported():
    assert callable(pipeline.ssim)
    assert {"wang2004", "skimage"} <= set(pipeline.PROFILES)


@pytest.mark.parametrize("shape", [(64, 64, 3), (3, 64, 64), (64, 64, 4)])
def test_colour_array_without_channel_axis_says_to_pass_it(shape):
    x = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match=r"for a colour image pass channel_axis=-1"):
        pipeline.ssim(x, x)


def test_a_thin_volume_that_is_not_colour_keeps_the_window_message():
    x = np.zeros((5, 64, 64), np.uint8)
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        pipeline.ssim(x, x)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("shape", [(16, 24, 20), (11, 40, 13)])
def test_volume_matches_skimage(profile: str, shape: tuple[int, ...]) -> None:
    x, y = smooth_volume_pair(np.random.default_rng(sum(shape)), shape)
    expected = structural_similarity(x, y, data_range=1.0, **SKIMAGE_ARGS[profile])
    got = pipeline.ssim(x, y, data_range=1.0, profile=profile)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_volume_uint8_matches_skimage(profile: str) -> None:
    x, y = smooth_volume_pair(np.random.default_rng(1), (14, 18, 22))
    x8, y8 = (x * 255).astype(np.uint8), (y * 255).astype(np.uint8)
    expected = structural_similarity(x8, y8, data_range=255, **SKIMAGE_ARGS[profile])
    assert pipeline.ssim(x8, y8, profile=profile) == pytest.approx(expected, abs=1e-6)


def test_colour_volume_matches_skimage_channel_axis() -> None:
    x, y = smooth_volume_pair(np.random.default_rng(2), (12, 16, 14, 3))
    expected = structural_similarity(
        x, y, data_range=1.0, channel_axis=-1, **SKIMAGE_ARGS["wang2004"]
    )
    assert pipeline.ssim(x, y, data_range=1.0, channel_axis=-1) == pytest.approx(expected, abs=1e-6)


def test_volume_maps_are_the_valid_region() -> None:
    x, y = smooth_volume_pair(np.random.default_rng(3), (13, 15, 17))
    score, maps = pipeline.ssim(x, y, data_range=1.0, full=True)
    assert maps["ssim"].shape == (3, 5, 7)
    assert score == pytest.approx(float(maps["ssim"].mean()), abs=1e-15)


def test_volume_too_thin_for_the_window() -> None:
    x = np.zeros((8, 30, 30))
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        pipeline.ssim(x, x, data_range=1.0)


def test_colour_score_is_the_mean_of_the_channel_scores(rng):
    x = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    y = np.clip(x + rng.integers(-30, 31, x.shape), 0, 255).astype(np.uint8)
    per_channel = [ssim(x[..., c], y[..., c], profile="skimage") for c in range(3)]
    assert all(type(score) is float for score in per_channel)
    assert ssim(x, y, profile="skimage", channel_axis=-1) == float(np.mean(per_channel))


@pytest.mark.parametrize("engine", ["auto", "reference"])
@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_full_score_and_score_agree_with_the_reference(profile, engine, rng):
    # The contract: ssim(full=True) returns the maps and the mean of its own pass's
    # deficits, ssim() the score of the score's path (the fused engine's sum/difference
    # basis for odd Gaussian windows of <= 11 taps: wang2004); not bit for bit the
    # same number, but each within its bound of the float64 reference engine's.
    x = rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)
    y = np.clip(x + rng.integers(-2, 3, x.shape), 0, 255).astype(np.uint8)
    for axis in (None, -1):
        a, b = (x[..., 0], y[..., 0]) if axis is None else (x, y)
        args = {"profile": profile, "channel_axis": axis}
        score, maps = ssim(a, b, full=True, engine=engine, **args)
        alone = ssim(a, b, engine=engine, **args)
        reference = ssim(a, b, engine="reference", **args)
        assert abs(score - reference) < full_tolerance(reference)
        assert abs(alone - reference) < SCORE_TOLERANCE
        if engine == "reference":  # float64 maps: the score is their mean, as before
            assert score == alone
            channel_means = [float(m.mean()) for m in np.moveaxis(maps["ssim"], -1, 0)]
            expected = float(maps["ssim"].mean()) if axis is None else float(np.mean(channel_means))
            assert score == expected


def test_full_score_of_a_flat_pair_is_exact():
    # Every float32 map pixel of 255 against 254 is 2.9e-8 off the same way; the score
    # comes from the kernel's float64 deficit sums instead. Reference value: the
    # np.longdouble oracle of tests/kernel_cases.py (explicit windows, eqs. 6-13).
    x, y = np.full((40, 44), 255, np.uint8), np.full((40, 44), 254, np.uint8)
    expected = float(
        exact_ssim(x, y, weights=window_weights("gaussian", 11, 1.5), c1=6.5025, c2=58.5225)
        .astype(np.longdouble)
        .mean()
    )
    score, maps = ssim(x, y, full=True)
    assert abs(score - expected) <= 1e-14
    assert abs(float(maps["ssim"].mean(dtype=np.float64)) - expected) > 1e-8  # the map's rounding


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("win_size", [7, 13])
@pytest.mark.parametrize(("high", "low"), [(255, 0), (200, 10), (None, 0)])
def test_means_of_pairs_near_ssim_0_are_exact(high, low, win_size, profile):
    # SSIM near 0 over flat regions: the deficit 1 - SSIM is near 1, where float32
    # rounds it by up to 3e-8 alike on every pixel (2.7e-8 of the mean before). Every
    # path keeps it in float64 for its sums: the score, the maps' own mean, evaluate's
    # packed statistics and, with regions, its stored maps. high None: an edge, 0 | 255.
    # Reference value: the np.longdouble oracle of tests/kernel_cases.py (eqs. 6-13).
    if high is None:
        x = np.zeros((40, 44), np.uint8)
        x[:, 22:] = 255
    else:
        x = np.full((40, 44), high, np.uint8)
    y = np.full((40, 44), low, np.uint8)
    expected, means = means_of_every_path(x, y, profile, win_size)
    assert max(abs(mean - expected) for mean in means) <= 2e-9, (means, expected)


@pytest.mark.parametrize(("high", "low"), [(50, 48), (20, 19)])
def test_score_of_near_identical_checkerboards(high, low):
    # 128 +- high against 128 +- low: v - 2 sigma_xy of the five float32 moments cancels
    # (1.0e-7 and 1.5e-7 off before the score took the sum/difference basis, whose
    # V- = var(x - y) does not, and before the maps path formed var(x - y) too).
    # Reference: the float64 reference engine, and the np.longdouble oracle of
    # tests/kernel_cases.py (explicit windows, eqs. 6-13).
    rows, cols = np.indices((64, 72))
    sign = np.where((rows + cols) % 2 == 0, 1, -1)
    x = (128 + high * sign).astype(np.uint8)
    y = (128 + low * sign).astype(np.uint8)
    reference = ssim(x, y, engine="reference")
    exact = float(
        exact_ssim(x, y, weights=window_weights("gaussian", 11, 1.5), c1=6.5025, c2=58.5225)
        .astype(np.longdouble)
        .mean()
    )
    assert abs(reference - exact) < 1e-12
    for engine in ("auto", "fused"):
        assert abs(ssim(x, y, engine=engine) - reference) < SCORE_TOLERANCE
    assert ssim(x, y) == ssim(y, x)
    assert ssim(x, x) == 1.0
    # The maps path (full=True) forms var(x - y) beside the five moments: within 1e-8
    # of the oracle (1.0e-7 and 1.5e-7 off before) and of the score alone (observed
    # <= 3e-10 apart; 1e-7 before), and exactly symmetric.
    score, maps = ssim(x, y, full=True)
    assert abs(score - exact) < 1e-8, f"full score off by {score - exact:.1e}"
    assert abs(score - ssim(x, y)) < 1e-8
    backward, maps_backward = ssim(y, x, full=True)
    assert backward == score
    np.testing.assert_array_equal(maps["ssim"], maps_backward["ssim"])
    same, same_maps = ssim(x, x, full=True)
    assert same == 1.0
    assert (same_maps["ssim"] == 1).all()


@pytest.mark.parametrize(("high", "low"), [(50, 48), (20, 19)])
def test_skimage_profile_score_of_near_identical_checkerboards(high, low):
    # The skimage profile (uniform 7x7, sample covariance) forms var(x - y) from its
    # exact int32 window sums: within 1e-8 of the np.longdouble oracle of
    # tests/kernel_cases.py (-8.0e-8 and -4.6e-8 off before, from v - 2 sigma_xy of five
    # float32 moments), the score alone and with maps, exactly symmetric and exactly 1
    # for equal images.
    rows, cols = np.indices((64, 72))
    sign = np.where((rows + cols) % 2 == 0, 1, -1)
    x = (128 + high * sign).astype(np.uint8)
    y = (128 + low * sign).astype(np.uint8)
    exact = float(
        exact_ssim(
            x, y, weights=window_weights("uniform", 7, 1.5), c1=6.5025, c2=58.5225, cov_norm=49 / 48
        ).mean()
    )
    score = ssim(x, y, profile="skimage")
    assert abs(score - exact) < 1e-8, f"score off by {score - exact:.1e}"
    full, _ = ssim(x, y, profile="skimage", full=True)
    assert abs(full - exact) < 1e-8, f"full score off by {full - exact:.1e}"
    assert ssim(y, x, profile="skimage") == score
    assert ssim(x, x, profile="skimage") == 1.0
