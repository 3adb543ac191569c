"""Profiles and parameter resolution."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.metrics.profiles import PROFILES, SSIMParams, get_profile, resolve_params


def test_wang2004_is_the_paper_setting():
    # Wang et al. 2004, sec. III-C: 11x11 circular-symmetric Gaussian, sigma 1.5, K1 0.01, K2 0.03.
    p = get_profile("wang2004").params
    assert (p.window, p.win_size, p.sigma, p.k1, p.k2, p.covariance) == (
        "gaussian",
        11,
        1.5,
        0.01,
        0.03,
        "population",
    )


def test_skimage_profile_is_skimage_defaults():
    p = get_profile("skimage").params
    assert (p.window, p.win_size, p.covariance) == ("uniform", 7, "sample")


def test_every_profile_names_reference_and_tolerance():
    for profile in PROFILES.values():
        assert profile.reference and 0 < profile.tolerance <= 1e-5


def test_overrides_apply_and_none_keeps_default():
    _, p = resolve_params("skimage", win_size=9, k1=None)
    assert p.win_size == 9 and p.k1 == 0.01 and p.window == "uniform"


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SSIMParams().win_size = 3  # type: ignore[misc]


def test_constants_and_covariance_norm():
    p = SSIMParams()
    assert p.constants(255) == pytest.approx(((0.01 * 255) ** 2, (0.03 * 255) ** 2))
    assert p.cov_norm(2) == 1.0
    assert SSIMParams(covariance="sample", win_size=7).cov_norm(2) == pytest.approx(49 / 48)
    assert SSIMParams(covariance="sample", win_size=7).cov_norm(3) == pytest.approx(343 / 342)
    assert p.radius == 5


def test_numpy_scalars_are_accepted_and_normalised():
    import numpy as np

    p = SSIMParams(win_size=np.int64(7), sigma=np.float32(1.5))
    assert type(p.win_size) is int and type(p.sigma) is float


def test_kernel_args_share_one_read_only_window_and_weights_stay_private():
    import numpy as np

    from pipeline.kernels.windows import window_weights

    p = SSIMParams(window="uniform", win_size=7)
    first, second = p.kernel_args(255.0, 2), p.kernel_args(1.0, 2)
    assert first["weights"] is second["weights"]  # made once, shared by every call
    np.testing.assert_array_equal(first["weights"], window_weights("uniform", 7, 1.5))
    with pytest.raises(ValueError, match="read-only"):
        first["weights"][0] = 1.0
    # weights() is the caller's own array (torch.from_numpy needs it writable).
    own = p.weights()
    assert own.flags.writeable and own is not p.weights()
    assert first["c1"] == pytest.approx((0.01 * 255) ** 2) and second["c1"] == pytest.approx(1e-4)


def test_unknown_parameter_is_named_before_an_unknown_profile():
    with pytest.raises(TypeError, match=r"unknown SSIM parameter\(s\) K1"):
        resolve_params("wang2005", K1=0.01)
    with pytest.raises(ValueError, match=r"unknown profile 'wang2005'"):
        resolve_params("wang2005")
    assert resolve_params("skimage") == (PROFILES["skimage"], PROFILES["skimage"].params)
