"""The fused loss kernels (pipeline.kernels.cpu.loss) against the float64 NumPy gradient.

Reference: :func:`pipeline.kernels.gradient.ssim_value_and_grad` (float64, itself
checked against finite differences and scikit-image in tests/kernels/test_gradient.py)
for SSIM, and central finite differences of the kernel's own float64 value for the
mean cs, which the NumPy path does not compute.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.cpu.loss import ssim_backward, ssim_forward
from pipeline.kernels.gradient import ssim_value_and_grad
from pipeline.kernels.reference import ssim_maps
from pipeline.metrics.profiles import SSIMParams

WANG = SSIMParams()
SKIMAGE = SSIMParams(window="uniform", win_size=7, covariance="sample")


def _pair(shape: tuple[int, ...], seed: int, noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape)
    y = np.clip(x + rng.normal(0, noise, shape), 0, 1)
    return x, y


def _args(params: SSIMParams, data_range: float, ndim: int = 2) -> dict:
    c1, c2 = params.constants(data_range)
    return {"weights": params.weights(), "c1": c1, "c2": c2, "cov_norm": params.cov_norm(ndim)}


def _reference(x: np.ndarray, y: np.ndarray, params: SSIMParams, data_range: float, ndim: int = 2):
    """Per-plane float64 value and gradient from the NumPy path."""
    parts = [
        ssim_value_and_grad(
            x[p].astype(np.float64), y[p].astype(np.float64), **_args(params, data_range, ndim)
        )
        for p in range(x.shape[0])
    ]
    return np.array([v for v, _ in parts]), np.stack([g for _, g in parts])


@pytest.mark.parametrize("params", [WANG, SKIMAGE, SSIMParams(win_size=5, sigma=0.8, k2=0.1)])
def test_forward_and_backward_equal_the_numpy_gradient(params):
    x, y = _pair((3, 37, 29), 1)
    args = _args(params, 1.0)
    values, saved = ssim_forward(x, y, **args)
    scale = np.array([1.0, -2.0, 0.5])
    grad = ssim_backward(x, y, saved, scale, weights=args["weights"])
    expected_values, expected_grad = _reference(x, y, params, 1.0)
    np.testing.assert_allclose(values, expected_values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(grad, scale[:, None, None] * expected_grad, rtol=0, atol=1e-16)
    assert grad.dtype == np.float64


def test_mean_cs_and_its_gradient():
    x, y = _pair((2, 24, 26), 2)
    args = _args(WANG, 1.0)
    values, saved = ssim_forward(x, y, **args, cs_only=True)
    for p in range(2):
        expected = ssim_maps(x[p], y[p], **args, components=False)["cs"].mean()
        assert values[p] == pytest.approx(expected, abs=1e-14)
    grad = ssim_backward(x, y, saved, np.ones(2), weights=args["weights"])
    # Central differences of the float64 kernel value at a few pixels (edge, corner, inside).
    for p, i, j in [(0, 0, 0), (0, 5, 7), (1, 23, 12), (1, 11, 25)]:
        step = np.zeros_like(y)
        step[p, i, j] = 1e-4
        up = ssim_forward(x, y + step, **args, cs_only=True)[0][p]
        down = ssim_forward(x, y - step, **args, cs_only=True)[0][p]
        assert grad[p, i, j] == pytest.approx((up - down) / 2e-4, rel=1e-5, abs=1e-11)


def test_volumes_take_the_numpy_path_with_the_same_results():
    x, y = _pair((2, 9, 12, 11), 3)
    params = SSIMParams(win_size=5)
    args = _args(params, 1.0, ndim=3)
    values, saved = ssim_forward(x, y, **args)
    grad = ssim_backward(x, y, saved, np.array([2.0, 1.0]), weights=args["weights"])
    expected_values, expected_grad = _reference(x, y, params, 1.0, ndim=3)
    np.testing.assert_allclose(values, expected_values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        grad, np.array([2.0, 1.0])[:, None, None, None] * expected_grad, rtol=0, atol=1e-16
    )


def _adversarial(kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Cases where float32 moments lose digits: (x, y, data_range)."""
    rng = np.random.default_rng(4)
    shape = (3, 48, 52)
    if kind == "flat-beside-edge":
        x = np.zeros(shape)
        x[:, :, 26:] = 255.0
        y = x + rng.normal(0, 2.0, shape) * (np.arange(shape[2]) > 20)
        return x, np.clip(y, 0, 255), 255.0
    if kind == "near-top-of-range":
        x = 65535.0 - rng.uniform(0, 3000, shape)
        y = np.clip(x + rng.normal(0, 300, shape), 0, 65535)
        return np.round(x), np.round(y), 65535.0
    # float data far from zero, range 1
    x = 1000.0 + rng.uniform(0, 1, shape)
    y = x + rng.normal(0, 0.1, shape)
    return x, y, 1.0


@pytest.mark.parametrize("kind", ["flat-beside-edge", "near-top-of-range", "far-from-zero"])
@pytest.mark.parametrize("cs_only", [False, True])
def test_float32_input_matches_the_float64_reference(kind, cs_only):
    x, y, data_range = _adversarial(kind)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    args = _args(WANG, data_range)
    values, saved = ssim_forward(x32, y32, **args, cs_only=cs_only)
    grad = ssim_backward(x32, y32, saved, np.ones(3), weights=args["weights"])
    assert grad.dtype == np.float32
    # The reference sees the same (float32-rounded) pixels, in float64.
    x64, y64 = x32.astype(np.float64), y32.astype(np.float64)
    expected_values, saved64 = ssim_forward(x64, y64, **args, cs_only=cs_only)
    expected_grad = ssim_backward(x64, y64, saved64, np.ones(3), weights=args["weights"])
    if not cs_only:
        np.testing.assert_allclose(expected_values, _reference(x64, y64, WANG, data_range)[0])
    np.testing.assert_allclose(values, expected_values, rtol=1e-5, atol=0)
    scale = np.abs(expected_grad).max(axis=(1, 2), keepdims=True)
    assert np.abs(grad - expected_grad).max() <= 1e-5 * scale.min()


def test_planes_are_read_in_place_and_errors_name_the_problem():
    x, y = _pair((1, 20, 20), 5)
    args = _args(WANG, 1.0)
    with pytest.raises(ValueError, match="one shape and dtype"):
        ssim_forward(x, y[:, :19], **args)
    with pytest.raises(TypeError, match="float32 or float64"):
        ssim_forward(x.astype(np.float16), y.astype(np.float16), **args)
    with pytest.raises(ValueError, match=r"window \(11 taps\) is larger"):
        ssim_forward(x[:, :10], y[:, :10], **args)
    with pytest.raises(ValueError, match=r"\(planes, H, W\)"):
        ssim_forward(x[0], y[0], **args)
    _, saved = ssim_forward(x, y, **args)
    with pytest.raises(ValueError, match="one value per plane"):
        ssim_backward(x, y, saved, np.ones(2), weights=args["weights"])


def test_identical_planes_score_one_with_zero_gradient():
    x, _ = _pair((2, 30, 30), 6)
    args = _args(WANG, 1.0)
    values, saved = ssim_forward(x, x, **args)
    np.testing.assert_allclose(values, 1.0, rtol=0, atol=1e-14)
    grad = ssim_backward(x, x, saved, np.ones(2), weights=args["weights"])
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)


def test_small_work_runs_on_fewer_threads_and_restores_the_count():
    import numba

    before = numba.get_num_threads()
    x, y = _pair((1, 16, 16), 7)
    args = _args(WANG, 1.0)
    values, saved = ssim_forward(x, y, **args)
    ssim_backward(x, y, saved, np.ones(1), weights=args["weights"])
    assert numba.get_num_threads() == before
    assert values[0] == pytest.approx(_reference(x, y, WANG, 1.0)[0][0], abs=1e-14)
