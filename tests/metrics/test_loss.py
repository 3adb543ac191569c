"""pipeline.ssim_loss (pipeline.metrics.loss): value, finite differences, scikit-image's gradient.

Also covers pipeline.kernels.gradient's ``ssim_value_and_grad``, reachable only
through ``ssim_loss``; the PyTorch wrapper is tested in tests/nn/test_torch_loss.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import pipeline as sp

SKIMAGE_KWARGS = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


def _pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape)
    y = np.clip(x + rng.normal(0, 0.15, shape), 0, 1)
    return x, y


def _check_finite_differences(
    x: np.ndarray, y: np.ndarray, seed: int, n_pixels: int = 12, **options: Any
) -> None:
    _, grad = sp.ssim_loss(x, y, data_range=1.0, **options)
    rng = np.random.default_rng(seed)
    corners = [tuple(0 for _ in y.shape), tuple(n - 1 for n in y.shape)]
    random = [tuple(int(rng.integers(0, n)) for n in y.shape) for _ in range(n_pixels)]
    scale = np.abs(grad).max()
    h = 1e-5
    for index in corners + random:
        up, down = y.copy(), y.copy()
        up[index] += h
        down[index] -= h
        loss_up = sp.ssim_loss(x, up, data_range=1.0, return_grad=False, **options)
        loss_down = sp.ssim_loss(x, down, data_range=1.0, return_grad=False, **options)
        numeric = (loss_up - loss_down) / (2 * h)
        # Central differences: O(h^2) truncation, O(eps / h) rounding, both << 1e-7 * scale.
        assert abs(numeric - grad[index]) <= 1e-7 * scale, index
        if abs(grad[index]) > 1e-2 * scale:
            assert abs(numeric - grad[index]) <= 1e-6 * abs(grad[index]), index


def test_value_is_one_minus_ssim() -> None:
    x, y = _pair((40, 43), 0)
    for profile in ("wang2004", "skimage"):
        loss, _ = sp.ssim_loss(x, y, data_range=1.0, profile=profile)
        # The loss is float64; compare with the float64 reference engine exactly and with
        # the default (float32 fused) engine to its documented 1e-5.
        exact = sp.ssim(x, y, data_range=1.0, profile=profile, engine="reference")
        assert loss == pytest.approx(1 - exact, abs=1e-15)
        assert loss == pytest.approx(1 - sp.ssim(x, y, data_range=1.0, profile=profile), abs=1e-5)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_gradient_matches_finite_differences_2d(profile: str) -> None:
    x, y = _pair((30, 34), 1)
    _check_finite_differences(x, y, seed=2, profile=profile)


def test_gradient_matches_finite_differences_colour_and_volume() -> None:
    x, y = _pair((24, 3, 26), 3)
    _check_finite_differences(x, y, seed=4, channel_axis=1)
    x, y = _pair((13, 14, 15), 5)
    _check_finite_differences(x, y, seed=6, win_size=7, n_pixels=6)


def test_gradient_shape_dtype_and_zero_at_optimum() -> None:
    x, y = _pair((32, 32), 7)
    loss, grad = sp.ssim_loss(x.astype(np.float32), y.astype(np.float32), data_range=1.0)
    assert grad.shape == y.shape
    assert grad.dtype == np.float64
    loss, grad = sp.ssim_loss(x, x, data_range=1.0)
    assert loss == 0.0
    assert np.abs(grad).max() < 1e-12


def test_gradient_step_decreases_loss() -> None:
    x, y = _pair((48, 48), 8)
    loss, grad = sp.ssim_loss(x, y, data_range=1.0)
    stepped = sp.ssim_loss(x, y - 1.0 * grad, data_range=1.0, return_grad=False)
    assert stepped < loss
    # Brightening y where the gradient is positive makes it worse: the sign is d loss / d y.
    worse = sp.ssim_loss(x, y + 1.0 * grad, data_range=1.0, return_grad=False)
    assert worse > loss


@pytest.mark.parametrize(
    ("profile", "overrides", "skimage_kwargs", "radius"),
    [
        ("wang2004", {}, SKIMAGE_KWARGS["wang2004"], 5),
        ("skimage", {"covariance": "population"}, {"use_sample_covariance": False}, 3),
    ],
)
def test_interior_gradient_equals_skimage_times_n_over_m(
    profile: str, overrides: dict[str, Any], skimage_kwargs: dict[str, Any], radius: int
) -> None:
    x, y = _pair((50, 47), 10)
    loss, grad = sp.ssim_loss(x, y, data_range=1.0, profile=profile, **overrides)
    mssim, sk_grad = structural_similarity(x, y, data_range=1.0, gradient=True, **skimage_kwargs)
    assert 1 - loss == pytest.approx(mssim, abs=1e-12)
    n_full = x.size
    n_valid = (50 - 2 * radius) * (47 - 2 * radius)
    interior = (slice(2 * radius, -2 * radius),) * 2
    ours = -grad  # d SSIM / d y
    expected = sk_grad * n_full / n_valid
    assert np.abs(ours[interior] - expected[interior]).max() < 1e-12 * np.abs(ours).max()
    # Near the borders skimage's reflect-mode sum over all pixels is another quantity.
    assert np.abs(ours - expected).max() > 1e-2 * np.abs(ours).max()


def test_skimage_sample_covariance_gradient_omits_n_over_n_minus_1() -> None:
    # Documented: skimage's gradient formula has no N/(N-1) on the variance terms,
    # so with its default sample covariance the interiors differ by about 2%.
    x, y = _pair((40, 40), 11)
    _, grad = sp.ssim_loss(x, y, data_range=1.0, profile="skimage")
    _, sk_grad = structural_similarity(x, y, data_range=1.0, gradient=True)
    interior = (slice(6, -6),) * 2
    expected = sk_grad * x.size / (34 * 34)
    relative = np.abs(-grad[interior] - expected[interior]).max() / np.abs(grad).max()
    assert 1e-3 < relative < 0.1


def test_errors() -> None:
    x, y = _pair((20, 20), 12)
    with pytest.raises(ValueError, match="ssim_loss does not support profile 'wang2009'"):
        sp.ssim_loss(x, y, data_range=1.0, profile="wang2009")
    with pytest.raises(TypeError, match=r"return_grad must be True or False \(got 1\)"):
        sp.ssim_loss(x, y, data_range=1.0, return_grad=1)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="data_range is required"):
        sp.ssim_loss(x, y)
    with pytest.raises(ValueError, match="win_size 11 is larger than the smallest image side"):
        sp.ssim_loss(x[:10], y[:10], data_range=1.0)
    with pytest.raises(ValueError, match="must have the same shape"):
        sp.ssim_loss(x, y[:19], data_range=1.0)
    with pytest.raises(ValueError, match="unknown profile"):
        sp.ssim_loss(x, y, data_range=1.0, profile="nope")


@pytest.mark.gpu
def test_cupy_matches_numpy() -> None:
    cupy = pytest.importorskip("cupy")
    x, y = _pair((3, 40, 44), 15)
    loss, grad = sp.ssim_loss(x, y, data_range=1.0, channel_axis=0)
    loss_gpu, grad_gpu = sp.ssim_loss(
        cupy.asarray(x), cupy.asarray(y), data_range=1.0, channel_axis=0
    )
    assert isinstance(grad_gpu, cupy.ndarray)
    assert loss_gpu == pytest.approx(loss, abs=1e-12)
    np.testing.assert_allclose(cupy.asnumpy(grad_gpu), grad, rtol=0, atol=1e-12)
