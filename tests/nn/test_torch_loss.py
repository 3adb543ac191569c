"""The deprecated pipeline.nn.torch_loss forwards to pipeline.nn with a DeprecationWarning.

Importing it never imports torch; the tests that call it skip where torch is
not installed. Reference: the NumPy ``ssim_loss`` (float64 analytic gradient).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import pipeline as sp


def _pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape)
    y = np.clip(x + rng.normal(0, 0.15, shape), 0, 1)
    return x, y


def test_import_pipeline_does_not_import_torch() -> None:
    code = "import sys, pipeline, pipeline.nn.torch_loss; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("channel_axis", [0, 2])
def test_torch_wrapper_warns_and_matches_numpy(channel_axis) -> None:
    torch = pytest.importorskip("torch")
    from pipeline.nn.torch_loss import ssim_loss_torch

    x, y = _pair((3, 28, 30), 13)
    x, y = np.moveaxis(x, 0, channel_axis).copy(), np.moveaxis(y, 0, channel_axis).copy()
    target = torch.from_numpy(x)
    output = torch.from_numpy(y).requires_grad_(True)
    with pytest.deprecated_call(match="use pipeline.nn.SSIMLoss"):
        loss = ssim_loss_torch(target, output, data_range=1.0, channel_axis=channel_axis)
    loss.backward()
    expected_loss, expected_grad = sp.ssim_loss(x, y, data_range=1.0, channel_axis=channel_axis)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected_loss, abs=1e-13)
    np.testing.assert_allclose(output.grad.numpy(), expected_grad, rtol=0, atol=1e-15)


def test_torch_wrapper_gradcheck() -> None:
    torch = pytest.importorskip("torch")
    from pipeline.nn.torch_loss import ssim_loss_torch

    x, y = _pair((14, 15), 14)
    target = torch.from_numpy(x)
    output = torch.from_numpy(y).requires_grad_(True)
    with pytest.deprecated_call():
        assert torch.autograd.gradcheck(
            lambda out: ssim_loss_torch(target, out, data_range=1.0, win_size=7), (output,)
        )
