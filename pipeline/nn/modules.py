"""``SSIMLoss`` and ``MSSSIMLoss``: ``1 - SSIM`` and ``1 - MS-SSIM`` as ``torch.nn.Module``.

The classes subclass ``torch.nn.Module``, so they are built on first use
(:func:`loss_classes`, reached through ``pipeline.nn.SSIMLoss``): importing
:mod:`pipeline` or :mod:`pipeline.nn` never imports torch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from pipeline.nn._checks import resolve_options
from pipeline.nn.functional import (
    ms_ssim_per_image,
    reduce_batch,
    ssim_per_image,
    window_params,
)

__all__ = ["loss_classes"]


@functools.cache
def loss_classes() -> dict[str, type]:
    """``{"SSIMLoss": ..., "MSSSIMLoss": ...}``, built once per process."""
    import torch

    class SSIMLoss(torch.nn.Module):
        """``1 - SSIM(input, target)`` of batched images, for training.

        ``loss(input, target)``: ``input`` (the network's output, which gets the
        gradient) and ``target`` of shape ``(N, C, H, W)`` or ``(N, C, D, H, W)``,
        float32 or float64, on the CPU or a CUDA device. Each image's SSIM is the
        mean of its channels' mean 'valid' SSIM, exactly :func:`pipeline.ssim`
        with ``channel_axis``; the loss is ``1 -`` it, reduced over the batch.
        Forward and backward are fused compiled kernels (no autograd graph of
        the SSIM arithmetic): see the documentation of :mod:`pipeline.nn`.

        Parameters
        ----------
        data_range : float
            The images' value range ``L`` (1.0 for [0, 1]); required.
        reduction : {"mean", "sum", "none"}
            Mean or sum of the per-image losses, or the ``(N,)`` losses.
        profile, window, win_size, sigma, k1, k2, covariance
            As in :func:`pipeline.ssim` (``"wang2004"`` by default).

        Examples
        --------
        >>> import torch  # doctest: +SKIP
        >>> from pipeline.nn import SSIMLoss  # doctest: +SKIP
        >>> criterion = SSIMLoss(data_range=1.0)  # doctest: +SKIP
        >>> loss = criterion(model(noisy), clean)  # doctest: +SKIP
        >>> loss.backward()  # doctest: +SKIP
        """

        def __init__(
            self,
            *,
            data_range: float,
            reduction: str = "mean",
            profile: str = "wang2004",
            window: str | None = None,
            win_size: int | None = None,
            sigma: float | None = None,
            k1: float | None = None,
            k2: float | None = None,
            covariance: str | None = None,
        ) -> None:
            super().__init__()
            self.options = resolve_options(
                data_range=data_range,
                reduction=reduction,
                profile=profile,
                multiscale=False,
                params=window_params(window, win_size, sigma, k1, k2, covariance),
                name="SSIMLoss",
            )
            self.data_range = float(data_range)
            self.reduction = reduction

        def forward(self, input: Any, target: Any) -> Any:
            per_image = ssim_per_image(input, target, self.options, name="SSIMLoss")
            return reduce_batch(1 - per_image, self.reduction)

        def extra_repr(self) -> str:
            return (
                f"data_range={self.data_range}, reduction={self.reduction!r}, "
                f"win_size={self.options.win_size}"
            )

    class MSSSIMLoss(torch.nn.Module):
        """``1 - MS-SSIM(input, target)`` of batched images ``(N, C, H, W)``, for training.

        Each scale is one fused kernel call (mean cs, or mean SSIM at the last
        scale); the 2x2 downsampling between scales, the clamp at 0, the powers
        and the product are torch operations that autograd differentiates.
        Values equal :func:`pipeline.ms_ssim` with ``channel_axis``.

        Parameters
        ----------
        data_range : float
            The images' value range ``L``; required.
        reduction : {"mean", "sum", "none"}
            Mean or sum of the per-image losses, or the ``(N,)`` losses.
        weights : sequence of float, optional
            One exponent per scale (default Wang's five); fewer weights, fewer scales.
        profile, window, win_size, sigma, k1, k2, covariance
            As in :func:`pipeline.ms_ssim`.
        """

        def __init__(
            self,
            *,
            data_range: float,
            reduction: str = "mean",
            weights: Sequence[float] | None = None,
            profile: str = "wang2004",
            window: str | None = None,
            win_size: int | None = None,
            sigma: float | None = None,
            k1: float | None = None,
            k2: float | None = None,
            covariance: str | None = None,
        ) -> None:
            super().__init__()
            self.options = resolve_options(
                data_range=data_range,
                reduction=reduction,
                profile=profile,
                multiscale=True,
                scale_weights=weights,
                params=window_params(window, win_size, sigma, k1, k2, covariance),
                name="MSSSIMLoss",
            )
            self.data_range = float(data_range)
            self.reduction = reduction

        def forward(self, input: Any, target: Any) -> Any:
            per_image = ms_ssim_per_image(input, target, self.options, name="MSSSIMLoss")
            return reduce_batch(1 - per_image, self.reduction)

        def extra_repr(self) -> str:
            return (
                f"data_range={self.data_range}, reduction={self.reduction!r}, "
                f"scales={len(self.options.scale_weights or ())}"
            )

    classes: dict[str, type] = {"SSIMLoss": SSIMLoss, "MSSSIMLoss": MSSSIMLoss}
    for name, cls in classes.items():
        # Found again as pipeline.nn.<name> (pickling a module, printing its type).
        cls.__module__ = "pipeline.nn"
        cls.__qualname__ = name
    return classes
