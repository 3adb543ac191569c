"""Optional PyTorch wrapper of :func:`pipeline.ssim_loss` (torch is imported lazily).

PyTorch is not a dependency of ssim-pipeline and ``import pipeline`` never
imports it; this module imports it only when :func:`ssim_loss_torch` is called.
The forward pass runs :func:`pipeline.ssim_loss` on the tensor's data (NumPy on
the CPU, CuPy through DLPack for CUDA tensors) and saves the analytic gradient;
the backward pass scales it by the incoming gradient. Only the generated image
``y`` gets a gradient; the reference ``x`` is treated as a constant.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["ssim_loss_torch"]


def _to_array(tensor: Any) -> Any:
    data = tensor.detach()
    if data.is_cuda:
        from pipeline.kernels.backend import from_dlpack

        return from_dlpack(data.contiguous())
    return data.cpu().numpy()


@functools.cache
def _function_class() -> Any:
    import torch

    from pipeline.metrics.loss import ssim_loss

    class SSIMLossFunction(torch.autograd.Function):
        """``1 - SSIM(x, y)`` with the analytic gradient w.r.t. ``y``."""

        @staticmethod
        def forward(ctx: Any, x: Any, y: Any, options: dict[str, Any]) -> Any:
            loss, grad = ssim_loss(_to_array(x), _to_array(y), **options)
            ctx.save_for_backward(torch.as_tensor(grad, device=y.device).to(y.dtype))
            return torch.tensor(loss, dtype=y.dtype, device=y.device)

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            (grad,) = ctx.saved_tensors
            return None, grad_output * grad, None

    return SSIMLossFunction


def ssim_loss_torch(
    x: Any,
    y: Any,
    *,
    data_range: float,
    profile: str = "wang2004",
    channel_axis: int | None = None,
    **params: Any,
) -> Any:
    """``1 - SSIM(x, y)`` as a differentiable scalar tensor (gradient w.r.t. ``y``).

    Parameters
    ----------
    x, y : torch.Tensor
        Reference and generated image of the same shape, laid out as
        :func:`pipeline.ssim_loss` expects (spatial axes plus an optional channel
        axis). For a batch ``(N, C, H, W)`` pass ``y.reshape(-1, H, W)`` with
        ``channel_axis=0``: the mean over the ``N * C`` planes is the batch mean of
        the per-image channel means.
    data_range, profile, channel_axis, **params
        As in :func:`pipeline.ssim_loss`; ``data_range`` is required here because
        tensors in training are usually floating point.

    Returns
    -------
    torch.Tensor
        A 0-d tensor of ``y``'s dtype and device.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> from pipeline.nn.torch_loss import ssim_loss_torch  # doctest: +SKIP
    >>> loss = ssim_loss_torch(target, output, data_range=1.0)  # doctest: +SKIP
    >>> loss.backward()  # doctest: +SKIP
    """
    options = {
        "data_range": data_range,
        "profile": profile,
        "channel_axis": channel_axis,
        **params,
    }
    return _function_class().apply(x, y, options)
