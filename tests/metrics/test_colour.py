"""Colour handling of pipeline.metrics.colour: BT.601 luma and the color_mode checks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pipeline import ssim
from pipeline.metrics.colour import LUMA_WEIGHTS
from pipeline.testing import degrade, photograph

TOLERANCE = 1e-6

SKIMAGE_ARGS = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
}


def skimage_ssim(x, y, profile, **kwargs):
    return structural_similarity(x, y, **SKIMAGE_ARGS[profile], **kwargs)


def test_luma_is_ssim_of_bt601_y(rng):
    x = photograph("astronaut")
    y = degrade(x, "color_shift", rng=rng, strength=30)
    weights = np.asarray(LUMA_WEIGHTS)
    expected = skimage_ssim(x @ weights, y @ weights, "wang2004", data_range=255)
    got = ssim(x, y, channel_axis=-1, color_mode="luma")
    assert got == pytest.approx(expected, abs=TOLERANCE)
    assert got != pytest.approx(ssim(x, y, channel_axis=-1), abs=1e-3)


def test_color_mode_is_checked(rng):
    x = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"color_mode must be one of channels, luma \(got 'rgb'\)"):
        ssim(x, x, channel_axis=-1, color_mode="rgb")
    with pytest.raises(ValueError, match=r"color_mode='luma' needs channel_axis"):
        ssim(x, x, color_mode="luma")
    with pytest.raises(ValueError, match=r"needs 3 channels \(R, G, B\) .* \(got 4\)"):
        ssim(x, x, channel_axis=-1, color_mode="luma")
