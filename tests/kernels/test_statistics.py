"""The packed statistics layout of pipeline.kernels.statistics: its histogram bin edges.

The merging of packed rows (``merge_statistics``, ``empty_statistics``) is tested
with the reductions that use it, in tests/reductions/test_statistics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.statistics import bin_edges


def test_bin_edges_are_numpys_linspace() -> None:
    # np.histogram(range=(-1, 1)) bins by np.linspace(-1, 1, bins + 1); the kernels
    # recompute edges as i * (2 / bins) - 1, which must be the very same floats.
    for bins in range(1, 3001):
        np.testing.assert_array_equal(bin_edges(bins), np.linspace(-1.0, 1.0, bins + 1))


def test_too_many_bins_is_refused() -> None:
    with pytest.raises(ValueError, match="bins must be at most"):
        bin_edges(2**31)
