"""The compiled SSIM value and gradient of a plane (pipeline.kernels.cpu.gradient).

``pipeline.kernels.dispatch.value_and_grad`` (what ``pipeline.ssim_loss`` calls) takes it
for NumPy float64 planes; it must give ``ssim_value_and_grad``'s value and gradient bit
for bit (that array form stays for CuPy and volumes, and is itself checked against
finite differences and scikit-image in tests/kernels/test_gradient.py): windows of 3, 7
and 11 taps, Gaussian and uniform, data near zero and far from it, both covariance
normalisations, and a real photograph through ``pipeline.ssim_loss``.
"""

from __future__ import annotations

import numpy as np
import pytest

import pipeline as sp
from pipeline.kernels import dispatch, gradient
from pipeline.kernels.windows import window_weights
from pipeline.testing import degrade, photograph


@pytest.mark.parametrize(("window", "size"), [("gaussian", 11), ("gaussian", 7), ("uniform", 3)])
def test_compiled_value_and_gradient_are_the_array_forms_bit_for_bit(window, size) -> None:
    rng = np.random.default_rng(size)
    weights = window_weights(window, size, 1.5)
    for trial in range(20):
        side = rng.integers(size, 60, 2)
        scale = 10.0 ** rng.uniform(-2, 4)
        x = rng.uniform(0, scale, side) + (0.0, 1e3 * scale)[trial % 2]
        y = x + rng.normal(0, scale / 8, x.shape)
        kwargs = {
            "weights": weights,
            "c1": (0.01 * scale) ** 2,
            "c2": (0.03 * scale) ** 2,
            "cov_norm": 1.0 if trial % 3 else size * size / (size * size - 1),
        }
        value, grad = dispatch.value_and_grad(x, y, **kwargs)
        want_value, want_grad = gradient.ssim_value_and_grad(x, y, **kwargs)
        assert value == want_value
        np.testing.assert_array_equal(grad, want_grad, err_msg=f"trial {trial}")


def test_ssim_loss_of_a_photograph_takes_the_compiled_form(monkeypatch) -> None:
    from pipeline.kernels.cpu import gradient as compiled

    x = photograph("camera")[100:260, 50:250]
    y = degrade(x, "jpeg", strength=15)
    calls = []
    original = compiled.value_map_and_grad
    monkeypatch.setattr(
        compiled, "value_map_and_grad", lambda *args: calls.append(1) or original(*args)
    )
    loss, grad = sp.ssim_loss(x, y)
    assert calls == [1]
    value, want = gradient.ssim_value_and_grad(
        x.astype(np.float64),
        y.astype(np.float64),
        weights=window_weights("gaussian", 11, 1.5),
        c1=(0.01 * 255) ** 2,
        c2=(0.03 * 255) ** 2,
        cov_norm=1.0,
    )
    assert loss == 1.0 - value
    np.testing.assert_array_equal(grad, -want)
