"""Engine choice of pipeline.kernels.dispatch: what ``auto`` means, and engine errors.

The test marked ``gpu`` runs only where a CUDA device answers (``conftest.py``
probes it once and skips it otherwise).
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import kernel_params

from pipeline.kernels import block_maps
from pipeline.kernels.dispatch import (
    block_cs_score,
    block_maps_and_score,
    block_score,
    resolve_engine,
)


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


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
@pytest.mark.parametrize("engine", ["fused", "reference"])
def test_maps_and_score_is_block_maps_and_block_score_in_one_pass(rng, window, engine) -> None:
    x = rng.integers(0, 256, (60, 70), dtype=np.uint8)
    y = np.clip(x + rng.integers(-20, 21, x.shape), 0, 255).astype(np.uint8)
    params = kernel_params(window, 7, "sample", 255.0)
    maps, score = block_maps_and_score(x, y, **params, engine=engine)
    # The maps bit for bit; the score is the mean of this pass's own deficits, which
    # block_score's path gives bit for bit except the fused scores (the Gaussian's
    # sum/difference basis, the uniform uint8 score's three integer moments: within
    # 1e-8, each of the exact mean).
    score_params = {k: v for k, v in params.items() if k != "components"}
    alone = block_score(x, y, **score_params, engine=engine)
    if engine == "fused":
        assert abs(score - alone) < 1e-8
    else:
        assert score == alone
    for name, found in block_maps(x, y, **params, engine=engine).items():
        np.testing.assert_array_equal(maps[name], found)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_cs_score_matches_the_float64_cs_mean(rng, window) -> None:
    # cs near 1 everywhere: the float32 cs map rounds every pixel by up to 3e-8.
    x = rng.integers(0, 256, (80, 90), dtype=np.uint8)
    y = np.clip(x.astype(int) + rng.integers(-1, 2, x.shape), 0, 255).astype(np.uint8)
    params = kernel_params(window, 7 if window == "uniform" else 11, "population", 255.0)
    del params["components"]
    # Reference value: the float64 reference engine's cs map, averaged in float64
    # (its own error here is ~1e-15: uint8 data, no cancellation).
    expected = float(block_maps(x, y, **params, components=False, engine="reference")["cs"].mean())
    assert block_cs_score(x, y, **params, engine="fused") == pytest.approx(expected, abs=2e-9)
    # The reference engine averages its own map, as before.
    assert block_cs_score(x, y, **params, engine="reference") == expected


def test_cs_score_of_huge_pixels_averages_the_cs_map(rng) -> None:
    # Beyond 2^39 the huge-C1 score pass would keep a luminance deficit: the map is used.
    x = 2.0**45 + rng.random((40, 40)) * 2.0**30
    y = x + rng.normal(0, 2.0**26, x.shape)
    params = kernel_params("gaussian", 11, "population", 2.0**32)
    del params["components"]
    maps = block_maps(x, y, **params, components=False, engine="fused")
    expected = float(maps["cs"].mean(dtype=np.float64))
    assert block_cs_score(x, y, **params, engine="fused") == expected
