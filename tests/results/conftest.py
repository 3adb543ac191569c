"""Shared fixture of the results tests: a real result of three pairs with 2x2 regions."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline as sp


@pytest.fixture
def result(rng):
    x = rng.integers(0, 256, (3, 32, 40), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    return sp.evaluate(x, y, regions="2x2", hist_bins=16)
