"""Colour handling: SSIM per channel (averaged) or on BT.601 luma."""

from __future__ import annotations

from typing import Any

from pipeline.kernels.backend import array_module

__all__ = ["COLOR_MODES", "LUMA_WEIGHTS", "check_color_mode", "to_luma"]

COLOR_MODES = ("channels", "luma")

# ITU-R BT.601 luma coefficients (Y = 0.299 R + 0.587 G + 0.114 B); they sum to 1,
# so the data range of Y equals that of the RGB channels.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def check_color_mode(color_mode: str, channel_axis: int | None, n_channels: int | None) -> None:
    if color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be one of {', '.join(COLOR_MODES)} (got {color_mode!r})")
    if color_mode == "luma":
        if channel_axis is None:
            raise ValueError("color_mode='luma' needs channel_axis (the axis holding R, G, B)")
        if n_channels != 3:
            raise ValueError(
                f"color_mode='luma' needs 3 channels (R, G, B) along channel_axis "
                f"(got {n_channels}); drop an alpha channel first"
            )


def to_luma(image: Any, channel_axis: int) -> Any:
    """BT.601 luma of an RGB image, as float64, with the channel axis removed."""
    xp = array_module(image)
    rgb = xp.moveaxis(image, channel_axis, -1).astype(xp.float64, copy=False)
    r, g, b = LUMA_WEIGHTS
    return r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]
