"""The call path of pipeline.ssim: what it resolves once per set of arguments, and reuses.

``pipeline.ssim`` keeps the profile, parameters, data range and constants it resolved
from a call's arguments in a small bounded cache (pipeline.metrics.score). These tests
check that no call receives another call's parameters through it, that refused
arguments are refused every time, and that the cache stays bounded.

Reference: scikit-image 0.26 ``skimage.metrics.structural_similarity``, an independent
implementation; the ``skimage`` profile equals its defaults and ``wang2004`` equals it
with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, within 1e-6
(the README's profile table). Colour: its ``channel_axis`` (the mean of per-channel
SSIM). The channels' mean against ``numpy.mean`` of the same scores, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pipeline import ssim
from pipeline.metrics import score

TOLERANCE = 1e-6
WANG2004 = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def pair(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.uint8):
    """A smooth-ish image and a noisy copy, in ``dtype`` (uint8 values in either)."""
    x = rng.integers(0, 256, shape).astype(np.float64)
    x = (x + np.roll(x, 1, axis=0) + np.roll(x, 1, axis=1)) / 3
    y = np.clip(x + rng.normal(0, 12, shape), 0, 255)
    return x.astype(dtype), y.astype(dtype)


def test_each_call_gets_its_own_parameters_whatever_came_before(rng) -> None:
    x, y = pair(rng, (64, 64))
    calls = [
        ({}, {**WANG2004, "data_range": 255}),
        ({"profile": "skimage"}, {"data_range": 255}),
        ({"k1": 0.05}, {**WANG2004, "data_range": 255, "K1": 0.05}),
        ({"k2": 0.1, "profile": "skimage"}, {"data_range": 255, "K2": 0.1}),
        ({"data_range": 100.0}, {**WANG2004, "data_range": 100.0}),
        ({"data_range": 100}, {**WANG2004, "data_range": 100.0}),
        ({"profile": "skimage", "win_size": 5}, {"data_range": 255, "win_size": 5}),
        ({"profile": "skimage", "win_size": 9}, {"data_range": 255, "win_size": 9}),
        # scikit-image's Gaussian is 2 * int(3.5 sigma + 0.5) + 1 wide: 15 for sigma 2.
        ({"sigma": 2.0, "win_size": 15}, {**WANG2004, "sigma": 2.0, "data_range": 255}),
        ({"profile": "skimage", "covariance": "population"},
         {"data_range": 255, "use_sample_covariance": False}),
    ]  # fmt: skip
    # Twice over, the second time in reverse order: each call after every other one.
    for ours, theirs in [*calls, *calls[::-1]]:
        expected = structural_similarity(x, y, **theirs)
        assert ssim(x, y, **ours) == pytest.approx(expected, abs=TOLERANCE), ours


def test_the_dtype_is_part_of_what_is_resolved(rng) -> None:
    # The same values as uint8 (L = 255) and as uint16 (L = 65535): different scores.
    x, y = pair(rng, (48, 40))
    x16, y16 = x.astype(np.uint16), y.astype(np.uint16)
    for a, b, data_range in [(x, y, 255), (x16, y16, 65535), (x, y, 255), (x16, y16, 65535)]:
        expected = structural_similarity(a, b, **WANG2004, data_range=data_range)
        assert ssim(a, b) == pytest.approx(expected, abs=TOLERANCE)
    assert ssim(x, y) != pytest.approx(ssim(x16, y16), abs=1e-3)


def test_float_images_need_a_data_range_even_after_integer_ones(rng) -> None:
    x, y = pair(rng, (32, 32))
    ssim(x, y)
    with pytest.raises(ValueError, match="data_range is required"):
        ssim(x.astype(np.float32), y.astype(np.float32))


@pytest.mark.parametrize(
    ("good", "bad", "error", "message"),
    [
        ({"k1": 1}, {"k1": True}, TypeError, "k1 must be a number"),
        ({"win_size": 7}, {"win_size": 7.0}, TypeError, "win_size must be an integer"),
        ({"data_range": 1}, {"data_range": True}, TypeError, "data_range must be a number"),
        ({"sigma": 1.5}, {"sigma": [1.5]}, TypeError, "sigma must be a number"),
        ({"data_range": 255.0}, {"data_range": np.array(255.0)}, TypeError, "data_range must"),
        ({}, {"profile": "wang2005"}, ValueError, "unknown profile 'wang2005'"),
        ({}, {"window": ["gaussian"]}, ValueError, "window must be one of"),
        ({"k2": 0.03}, {"k2": float("nan")}, ValueError, "k2 must be a positive finite"),
        ({}, {"data_range": 1e300}, ValueError, "data_range 1e\\+300 with k1"),
    ],
)
def test_a_refused_argument_is_refused_after_an_accepted_one_equal_to_it(
    rng, good, bad, error, message
) -> None:
    # 1 == True == 1.0 and hash alike: the cache keys each argument with its type, and
    # never keeps a call that raised, so the refusal names the parameter every time.
    x, y = pair(rng, (32, 32))
    ssim(x, y, **good)
    for _ in range(2):
        with pytest.raises(error, match=message):
            ssim(x, y, **bad)


def test_the_cache_of_resolved_arguments_is_bounded(rng) -> None:
    x, y = pair(rng, (16, 16))
    bound = score._cached_plan.cache_info().maxsize
    assert bound is not None
    found = [ssim(x, y, data_range=200.0 + k) for k in range(bound + 40)]
    assert score._cached_plan.cache_info().currsize <= bound
    # The first data range, pushed out of the cache meanwhile, is resolved again alike.
    assert ssim(x, y, data_range=200.0) == found[0]
    expected = structural_similarity(x, y, **WANG2004, data_range=200.0)
    assert found[0] == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_colour_channels_on_any_axis_match_skimage(rng, axis, profile) -> None:
    x, y = pair(rng, (40, 36, 3))
    x, y = np.moveaxis(x, -1, axis), np.moveaxis(y, -1, axis)
    theirs = WANG2004 if profile == "wang2004" else {}
    expected = structural_similarity(x, y, **theirs, data_range=255, channel_axis=axis)
    assert ssim(x, y, profile=profile, channel_axis=axis) == pytest.approx(expected, abs=TOLERANCE)
    # Each channel's maps are that channel's own, in place along the channel axis.
    found, maps = ssim(x, y, profile=profile, channel_axis=axis, full=True)
    for c in range(3):
        _, alone_maps = ssim(
            np.take(x, c, axis=axis), np.take(y, c, axis=axis), profile=profile, full=True
        )
        assert np.array_equal(np.take(maps["ssim"], c, axis=axis), alone_maps["ssim"])
    assert found == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9])
def test_the_mean_of_the_channels_is_numpy_means_number(rng, n) -> None:
    for _ in range(200):
        scores = [float(v) for v in rng.uniform(-1, 1, n) * 10.0 ** rng.integers(-9, 1, n)]
        assert score._mean_score(scores) == float(np.mean(scores))
    assert score._mean_score([0.25]) == 0.25
