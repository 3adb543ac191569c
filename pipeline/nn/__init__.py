"""SSIM and MS-SSIM training losses for PyTorch (torch is imported only here, lazily).

``SSIMLoss`` and ``MSSSIMLoss`` are ``torch.nn.Module`` losses, ``loss(input,
target)`` on batches ``(N, C, H, W)`` (and volumes ``(N, C, D, H, W)`` for
SSIM), returning ``1 - SSIM`` / ``1 - MS-SSIM``; :func:`ssim` and :func:`ms_ssim`
return the index itself. Values equal :func:`pipeline.ssim` and
:func:`pipeline.ms_ssim`; forward and backward are fused compiled kernels
(numba on the CPU, CUDA through CuPy for CUDA tensors). Importing this package
does not import torch: the module classes are built on first access.
"""

from __future__ import annotations

from typing import Any

from pipeline.nn.functional import ms_ssim, ssim

__all__ = ["MSSSIMLoss", "SSIMLoss", "ms_ssim", "ssim"]


def __getattr__(name: str) -> Any:
    if name in ("SSIMLoss", "MSSSIMLoss"):
        from pipeline.nn.modules import loss_classes

        return loss_classes()[name]
    raise AttributeError(f"module 'pipeline.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "MSSSIMLoss", "SSIMLoss"])
