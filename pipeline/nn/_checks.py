"""Checks on the tensors and options of the losses, all before any kernel runs.

Every message names the argument at fault (``input``, ``target``, ``data_range``,
...), what it got and what it expects. The options are resolved once into a
frozen :class:`LossOptions` that the modules keep and the autograd function reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.metrics.checks import check_data_range
from pipeline.metrics.multiscale import check_msssim_size, resolve_weights
from pipeline.metrics.profiles import resolve_params

__all__ = ["REDUCTIONS", "LossOptions", "check_pair", "resolve_options"]

REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True, eq=False)
class LossOptions:
    """What the kernels need, resolved from a profile and its overrides."""

    weights: np.ndarray
    c1: float
    c2: float
    cov_norm_2d: float
    cov_norm_3d: float
    win_size: int
    reduction: str
    scale_weights: tuple[float, ...] | None = None

    def cov_norm(self, spatial_ndim: int) -> float:
        return self.cov_norm_2d if spatial_ndim == 2 else self.cov_norm_3d


def resolve_options(
    *,
    data_range: Any,
    reduction: str,
    profile: str,
    multiscale: bool,
    scale_weights: Sequence[float] | None = None,
    params: dict[str, Any],
    name: str,
) -> LossOptions:
    """Checked options of :func:`pipeline.nn.ssim` or (``multiscale``) ``ms_ssim``.

    ``name`` is the function or class the messages speak for.
    """
    if data_range is None:
        raise TypeError(
            f"{name}: data_range is required (the value range of the images, e.g. 1.0 for "
            "images in [0, 1] or 255.0 for [0, 255]); it is never guessed from float tensors"
        )
    data_range = check_data_range(data_range)
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{name}: reduction must be one of {', '.join(map(repr, REDUCTIONS))} "
            f"(got {reduction!r})"
        )
    chosen_profile, chosen = resolve_params(profile, **params)
    if chosen_profile.downsample is not None:
        raise ValueError(
            f"{name} does not support profile {profile!r} (it downsamples the images first, "
            "which is not differentiated here); use profile='wang2004' or 'skimage'"
        )
    assert data_range is not None  # checked above; for the type checker
    c1, c2 = chosen.constants(data_range)
    weights = resolve_weights(scale_weights) if multiscale else None
    return LossOptions(
        weights=chosen.weights(),
        c1=c1,
        c2=c2,
        cov_norm_2d=chosen.cov_norm(2),
        cov_norm_3d=chosen.cov_norm(3),
        win_size=chosen.win_size,
        reduction=reduction,
        scale_weights=weights,
    )


def check_pair(input: Any, target: Any, options: LossOptions, *, name: str) -> None:
    """Refuse a pair of tensors the loss cannot score, naming the argument at fault."""
    import torch

    for label, tensor in (("input", input), ("target", target)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor (got {type(tensor).__name__})")
    multiscale = options.scale_weights is not None
    allowed = (4,) if multiscale else (4, 5)
    layout = "(N, C, H, W)" if multiscale else "(N, C, H, W) or volumes (N, C, D, H, W)"
    for label, tensor in (("input", input), ("target", target)):
        if tensor.ndim not in allowed:
            raise ValueError(
                f"{name}: {label} must be a batch {layout} (got a tensor of shape "
                f"{tuple(tensor.shape)}, {tensor.ndim} dims)"
            )
    if input.shape != target.shape:
        raise ValueError(
            f"{name}: input and target must have the same shape (got {tuple(input.shape)} "
            f"and {tuple(target.shape)})"
        )
    if input.device != target.device:
        raise ValueError(
            f"{name}: input and target must be on one device (got input on {input.device}, "
            f"target on {target.device})"
        )
    if input.ndim == 5 and input.device.type != "cpu":
        raise ValueError(
            f"{name}: 3-D volumes (N, C, D, H, W) are scored on CPU tensors only (got input on "
            f"{input.device}); move them with .cpu(), or score 2-D slices on the device"
        )
    for label, tensor in (("input", input), ("target", target)):
        if tensor.dtype not in (torch.float32, torch.float64):
            raise TypeError(
                f"{name}: {label} must be float32 or float64 (got {tensor.dtype}); convert it "
                "with .float() or .double()"
            )
    if input.dtype != target.dtype:
        raise TypeError(
            f"{name}: input and target must have one dtype (got {input.dtype} and {target.dtype})"
        )
    if target.requires_grad:
        raise ValueError(
            f"{name}: target requires grad, but the gradient is taken with respect to input "
            "only; pass target.detach() (SSIM is symmetric: swap the arguments to "
            "differentiate the other image)"
        )
    spatial = tuple(input.shape[2:])
    if multiscale:
        assert options.scale_weights is not None
        try:
            check_msssim_size(spatial, len(options.scale_weights), options.win_size)
        except ValueError as error:
            raise ValueError(f"{name}: input is too small: {error}") from None
    elif min(spatial) < options.win_size:
        raise ValueError(
            f"{name}: input is smaller than the window: win_size {options.win_size} needs "
            f"every spatial side >= {options.win_size} (got shape {tuple(input.shape)}); "
            "use a smaller odd win_size or larger images"
        )
    for label, tensor in (("input", input), ("target", target)):
        # A NaN or Inf makes the sum NaN or Inf, so a finite sum proves every pixel finite
        # at the cost of one read; only a non-finite sum (which an overflow can also give)
        # pays for the element-wise test.
        if math.isfinite(float(tensor.detach().sum())):
            continue
        finite = torch.isfinite(tensor.detach())
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ValueError(
                f"{name}: {label} contains {bad} NaN or Inf value(s); SSIM needs finite pixels"
            )
