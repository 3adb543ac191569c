"""3-D volumes in memory: an N-D window, matching scikit-image's N-D SSIM."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.metrics import structural_similarity

import pipeline as sp

SKIMAGE_KWARGS: dict[str, dict[str, Any]] = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


def _volume_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Smooth structure plus noise, so that the maps are not all near zero.
    z, yy, xx = np.meshgrid(*(np.linspace(0, 3, n) for n in shape[:3]), indexing="ij")
    base = 0.5 + 0.4 * np.sin(z + 2 * yy) * np.cos(xx)
    if len(shape) == 4:
        base = base[..., None] * np.linspace(0.6, 1.0, shape[3])
    x = np.clip(base + rng.normal(0, 0.05, shape), 0, 1)
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
    return x, y


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
@pytest.mark.parametrize("shape", [(16, 24, 20), (11, 40, 13)])
def test_volume_matches_skimage(profile: str, shape: tuple[int, ...]) -> None:
    x, y = _volume_pair(shape, seed=sum(shape))
    expected = structural_similarity(x, y, data_range=1.0, **SKIMAGE_KWARGS[profile])
    got = sp.ssim(x, y, data_range=1.0, profile=profile)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("profile", ["wang2004", "skimage"])
def test_volume_uint8_matches_skimage(profile: str) -> None:
    x, y = _volume_pair((14, 18, 22), seed=1)
    x8, y8 = (x * 255).astype(np.uint8), (y * 255).astype(np.uint8)
    expected = structural_similarity(x8, y8, data_range=255, **SKIMAGE_KWARGS[profile])
    assert sp.ssim(x8, y8, profile=profile) == pytest.approx(expected, abs=1e-6)


def test_colour_volume_matches_skimage_channel_axis() -> None:
    x, y = _volume_pair((12, 16, 14, 3), seed=2)
    expected = structural_similarity(
        x, y, data_range=1.0, channel_axis=-1, **SKIMAGE_KWARGS["wang2004"]
    )
    assert sp.ssim(x, y, data_range=1.0, channel_axis=-1) == pytest.approx(expected, abs=1e-6)


def test_volume_maps_are_the_valid_region() -> None:
    x, y = _volume_pair((13, 15, 17), seed=3)
    score, maps = sp.ssim(x, y, data_range=1.0, full=True)
    assert maps["ssim"].shape == (3, 5, 7)
    assert score == pytest.approx(float(maps["ssim"].mean()), abs=1e-15)


def test_volume_too_thin_for_the_window() -> None:
    x = np.zeros((8, 30, 30))
    with pytest.raises(ValueError, match=r"win_size 11 is larger than the smallest image side"):
        sp.ssim(x, x, data_range=1.0)
