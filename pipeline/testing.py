"""Test and benchmark helpers users can call too: real photographs, realistic
degradations, and the float64 reference score.

The photographs are those bundled inside the scikit-image wheel, so nothing is
downloaded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "DEGRADATIONS",
    "PHOTOGRAPHS",
    "degrade",
    "photograph",
    "reference_ssim",
    "skimage_wang2004",
    "smooth_volume_pair",
    "unreadable_stack",
]

# Photographs shipped inside scikit-image's wheel (no pooch download needed).
PHOTOGRAPHS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "moon", "coins", "brick")


def photograph(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as uint8, (y, x) or (y, x, 3)."""
    if name not in PHOTOGRAPHS:
        raise ValueError(f"unknown photograph {name!r}; available: {', '.join(PHOTOGRAPHS)}")
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)())


def _noise(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    return image + rng.normal(0.0, strength, image.shape)


def _blur(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    import scipy.ndimage

    sigma = [strength / 10.0] * 2 + [0.0] * (image.ndim - 2)
    return scipy.ndimage.gaussian_filter(image, sigma)


def _contrast(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    mean = image.mean()
    return mean + (image - mean) * (1.0 - strength / 100.0)


def _shift(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    step = max(1, round(strength / 10.0))
    return np.roll(image, (step, -step), axis=(0, 1))


def _color_shift(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    if image.ndim == 2:
        return image + strength
    return image + rng.uniform(-strength, strength, image.shape[-1])


def _jpeg(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    from PIL import Image

    quality = int(np.clip(100 - strength * 4, 5, 95))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer), dtype=np.float64)


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "noise": _noise,
    "blur": _blur,
    "jpeg": _jpeg,
    "contrast": _contrast,
    "shift": _shift,
    "color_shift": _color_shift,
}


def degrade(
    image: np.ndarray,
    kind: str,
    *,
    strength: float = 15.0,
    rng: np.random.Generator | None = None,
    data_range: float = 255.0,
) -> np.ndarray:
    """``image`` with one realistic degradation, clipped back to its dtype's range.

    ``strength`` is in grey levels of an 8-bit image (noise sigma, colour offset),
    tenths of a pixel for blur sigma and shifts, percent for contrast loss and
    JPEG quality drop (quality = 100 - 4 * strength).
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; available: {', '.join(DEGRADATIONS)}")
    rng = np.random.default_rng(0) if rng is None else rng
    scale = data_range / 255.0
    work = image.astype(np.float64) / scale
    out = DEGRADATIONS[kind](work, rng, strength) * scale
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return np.clip(out, 0.0, data_range).astype(image.dtype)


def reference_ssim(x: Any, y: Any, **kwargs: Any) -> Any:
    """The float64 reference path of :func:`pipeline.ssim` (the oracle for faster paths)."""
    from pipeline.metrics.score import ssim

    return ssim(x, y, engine="reference", **kwargs)


def skimage_wang2004(
    x: Any, y: Any, *, data_range: float, k1: float = 0.01, k2: float = 0.03
) -> float:
    """scikit-image's ``structural_similarity`` with the ``wang2004`` profile's settings.

    An implementation independent of this package (Gaussian window, sigma 1.5,
    population covariance), computed in float64: the reference that tests pin to.
    """
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(x, dtype=np.float64),
            np.asarray(y, dtype=np.float64),
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            K1=k1,
            K2=k2,
        )
    )


def smooth_volume_pair(
    rng: np.random.Generator, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """A float volume pair in [0, 1], ``(z, y, x[, channel])``: smooth structure plus noise.

    The structure keeps the SSIM maps away from zero, so that volume and MS-SSIM
    tests compare meaningful values; ``y`` is ``x`` with more noise.
    """
    z, yy, xx = np.meshgrid(*(np.linspace(0, 3, n) for n in shape[:3]), indexing="ij")
    base = 0.5 + 0.4 * np.sin(z + 2 * yy) * np.cos(xx)
    if len(shape) == 4:
        base = base[..., None] * np.linspace(0.6, 1.0, shape[3])
    x = np.clip(base + rng.normal(0, 0.05, shape), 0, 1)
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
    return x, y


def unreadable_stack(shape: tuple[int, ...]) -> Any:
    """A uint8 Dask array that raises if any pixel is read: proves a check runs before compute."""
    import dask.array as da

    def explode(block: np.ndarray) -> np.ndarray:
        raise AssertionError("pixels were read")

    return da.zeros(shape, dtype=np.uint8, chunks=shape).map_blocks(explode, dtype=np.uint8)
