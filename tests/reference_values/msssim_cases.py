"""Named image pairs for the pinned MS-SSIM reference values (NumPy, SciPy, scikit-image only).

Shared by ``make_msssim_refs.py`` (which computes the numbers with pytorch-msssim)
and ``tests/metrics/test_multiscale.py`` (which recomputes the same pairs without torch).
Every degradation is deterministic: a seeded ``numpy.random.default_rng`` or a
fixed Gaussian blur.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.ndimage as ndi
from skimage import color, data

# name, source image, crop (rows, cols), degradation, channel_axis
CASES: list[dict[str, Any]] = [
    {"name": "camera-noise10", "image": "camera", "crop": [512, 512], "degrade": "noise10"},
    {"name": "camera-blur2", "image": "camera", "crop": [512, 512], "degrade": "blur2"},
    {"name": "camera-noise30-176", "image": "camera", "crop": [176, 176], "degrade": "noise30"},
    {
        "name": "astronaut-grey-noise20",
        "image": "astronaut_grey",
        "crop": [512, 512],
        "degrade": "noise20",
    },
    {
        "name": "astronaut-grey-blur1",
        "image": "astronaut_grey",
        "crop": [512, 512],
        "degrade": "blur1",
    },
    {
        "name": "coffee-rgb-noise15",
        "image": "coffee",
        "crop": [400, 592],
        "degrade": "noise15",
        "channel_axis": -1,
    },
    {
        "name": "coffee-rgb-blur2",
        "image": "coffee",
        "crop": [400, 592],
        "degrade": "blur2",
        "channel_axis": -1,
    },
    {"name": "camera-inverted", "image": "camera", "crop": [256, 256], "degrade": "invert"},
]

# Odd sides at some scale: pytorch-msssim zero-pads there, msssim.m / TF mirror.
ODD_CASES: list[dict[str, Any]] = [
    {
        "name": "coffee-rgb-noise15-full",
        "image": "coffee",
        "crop": [400, 600],
        "degrade": "noise15",
        "channel_axis": -1,
    },
    {"name": "camera-noise20-301x333", "image": "camera", "crop": [301, 333], "degrade": "noise20"},
]


def load_image(name: str) -> np.ndarray:
    """A scikit-image sample as float64 in [0, 255]."""
    if name == "camera":
        return data.camera().astype(np.float64)
    if name == "astronaut_grey":
        # rgb2gray gives [0, 1]; back to [0, 255] so that data_range is 255 everywhere.
        return color.rgb2gray(data.astronaut()) * 255.0
    if name == "coffee":
        return data.coffee().astype(np.float64)
    raise ValueError(f"unknown image {name!r}")


def degrade(x: np.ndarray, how: str, seed: int = 2003) -> np.ndarray:
    """A deterministic distortion of ``x`` (float64, [0, 255])."""
    if how.startswith("noise"):
        rng = np.random.default_rng(seed)
        noisy = x + rng.normal(0.0, float(how[5:]), x.shape)
        return np.clip(noisy, 0.0, 255.0)
    if how.startswith("blur"):
        sigma = [float(how[4:])] * 2 + [0.0] * (x.ndim - 2)
        return ndi.gaussian_filter(x, sigma=sigma, mode="reflect")
    if how == "invert":
        return 255.0 - x
    raise ValueError(f"unknown degradation {how!r}")


def build_case(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(reference, distorted)`` float64 arrays for one case."""
    rows, cols = case["crop"]
    x = np.ascontiguousarray(load_image(case["image"])[:rows, :cols])
    return x, degrade(x, case["degrade"])
