"""1-D window weights; every SSIM window here is separable (Wang et al. 2004, sec. III-C)."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["gaussian_window", "shared_window_weights", "uniform_window", "window_weights"]


def gaussian_window(win_size: int, sigma: float) -> np.ndarray:
    """Normalised sampled Gaussian, ``win_size`` taps centred on zero.

    The 2-D product of two of these is MATLAB's ``fspecial('gaussian', win_size, sigma)``
    used by Wang's ``ssim_index.m``, and equals the kernel of ``scipy.ndimage.gaussian_filter``
    when its radius is ``win_size // 2``.
    """
    radius = win_size // 2
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    return weights / weights.sum()


def uniform_window(win_size: int) -> np.ndarray:
    """Box window of ``win_size`` equal taps (scikit-image's default SSIM window)."""
    return np.full(win_size, 1.0 / win_size, dtype=np.float64)


def window_weights(window: str, win_size: int, sigma: float) -> np.ndarray:
    """The 1-D weights for a window name (``"gaussian"`` or ``"uniform"``)."""
    if window == "gaussian":
        return gaussian_window(win_size, sigma)
    if window == "uniform":
        return uniform_window(win_size)
    raise ValueError(f"window must be 'gaussian' or 'uniform' (got {window!r})")


@functools.lru_cache(maxsize=64)
def shared_window_weights(window: str, win_size: int, sigma: float) -> np.ndarray:
    """:func:`window_weights`, made once per ``(window, win_size, sigma)`` and read-only.

    The array every kernel call of one window shares: an in-memory score of a
    small image would otherwise spend a noticeable part of its time building
    the same few taps again. Read-only, so no caller can change what the next
    one receives; take :func:`window_weights` for an array of your own.
    """
    weights = window_weights(window, win_size, sigma)
    weights.flags.writeable = False
    return weights
