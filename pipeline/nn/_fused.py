"""The fused autograd function: per-plane mean SSIM (or cs) with its own backward.

No autograd graph is recorded for the SSIM arithmetic itself: the forward hands
the tensors' memory to a compiled kernel (NumPy views of CPU tensors, CuPy views
of CUDA tensors through DLPack), which returns one value per plane and the
three gradient maps per plane that the backward needs; the backward runs the
matching kernel. CPU: :mod:`pipeline.kernels.cpu.loss` (numba); CUDA:
:mod:`pipeline.kernels.gpu.loss` with the same signature, where CuPy imports.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from pipeline.nn._checks import LossOptions

__all__ = ["fused_ssim", "kernel_module"]


def kernel_module(tensor: Any) -> ModuleType:
    """The kernels for ``tensor``'s device; a clear error where none exists."""
    if tensor.device.type == "cpu":
        from pipeline.kernels.cpu import loss as cpu_loss

        return cpu_loss
    if tensor.device.type != "cuda":
        raise ValueError(
            f"input is on device {tensor.device}; the SSIM losses run on CPU and CUDA tensors"
        )
    try:
        importlib.import_module("cupy")
    except ImportError as error:
        raise RuntimeError(
            "input is a CUDA tensor, and the CUDA SSIM loss kernels need CuPy, which does not "
            f"import here ({error}); install the 'gpu' extra or move the tensors to the CPU"
        ) from None
    from pipeline.kernels.gpu import loss as gpu_loss

    return gpu_loss


def _planes(tensor: Any, spatial_ndim: int) -> Any:
    """A ``(P, *spatial)`` array sharing ``tensor``'s memory (copied only if not contiguous)."""
    data = tensor.detach().contiguous()
    data = data.reshape(-1, *data.shape[data.ndim - spatial_ndim :])
    if data.device.type == "cpu":
        return data.numpy()
    from pipeline.kernels.backend import from_dlpack

    return from_dlpack(data)


@contextlib.contextmanager
def _on_device(tensor: Any) -> Iterator[None]:
    """CUDA tensors: run CuPy launches on the tensor's GPU and on torch's current stream.

    CuPy launches on its own current stream otherwise, which is not ordered after the
    kernels torch queued to produce the tensor (nor before the ones that consume the
    result).
    """
    if tensor.device.type != "cuda":
        yield
        return
    import torch

    from pipeline.kernels.backend import on_stream

    stream = torch.cuda.current_stream(tensor.device)
    with on_stream(tensor.device.index, stream.cuda_stream):
        yield


def _to_tensor(array: Any, like: Any) -> Any:
    import torch

    if like.device.type == "cpu":
        return torch.from_numpy(array)
    return torch.from_dlpack(array)


@functools.cache
def _function_class() -> Any:
    import torch
    from torch.autograd.function import once_differentiable

    class FusedSSIM(torch.autograd.Function):
        """Per-plane mean 'valid' SSIM (or cs) of ``input`` against ``target``."""

        @staticmethod
        def forward(ctx: Any, input: Any, target: Any, options: LossOptions, cs_only: bool) -> Any:
            module = kernel_module(input)
            spatial_ndim = input.ndim - 2
            x = _planes(target, spatial_ndim)
            y = _planes(input, spatial_ndim)
            with _on_device(input):
                values, saved = module.ssim_forward(
                    x,
                    y,
                    weights=options.weights,
                    c1=options.c1,
                    c2=options.c2,
                    cov_norm=options.cov_norm(spatial_ndim),
                    cs_only=cs_only,
                )
            # The tensors themselves are saved so that autograd refuses a backward after
            # an in-place change of either; the arrays are views of their memory.
            ctx.save_for_backward(input, target)
            ctx.arrays = (x, y, saved)
            ctx.module = module
            ctx.options = options
            return _to_tensor(values, input).to(input.dtype)

        @staticmethod
        @once_differentiable
        def backward(ctx: Any, grad_values: Any) -> Any:
            input, _ = ctx.saved_tensors
            x, y, saved = ctx.arrays
            grad_planes = _planes(grad_values.to(torch.float64), 1).reshape(-1)
            with _on_device(input):
                grad = ctx.module.ssim_backward(
                    x, y, saved, grad_planes, weights=ctx.options.weights
                )
            return _to_tensor(grad, input).reshape(input.shape), None, None, None

    return FusedSSIM


def fused_ssim(input: Any, target: Any, options: LossOptions, *, cs_only: bool = False) -> Any:
    """``(N * C,)`` per-plane mean SSIM (or mean cs) of checked tensors, differentiable in input."""
    return _function_class().apply(input, target, options, cs_only)
