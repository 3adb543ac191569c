"""The device-side statistics of pipeline.kernels.gpu.statistics, checked on NumPy.

``device_whole_statistics`` is array-module generic: on NumPy maps it must give
the packed row of the CPU reduction (``block_statistics`` of region ``all``),
counts exact and sums to rounding, so these tests need no GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.gpu.statistics import device_whole_statistics
from pipeline.reductions.statistics import block_statistics


@pytest.mark.parametrize("bins", [1, 10, 256])
def test_device_statistics_equal_the_cpu_reduction(rng, bins) -> None:
    maps = {
        name: rng.uniform(-1.02, 1.02, (37, 53)).astype(np.float32)
        for name in ("ssim", "luminance", "contrast", "structure")
    }
    # Values on bin edges and at both ends of [-1, 1].
    maps["ssim"][0, :6] = np.float32([-1.0, 1.0, 0.0, 0.5, -0.5, 0.8])
    ours = device_whole_statistics(maps, bins)
    cpu = block_statistics({name: m[None] for name, m in maps.items()}, None, 1, bins)[0, 0]
    np.testing.assert_array_equal(ours[8:], cpu[8:])  # histogram counts: exact
    np.testing.assert_allclose(ours[:8], cpu[:8], rtol=1e-12, atol=1e-12)


def test_device_statistics_of_an_empty_map() -> None:
    names = ("ssim", "luminance", "contrast", "structure")
    empty = {name: np.zeros((0, 5), np.float32) for name in names}
    row = device_whole_statistics(empty, 4)
    cpu = block_statistics({name: m[None] for name, m in empty.items()}, None, 1, 4)[0, 0]
    np.testing.assert_array_equal(row, cpu)
