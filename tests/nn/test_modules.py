"""SSIMLoss and MSSSIMLoss: 1 - the functional index, reductions, training, import laziness."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

import pipeline as sp


def test_import_pipeline_nn_does_not_import_torch():
    code = (
        "import sys, pipeline, pipeline.nn; from pipeline.nn import ssim, ms_ssim; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


torch = pytest.importorskip("torch")

from pipeline.nn import MSSSIMLoss, SSIMLoss, ms_ssim, ssim  # noqa: E402


def _batch(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, shape)
    return torch.from_numpy(x), torch.from_numpy(np.clip(x + rng.normal(0, 0.2, shape), 0, 1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ssim_loss_is_one_minus_ssim(reduction):
    target, output = _batch((3, 2, 30, 31), 1)
    loss = SSIMLoss(data_range=1.0, reduction=reduction, win_size=7)(output, target)
    per_image = 1 - ssim(output, target, data_range=1.0, reduction="none", win_size=7)
    expected = {"mean": per_image.mean(), "sum": per_image.sum(), "none": per_image}[reduction]
    assert torch.equal(loss, expected)
    reference = [
        1
        - sp.ssim(
            target[i].numpy(),
            output[i].numpy(),
            data_range=1.0,
            channel_axis=0,
            win_size=7,
            engine="reference",
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(per_image.numpy(), reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ms_ssim_loss_is_one_minus_ms_ssim(reduction):
    target, output = _batch((2, 3, 170, 165), 2)
    loss = MSSSIMLoss(data_range=1.0, reduction=reduction)(output, target)
    per_image = 1 - ms_ssim(output, target, data_range=1.0, reduction="none")
    expected = {"mean": per_image.mean(), "sum": per_image.sum(), "none": per_image}[reduction]
    assert torch.equal(loss, expected)


def test_a_few_steps_of_gradient_descent_lower_the_loss():
    target, output = _batch((2, 3, 48, 48), 3)
    output = output.float().requires_grad_()
    target = target.float()
    criterion = SSIMLoss(data_range=1.0)
    optimizer = torch.optim.SGD([output], lr=50.0)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert output.grad.dtype == torch.float32


def test_modules_pickle_and_print():
    criterion = MSSSIMLoss(data_range=255.0, weights=(0.5, 0.5), reduction="sum")
    copy = pickle.loads(pickle.dumps(criterion))
    assert type(copy) is MSSSIMLoss
    assert repr(copy) == "MSSSIMLoss(data_range=255.0, reduction='sum', scales=2)"
    assert repr(SSIMLoss(data_range=1.0, win_size=7)) == (
        "SSIMLoss(data_range=1.0, reduction='mean', win_size=7)"
    )
    assert SSIMLoss.__module__ == "pipeline.nn"
    target, output = _batch((1, 1, 40, 40), 4)
    assert copy(output, target).item() == criterion(output, target).item()


def test_identical_images_give_zero_loss_and_zero_gradient():
    target, _ = _batch((2, 1, 40, 40), 5)
    output = target.clone().requires_grad_()
    loss = SSIMLoss(data_range=1.0)(output, target)
    loss.backward()
    assert abs(loss.item()) < 1e-14
    assert output.grad.abs().max() < 1e-14
