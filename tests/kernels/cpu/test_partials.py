"""The compiled reference backdrop of mean maps against NumPy's mean of the centre pixels."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.cpu.partials import add_centre_pixels


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (np.uint8, 0, 256),
        (np.uint16, 0, 65536),
        (np.int16, -32768, 32768),
        (np.int32, -(2**31), 2**31 - 1),
        (np.float16, -1.0, 1.0),  # not a numba type: summed in float64
        (np.float32, -1.0, 1.0),
        (np.float64, -1e6, 1e6),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_add_centre_pixels_is_numpy_channel_mean_sum(dtype, low, high, channels):
    rng = np.random.default_rng(7)
    shape = (4, 23, 19, channels)
    if np.dtype(dtype).kind == "f":
        x = rng.uniform(low, high, shape).astype(dtype)
    else:
        x = rng.integers(low, high, shape, dtype=dtype)
    depth = 3
    out = np.full((5, 23 - 2 * depth, 19 - 2 * depth), 0.5)
    add_centre_pixels(x, depth, out, 4)
    centres = x[:, depth:-depth, depth:-depth, :].astype(np.float64)
    expected = 0.5 + centres.mean(axis=3).sum(axis=0)
    np.testing.assert_allclose(out[4], expected, rtol=1e-12, atol=1e-9)
    # The other components are left as they were.
    np.testing.assert_array_equal(out[:4], 0.5)


def test_add_centre_pixels_int32_sums_do_not_overflow():
    # 65536 images of 65535: the sum needs more than int32; the kernel switches to float64.
    x = np.full((65536, 3, 3, 1), 65535, dtype=np.uint16)
    out = np.zeros((5, 1, 1))
    add_centre_pixels(x, 1, out, 4)
    assert out[4, 0, 0] == 65536 * 65535
