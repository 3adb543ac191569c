"""The float64 reference kernel of pipeline.kernels.reference against scipy's filters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage

from pipeline.kernels import filter_valid, gaussian_window, ssim_maps, uniform_window


@pytest.mark.parametrize("shape", [(11, 11), (17, 23), (12, 15, 13)])
def test_filter_valid_equals_scipy_correlate_cropped(shape, rng):
    image = rng.normal(size=shape)
    w = gaussian_window(11, 1.5) if len(shape) == 2 else gaussian_window(5, 1.0)
    expected = image
    for axis in range(image.ndim):
        expected = scipy.ndimage.correlate1d(expected, w, axis=axis, mode="constant")
    r = len(w) // 2
    crop = tuple(slice(r, n - r) for n in shape)
    np.testing.assert_allclose(filter_valid(image, w), expected[crop], atol=1e-12)


def test_block_maps_concatenate_to_whole_map(rng):
    # Cutting with an overlap of the radius gives exactly the pieces of the whole map:
    # the property the tiled engine relies on.
    x = rng.normal(size=(40, 37))
    y = x + rng.normal(scale=0.3, size=x.shape)
    kw = {"weights": gaussian_window(11, 1.5), "c1": 1e-4, "c2": 9e-4}
    whole = ssim_maps(x, y, **kw)["ssim"]
    top = ssim_maps(x[:25], y[:25], **kw)["ssim"]
    bottom = ssim_maps(x[15:], y[15:], **kw)["ssim"]
    np.testing.assert_array_equal(np.concatenate([top, bottom]), whole)


def test_components_optional(rng):
    x = rng.normal(size=(20, 20))
    maps = ssim_maps(x, x, weights=uniform_window(7), c1=1e-4, c2=9e-4, components=False)
    assert set(maps) == {"ssim", "cs"}
