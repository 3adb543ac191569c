"""Functional SSIM and MS-SSIM of batched tensors, differentiable with respect to ``input``.

``ssim`` and ``ms_ssim`` return the index (1 for identical images); the loss
modules of :mod:`pipeline.nn.modules` return ``1 -`` it. Both score each image
of a batch ``(N, C, H, W)`` as :func:`pipeline.ssim` / :func:`pipeline.ms_ssim`
with ``channel_axis`` do: per channel, then the mean over channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.nn._checks import LossOptions, check_pair, resolve_options
from pipeline.nn._fused import fused_ssim

__all__ = ["ms_ssim", "ssim"]


def ssim(
    input: Any,
    target: Any,
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
) -> Any:
    """Mean 'valid' SSIM of each image of a batch, differentiable with respect to ``input``.

    Parameters
    ----------
    input : torch.Tensor
        Generated images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``, float32 or
        float64, on the CPU or a CUDA device. The gradient flows to it.
    target : torch.Tensor
        Reference images, same shape, dtype and device; must not require grad.
    data_range : float
        ``L`` in ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` (1.0 for images in [0, 1]).
        Required: it is never guessed from float tensors.
    reduction : {"mean", "sum", "none"}
        Over the batch: the mean or sum of the per-image values, or the ``(N,)``
        values themselves (each the mean over the image's channels).
    profile : str
        ``"wang2004"`` (Gaussian 11x11, sigma 1.5, population covariance) or
        ``"skimage"`` (uniform 7x7, sample covariance), as in :func:`pipeline.ssim`.
    window, win_size, sigma, k1, k2, covariance
        Overrides of the profile's parameters (``None`` keeps the profile's).

    Returns
    -------
    torch.Tensor
        A 0-d tensor (``"mean"``, ``"sum"``) or ``(N,)``, in ``input``'s dtype.

    Raises
    ------
    ValueError, TypeError
        Before any kernel runs, naming the argument: shapes differ, not 4-D/5-D,
        smaller than the window, not float32/float64, NaN or Inf, two devices,
        ``data_range`` missing or not positive, ``target`` requiring grad.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> from pipeline.nn import ssim  # doctest: +SKIP
    >>> target = torch.rand(4, 3, 64, 64, dtype=torch.float64)  # doctest: +SKIP
    >>> output = (target + 0.05 * torch.randn_like(target)).requires_grad_()  # doctest: +SKIP
    >>> ssim(output, target, data_range=1.0).backward()  # doctest: +SKIP
    """
    options = resolve_options(
        data_range=data_range,
        reduction=reduction,
        profile=profile,
        multiscale=False,
        params=window_params(window, win_size, sigma, k1, k2, covariance),
        name="ssim",
    )
    return reduce_batch(ssim_per_image(input, target, options, name="ssim"), options.reduction)


def ms_ssim(
    input: Any,
    target: Any,
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
) -> Any:
    """Multi-scale SSIM of each image of a batch ``(N, C, H, W)``, differentiable in ``input``.

    As :func:`pipeline.ms_ssim`: at every scale but the last the mean cs, at the
    last the mean SSIM, each clamped at 0 and raised to its weight; between
    scales both images are halved by a 2x2 mean (an odd side keeps its last
    sample, ``msssim.m``'s symmetric extension: replicate padding then
    ``avg_pool2d``). Each scale is one fused kernel call; the downsampling, the
    clamp, the powers and the product over scales are ordinary torch operations on
    small tensors, differentiated by autograd.

    Parameters
    ----------
    input, target, data_range, reduction, profile, window, win_size, sigma, k1, k2, covariance
        As in :func:`ssim` (2-D batches only).
    weights : sequence of float, optional
        One exponent per scale; default Wang's ``(0.0448, 0.2856, 0.3001, 0.2363,
        0.1333)``. Fewer weights mean fewer scales and a smaller minimum size.

    Returns
    -------
    torch.Tensor
        A 0-d tensor or ``(N,)``, in ``input``'s dtype.

    Raises
    ------
    ValueError
        Also when a side is below ``(win_size - 1) * 2**(scales - 1) + 1`` (161 for
        the defaults); the message says how many scales the images allow.
    """
    options = resolve_options(
        data_range=data_range,
        reduction=reduction,
        profile=profile,
        multiscale=True,
        scale_weights=weights,
        params=window_params(window, win_size, sigma, k1, k2, covariance),
        name="ms_ssim",
    )
    return reduce_batch(
        ms_ssim_per_image(input, target, options, name="ms_ssim"), options.reduction
    )


def window_params(
    window: str | None,
    win_size: int | None,
    sigma: float | None,
    k1: float | None,
    k2: float | None,
    covariance: str | None,
) -> dict[str, Any]:
    """The profile overrides as :func:`pipeline.nn._checks.resolve_options` takes them."""
    return {
        "window": window,
        "win_size": win_size,
        "sigma": sigma,
        "k1": k1,
        "k2": k2,
        "covariance": covariance,
    }


def reduce_batch(per_image: Any, reduction: str) -> Any:
    """``"mean"``, ``"sum"`` or ``"none"`` over the batch axis."""
    if reduction == "mean":
        return per_image.mean()
    if reduction == "sum":
        return per_image.sum()
    return per_image


def ssim_per_image(input: Any, target: Any, options: LossOptions, *, name: str) -> Any:
    """``(N,)`` mean SSIM of each image (mean over channels) of checked options."""
    check_pair(input, target, options, name=name)
    per_plane = fused_ssim(input, target, options)
    return per_plane.reshape(input.shape[0], input.shape[1]).mean(dim=1)


def ms_ssim_per_image(input: Any, target: Any, options: LossOptions, *, name: str) -> Any:
    """``(N,)`` MS-SSIM of each image (per channel, then the mean over channels)."""
    import torch

    check_pair(input, target, options, name=name)
    assert options.scale_weights is not None  # set by resolve_options for ms_ssim
    n_scales = len(options.scale_weights)
    dtype = input.dtype
    factors = []
    for scale, weight in enumerate(options.scale_weights):
        if scale > 0:
            # The coarser scales are held in float64: a float32 mean of four pixels far
            # from zero (1000 + detail) would round away detail pipeline.ms_ssim keeps.
            input, target = _halve(input.double()), _halve(target.double())
        per_plane = fused_ssim(input, target, options, cs_only=scale < n_scales - 1)
        factors.append(_clamped_power(per_plane, weight))
    per_plane = torch.stack([f.to(dtype) for f in factors]).prod(dim=0)
    return per_plane.reshape(input.shape[0], input.shape[1]).mean(dim=1)


def _halve(images: Any) -> Any:
    """``msssim.m``'s 2x2 mean with symmetric extension: an odd side keeps its last sample."""
    import torch.nn.functional as F

    height, width = images.shape[-2:]
    if height % 2 or width % 2:
        images = F.pad(images, (0, width % 2, 0, height % 2), mode="replicate")
    return F.avg_pool2d(images, kernel_size=2, stride=2)


def _clamped_power(values: Any, weight: float) -> Any:
    """``max(v, 0) ** weight`` with a zero (not NaN) gradient where ``v <= 0``.

    ``0 ** 0 = 1``, as :func:`pipeline.kernels.multiscale.combine_scales` has it.
    """
    import torch

    positive = values > 0
    powered = torch.where(positive, values, torch.ones_like(values)) ** weight
    floor = 1.0 if weight == 0 else 0.0
    return torch.where(positive, powered, torch.full_like(values, floor))
