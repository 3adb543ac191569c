"""The adjoint of the valid correlation in pipeline.kernels.gradient.

The gradient it yields (``ssim_value_and_grad``) is checked through
``pipeline.ssim_loss`` against finite differences and scikit-image in
tests/metrics/test_loss.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.gradient import filter_adjoint
from pipeline.kernels.reference import filter_valid
from pipeline.kernels.windows import gaussian_window


def test_adjoint_identity() -> None:
    # <filter_valid(a), b> == <a, filter_adjoint(b)> for the valid correlation.
    rng = np.random.default_rng(9)
    weights = gaussian_window(11, 1.5)
    a = rng.normal(size=(30, 25))
    b = rng.normal(size=(20, 15))
    lhs = float((filter_valid(a, weights) * b).sum())
    rhs = float((a * filter_adjoint(b, weights)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-13)
