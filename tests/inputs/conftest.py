"""Fixtures shared by the tests of pipeline.inputs."""

from __future__ import annotations

import numpy as np
import pytest

STACK_SHAPE = (4, 24, 32)


@pytest.fixture
def stacks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A reference stack of 4 images of 24x32 and a noisy generated one."""
    x = rng.integers(0, 256, STACK_SHAPE, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 12, STACK_SHAPE), 0, 255).astype(np.uint8)
    return x, y
