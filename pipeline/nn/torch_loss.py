"""Deprecated: ``ssim_loss_torch`` forwards to :mod:`pipeline.nn` (torch imported lazily).

Use :class:`pipeline.nn.SSIMLoss` (``1 - SSIM`` of batches ``(N, C, H, W)``) or
:func:`pipeline.nn.ssim` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["ssim_loss_torch"]


def ssim_loss_torch(
    x: Any,
    y: Any,
    *,
    data_range: float,
    profile: str = "wang2004",
    channel_axis: int | None = None,
    **params: Any,
) -> Any:
    """``1 - SSIM(x, y)`` of one image as a 0-d tensor (gradient w.r.t. ``y``). Deprecated.

    Forwards to :func:`pipeline.nn.ssim` with the image laid out as a batch of
    one: ``x`` and ``y`` are one 2-D or 3-D image (spatial axes plus an optional
    ``channel_axis``), ``x`` the reference, ``y`` the generated image.

    .. deprecated::
        Use ``pipeline.nn.SSIMLoss(data_range=...)(y_batch, x_batch)`` or
        ``1 - pipeline.nn.ssim(y_batch, x_batch, data_range=...)`` on ``(N, C, H, W)``
        batches.
    """
    warnings.warn(
        "pipeline.nn.torch_loss.ssim_loss_torch is deprecated; use pipeline.nn.SSIMLoss "
        "(or 1 - pipeline.nn.ssim) on (N, C, H, W) batches: loss(input, target)",
        DeprecationWarning,
        stacklevel=2,
    )
    from pipeline.nn.functional import ssim

    def as_batch(image: Any) -> Any:
        if channel_axis is None:
            return image.reshape(1, 1, *image.shape)
        return image.movedim(channel_axis, 0).unsqueeze(0)

    return 1 - ssim(as_batch(y), as_batch(x), data_range=data_range, profile=profile, **params)
