"""Engine choice of pipeline.kernels.dispatch: what ``auto`` means, and engine errors.

The test marked ``gpu`` runs only where a CUDA device answers (``conftest.py``
probes it once and skips it otherwise).
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import kernel_params

from pipeline.kernels import block_maps
from pipeline.kernels.dispatch import resolve_engine


def test_auto_uses_reference_for_volumes(rng) -> None:
    x = rng.random((12, 12, 12))
    assert resolve_engine("auto", x, x) == "reference"
    params = kernel_params("gaussian", 5, "population", 1.0, ndim=3)
    maps = block_maps(x, x, **params)
    assert maps["ssim"].dtype == np.float64


def test_engine_errors(rng) -> None:
    x = rng.random((12, 12, 12))
    with pytest.raises(ValueError, match="engine must be one of"):
        resolve_engine("fast", x, x)
    with pytest.raises(
        ValueError, match=r"engine='fused' needs 2-D NumPy arrays \(got 3-D NumPy\)"
    ):
        resolve_engine("fused", x, x)
    with pytest.raises(ValueError, match=r"engine='gpu' needs 2-D CuPy arrays \(got 2-D NumPy\)"):
        resolve_engine("gpu", x[0], x[0])


@pytest.mark.gpu
def test_auto_engine_picks_gpu_for_cupy(rng) -> None:
    import cupy

    x = cupy.asarray(rng.random((32, 32)))
    assert resolve_engine("auto", x, x) == "gpu"
