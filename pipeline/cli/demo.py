"""Demo data: real photographs and the kinds of damage a generator does to them.

:func:`make_demo_folders` writes a ``reference`` folder of PNG photographs
(the ones scikit-image ships inside its wheel, so nothing is downloaded) and a
``generated`` folder holding a distorted copy of each, the way GAN outputs
differ from real images: sensor-like noise, blur, a colour cast, JPEG
artefacts, checkerboard up-sampling artefacts and a smeared local defect. It
exercises the whole folder path: nested folders, pairing by stem (``.png``
reference vs ``.jpg`` output), three size groups (RGB 256x256, RGB 256x384,
grey 256x256) and one reference image with no generated partner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["DEMO_ITEMS", "DemoItem", "make_demo_folders", "warm_statistics_kernels"]


@dataclass(frozen=True)
class DemoItem:
    """One demo pair: where it goes, which photograph, which distortion."""

    name: str
    photo: str
    shape: tuple[int, int]
    distortion: str
    generated_format: str = "PNG"


# Photographs bundled in the scikit-image wheel (skimage/data/*.png|jpg): they
# load offline, unlike the pooch-fetched ones (e.g. ``brain``, ``kidney``).
DEMO_ITEMS: tuple[DemoItem, ...] = (
    DemoItem("people/astronaut", "astronaut", (256, 256), "gaussian_noise"),
    DemoItem("animals/chelsea", "chelsea", (256, 256), "blur"),
    DemoItem("objects/coffee", "coffee", (256, 384), "colour_shift"),
    DemoItem("objects/rocket", "rocket", (256, 384), "jpeg", generated_format="JPEG"),
    DemoItem("space/hubble", "hubble_deep_field", (256, 256), "checkerboard"),
    DemoItem("microscopy/ihc", "immunohistochemistry", (256, 256), "local_defect"),
    DemoItem("grey/camera", "camera", (256, 256), "blur_noise"),
    DemoItem("grey/moon", "moon", (256, 256), "local_defect"),
)

# A reference photograph with no generated partner: the run must list it.
UNPAIRED_ITEM = DemoItem("people/unpaired_coins", "coins", (256, 256), "none")


def _load_photo(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())


def _fit(photo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resize with anti-aliasing."""
    from skimage.transform import resize

    height, width = photo.shape[:2]
    target_h, target_w = shape
    scale = min(height / target_h, width / target_w)
    crop_h, crop_w = round(target_h * scale), round(target_w * scale)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    cropped = photo[top : top + crop_h, left : left + crop_w]
    resized = resize(cropped, shape, anti_aliasing=True, preserve_range=True, order=1)
    return _to_uint8(resized)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigmas = (sigma, sigma, 0.0)[: image.ndim]
    return gaussian_filter(image.astype(np.float64), sigmas)


def _gaussian_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(image + rng.normal(0.0, 12.0, image.shape))


def _blur_only(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(_blur(image, 1.5))


def _blur_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(_blur(image, 1.0) + rng.normal(0.0, 5.0, image.shape))


def _colour_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A warm cast plus a mild gamma change: the global colour drift of a generator.
    gamma = (image / 255.0) ** 0.9 * 255.0
    return _to_uint8(gamma + np.array([14.0, 2.0, -10.0]))


def _checkerboard(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Transposed-convolution up-sampling leaves a 2-pixel periodic pattern
    # (Odena, Dumoulin, Olah, "Deconvolution and checkerboard artifacts", 2016).
    y, x = np.indices(image.shape[:2])
    pattern = np.where((y + x) % 2 == 0, 9.0, -9.0)
    if image.ndim == 3:
        pattern = pattern[..., None]
    return _to_uint8(image + pattern)


def _local_defect(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A smeared patch in one region (upper-left quadrant): the rest is untouched,
    # so the per-region statistics must point at that quadrant.
    out = image.astype(np.float64)
    height, width = image.shape[:2]
    size = min(height, width) // 4
    top, left = height // 8, width // 8
    patch = (slice(top, top + size), slice(left, left + size))
    out[patch] = _blur(image, 6.0)[patch] + rng.normal(0.0, 4.0, out[patch].shape)
    return _to_uint8(out)


def _identity(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image


_DISTORTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": _gaussian_noise,
    "blur": _blur_only,
    "blur_noise": _blur_noise,
    "colour_shift": _colour_shift,
    "checkerboard": _checkerboard,
    "local_defect": _local_defect,
    "jpeg": _identity,  # the damage is done by saving as JPEG at low quality
    "none": _identity,
}

_JPEG_QUALITY = 15


def _save(image: np.ndarray, path: Path, image_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {"quality": _JPEG_QUALITY} if image_format == "JPEG" else {}
    Image.fromarray(image).save(path, format=image_format, **options)


def make_demo_folders(root: str | os.PathLike[str], *, seed: int = 0) -> tuple[Path, Path]:
    """Write the demo reference and generated folders under ``root``.

    Parameters
    ----------
    root : str or path-like
        Created if needed; the folders ``root/reference`` and
        ``root/generated`` are written (the demo's own files are overwritten).
    seed : int
        Seed of the noise; the same seed gives byte-identical files.

    Returns
    -------
    reference_dir, generated_dir : pathlib.Path

    Raises
    ------
    NotADirectoryError
        When ``root`` exists and is a file.

    Examples
    --------
    >>> import tempfile
    >>> ref, gen = make_demo_folders(tempfile.mkdtemp())
    >>> sorted(p.name for p in (ref / "objects").iterdir())
    ['coffee.png', 'rocket.png']
    """
    base = Path(root)
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"demo root must be a folder, got a file: {base}")
    reference_dir, generated_dir = base / "reference", base / "generated"
    rng = np.random.default_rng(seed)
    for item in (*DEMO_ITEMS, UNPAIRED_ITEM):
        real = _fit(_load_photo(item.photo), item.shape)
        _save(real, reference_dir / f"{item.name}.png", "PNG")
        if item is UNPAIRED_ITEM:
            continue
        fake = _DISTORTIONS[item.distortion](real, rng)
        suffix = ".jpg" if item.generated_format == "JPEG" else ".png"
        _save(fake, generated_dir / f"{item.name}{suffix}", item.generated_format)
    return reference_dir, generated_dir


def _compile_statistics_kernels() -> None:
    """Compile (or load) the statistics kernels with the types the demo's run passes them.

    The demo's uint8 photographs give float32 maps from the fused kernels (with the
    channels' mean deficit ``1 - ssim`` in float64), and a grid's region ids come as a
    strided int64 view; other types would compile kernels the run never calls.
    """
    from pipeline.reductions.statistics import block_statistics

    maps: dict[str, np.ndarray] = {
        name: np.zeros((1, 2, 3), dtype=np.float32)
        for name in ("ssim", "luminance", "contrast", "structure")
    }
    maps["deficit"] = np.zeros((1, 2, 3))
    region_ids = np.zeros((1, 2, 6), dtype=np.int64)[:, :, ::2]
    block_statistics(maps, region_ids, 2, 10)


def warm_statistics_kernels() -> subprocess.Popen[bytes]:
    """Start a helper process that puts the demo's statistics kernels in numba's cache.

    A cold first run (an empty numba cache) compiles the fused map kernel and
    then the statistics kernels, one after the other: numba compiles under one
    lock per process. The helper compiles the statistics kernels on the other
    core meanwhile, so the run loads them from the cache (numba's cache files
    are written whole, then renamed) instead of compiling them; when the helper
    is slower or fails, the run compiles them itself, with the same result. The
    helper inherits the environment (``NUMBA_CACHE_DIR`` included); its output
    is discarded. Call ``wait()`` on the returned process when the run is done.

    Returns
    -------
    subprocess.Popen
        The helper process.
    """
    code = "from pipeline.cli import demo; demo._compile_statistics_kernels()"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
