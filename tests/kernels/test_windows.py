"""The window weights of pipeline.kernels.windows: Wang's Gaussian and the uniform box."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from pipeline.kernels.windows import gaussian_window, uniform_window


def test_gaussian_window_is_scipy_gaussian_kernel():
    # scipy.ndimage.gaussian_filter1d with radius 5 applied to a unit impulse is its kernel.
    impulse = np.zeros(11)
    impulse[5] = 1.0
    expected = scipy.ndimage.gaussian_filter1d(impulse, 1.5, radius=5, mode="constant")
    np.testing.assert_allclose(gaussian_window(11, 1.5), expected[::-1], atol=1e-15)
    assert gaussian_window(11, 1.5).sum() == pytest.approx(1.0, abs=1e-15)


def test_uniform_window_sums_to_one():
    np.testing.assert_allclose(uniform_window(7), np.full(7, 1 / 7))


def test_shared_window_weights_are_one_read_only_copy():
    from pipeline.kernels.windows import shared_window_weights, window_weights

    shared = shared_window_weights("gaussian", 11, 1.5)
    assert shared is shared_window_weights("gaussian", 11, 1.5)
    np.testing.assert_array_equal(shared, window_weights("gaussian", 11, 1.5))
    with pytest.raises(ValueError, match="read-only"):
        shared[0] = 0.0
    with pytest.raises(ValueError, match=r"window must be 'gaussian' or 'uniform' \(got 'box'\)"):
        shared_window_weights("box", 7, 1.5)
