"""pipeline.nn.ssim and pipeline.nn.ms_ssim against pipeline.ssim / ms_ssim and pytorch-msssim.

References: :func:`pipeline.ssim` and :func:`pipeline.ms_ssim` with
``engine="reference"`` (the float64 NumPy oracle, itself pinned to scikit-image),
pytorch-msssim 1.x given our float64 window (its separable 'valid' convolution is
the wang2004 'valid' mean), torch autograd through pytorch-msssim for gradients,
and ``torch.autograd.gradcheck`` (finite differences) in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline as sp

torch = pytest.importorskip("torch")
pytorch_msssim = pytest.importorskip("pytorch_msssim")

from pipeline.metrics.profiles import SSIMParams  # noqa: E402
from pipeline.nn import ms_ssim, ssim  # noqa: E402
from pipeline.nn._fused import _planes  # noqa: E402

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _batch(shape: tuple[int, ...], seed: int, noise: float = 0.2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape)
    y = np.clip(x + rng.normal(0, noise, shape), 0, 1)
    return x, y


def _window(channels: int, ndim: int = 2):
    """Our float64 Gaussian window in pytorch-msssim's layout (C, 1, [1,] 1, size)."""
    taps = torch.from_numpy(SSIMParams().weights())
    return taps.reshape(1, 1, *([1] * (ndim - 1)), -1).repeat(channels, 1, *([1] * ndim))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"profile": "skimage"},
        {"win_size": 7, "sigma": 1.0, "k1": 0.02, "k2": 0.05},
        {"window": "uniform", "win_size": 5, "covariance": "sample"},
    ],
)
def test_ssim_equals_pipeline_ssim_per_image(params):
    x, y = _batch((3, 2, 33, 40), 1)
    values = ssim(
        torch.from_numpy(y), torch.from_numpy(x), data_range=1.0, reduction="none", **params
    )
    expected = [
        sp.ssim(x[i], y[i], data_range=1.0, channel_axis=0, engine="reference", **params)
        for i in range(3)
    ]
    assert values.dtype == torch.float64
    np.testing.assert_allclose(values.numpy(), expected, rtol=0, atol=1e-12)
    mean = ssim(torch.from_numpy(y), torch.from_numpy(x), data_range=1.0, **params)
    total = ssim(
        torch.from_numpy(y), torch.from_numpy(x), data_range=1.0, reduction="sum", **params
    )
    assert mean.ndim == 0 and mean.item() == pytest.approx(np.mean(expected), abs=1e-12)
    assert total.item() == pytest.approx(np.sum(expected), abs=1e-12)


def test_ssim_of_volumes_equals_pipeline_ssim():
    x, y = _batch((2, 2, 13, 14, 15), 2)
    values = ssim(
        torch.from_numpy(y), torch.from_numpy(x), data_range=1.0, win_size=7, reduction="none"
    )
    expected = [
        sp.ssim(x[i], y[i], data_range=1.0, channel_axis=0, win_size=7, engine="reference")
        for i in range(2)
    ]
    np.testing.assert_allclose(values.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 40, 47), (1, 2, 12, 13, 14)])
def test_ssim_values_and_gradients_equal_pytorch_msssim(shape):
    x, y = _batch(shape, 3)
    target = torch.from_numpy(x)
    ours_in = torch.from_numpy(y).requires_grad_()
    theirs_in = torch.from_numpy(y).requires_grad_()
    ours = ssim(ours_in, target, data_range=1.0, reduction="none")
    theirs = pytorch_msssim.ssim(
        theirs_in, target, data_range=1.0, win=_window(shape[1], len(shape) - 2), size_average=False
    )
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=0, atol=1e-12)
    weights = torch.tensor([1.0, -3.0][: shape[0]], dtype=torch.float64)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    scale = theirs_in.grad.abs().max()
    assert (ours_in.grad - theirs_in.grad).abs().max() <= 1e-9 * scale


def test_ssim_gradcheck():
    x, y = _batch((2, 2, 15, 17), 4)
    target = torch.from_numpy(x)
    output = torch.from_numpy(y).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a: ssim(a, target, data_range=1.0, win_size=7, reduction="none"), (output,)
    )
    x, y = _batch((1, 1, 7, 8, 9), 5)
    assert torch.autograd.gradcheck(
        lambda a: ssim(a, torch.from_numpy(x), data_range=1.0, win_size=5, profile="skimage"),
        (torch.from_numpy(y).requires_grad_(),),
    )


@pytest.mark.parametrize("shape", [(2, 3, 161, 170), (1, 2, 175, 199)])
def test_ms_ssim_equals_pipeline_ms_ssim_on_odd_sides(shape):
    x, y = _batch(shape, 6)
    values = ms_ssim(torch.from_numpy(y), torch.from_numpy(x), data_range=1.0, reduction="none")
    expected = [
        sp.ms_ssim(x[i], y[i], data_range=1.0, channel_axis=0, engine="reference")
        for i in range(shape[0])
    ]
    np.testing.assert_allclose(values.numpy(), expected, rtol=0, atol=1e-12)


def test_ms_ssim_values_and_gradients_equal_pytorch_msssim():
    # Sides divisible by 16: every scale is even, where pytorch-msssim's pooling is ours.
    x, y = _batch((2, 3, 176, 192), 7)
    target = torch.from_numpy(x)
    ours_in = torch.from_numpy(y).requires_grad_()
    theirs_in = torch.from_numpy(y).requires_grad_()
    ours = ms_ssim(ours_in, target, data_range=1.0, reduction="none")
    theirs = pytorch_msssim.ms_ssim(
        theirs_in, target, data_range=1.0, win=_window(3), weights=list(WEIGHTS), size_average=False
    )
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=0, atol=1e-12)
    ours.sum().backward()
    theirs.sum().backward()
    assert (ours_in.grad - theirs_in.grad).abs().max() <= 1e-9 * theirs_in.grad.abs().max()


def test_ms_ssim_gradcheck_with_odd_sides():
    x, y = _batch((2, 1, 13, 11), 8, noise=0.05)
    target = torch.from_numpy(x)
    assert torch.autograd.gradcheck(
        lambda a: ms_ssim(
            a, target, data_range=1.0, weights=(0.3, 0.7), win_size=3, reduction="none"
        ),
        (torch.from_numpy(y).requires_grad_(),),
    )


def test_ms_ssim_clamps_negative_cs_to_zero_without_nan():
    # y anti-correlated with x: every scale's mean cs is negative.
    x, _ = _batch((1, 1, 32, 32), 9)
    y = 1.0 - x
    output = torch.from_numpy(y).requires_grad_()
    value = ms_ssim(output, torch.from_numpy(x), data_range=1.0, weights=(0.5, 0.5), win_size=7)
    expected = sp.ms_ssim(x[0, 0], y[0, 0], data_range=1.0, weights=(0.5, 0.5), win_size=7)
    assert value.item() == expected == 0.0
    value.backward()
    assert torch.isfinite(output.grad).all()


@pytest.mark.parametrize("kind", ["flat-beside-edge", "near-top-of-range", "far-from-zero"])
def test_float32_values_and_gradients_within_1e5_of_float64(kind):
    rng = np.random.default_rng(10)
    shape = (2, 3, 176, 176)
    if kind == "flat-beside-edge":
        x = np.zeros(shape)
        x[..., 88:] = 255.0
        y, data_range = (
            np.clip(x + rng.normal(0, 2.0, shape) * (np.arange(176) > 80), 0, 255),
            255.0,
        )
    elif kind == "near-top-of-range":
        x = np.round(65535.0 - rng.uniform(0, 3000, shape))
        y, data_range = np.round(np.clip(x + rng.normal(0, 300, shape), 0, 65535)), 65535.0
    else:
        x = 1000.0 + rng.uniform(0, 1, shape)
        y, data_range = x + rng.normal(0, 0.1, shape), 1.0
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for function in (ssim, ms_ssim):
        results = {}
        for dtype in (torch.float32, torch.float64):
            output = torch.from_numpy(y32).to(dtype).requires_grad_()
            value = function(output, torch.from_numpy(x32).to(dtype), data_range=data_range)
            value.backward()
            results[dtype] = (value.item(), output.grad.double())
        (v32, g32), (v64, g64) = results[torch.float32], results[torch.float64]
        assert v32 == pytest.approx(v64, rel=1e-5)
        assert (g32 - g64).abs().max() <= 1e-5 * g64.abs().max()


def test_contiguous_tensors_are_read_in_place():
    images = torch.rand(2, 3, 20, 21)
    planes = _planes(images, 2)
    assert planes.shape == (6, 20, 21)
    assert np.shares_memory(planes, images.numpy())


def test_a_view_and_a_copy_give_the_same_values():
    x, y = _batch((2, 3, 30, 32), 11)
    target = torch.from_numpy(x).transpose(2, 3)  # not contiguous
    output = torch.from_numpy(y).transpose(2, 3)
    value = ssim(output, target, data_range=1.0)
    assert value.item() == ssim(output.contiguous(), target.contiguous(), data_range=1.0).item()


@pytest.mark.gpu
def test_cuda_tensors_equal_cpu_tensors():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device answers")
    x, y = _batch((2, 3, 176, 176), 12)
    results = {}
    for device in ("cpu", "cuda"):
        output = torch.from_numpy(y).to(device).requires_grad_()
        loss = ssim(output, torch.from_numpy(x).to(device), data_range=1.0)
        loss = loss + ms_ssim(output, torch.from_numpy(x).to(device), data_range=1.0)
        loss.backward()
        results[device] = (loss.item(), output.grad.cpu())
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], abs=1e-6)
    grad_cpu = results["cpu"][1]
    assert (results["cuda"][1] - grad_cpu).abs().max() <= 1e-5 * grad_cpu.abs().max()
