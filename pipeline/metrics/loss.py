"""SSIM as a training loss: ``1 - SSIM`` and its analytic gradient (NumPy or CuPy)."""

from __future__ import annotations

from typing import Any, Literal, overload

from pipeline.kernels.backend import array_module
from pipeline.kernels.dispatch import value_and_grad as block_value_and_grad
from pipeline.metrics.checks import (
    as_image_array,
    check_finite,
    check_same_shape,
    check_window_fits,
    normalize_channel_axis,
    resolve_data_range,
)
from pipeline.metrics.profiles import resolve_params

__all__ = ["ssim_loss"]


@overload
def ssim_loss(
    x: Any,
    y: Any,
    *,
    data_range: float | None = ...,
    profile: str = ...,
    channel_axis: int | None = ...,
    return_grad: Literal[True] = ...,
    **params: Any,
) -> tuple[float, Any]: ...
@overload
def ssim_loss(
    x: Any,
    y: Any,
    *,
    data_range: float | None = ...,
    profile: str = ...,
    channel_axis: int | None = ...,
    return_grad: Literal[False],
    **params: Any,
) -> float: ...
def ssim_loss(
    x: Any,
    y: Any,
    *,
    data_range: float | None = None,
    profile: str = "wang2004",
    channel_axis: int | None = None,
    return_grad: bool = True,
    **params: Any,
) -> float | tuple[float, Any]:
    """``1 - SSIM(x, y)`` and its gradient with respect to the generated image ``y``.

    SSIM here is exactly the score :func:`pipeline.ssim` reports: the mean of
    the 'valid' SSIM map (per channel, then averaged), in float64.

    Parameters
    ----------
    x : array_like
        Reference (target) image, NumPy or CuPy.
    y : array_like
        Generated image, same shape; the gradient is taken with respect to it.
    data_range : float, optional
        ``L``; integer dtypes default to their full range, floats must give it.
    profile : str
        ``"wang2004"`` (default) or ``"skimage"``; ``"wang2009"`` is refused (its
        automatic downsampling is not differentiated here).
    channel_axis : int, optional
        Axis of colour channels: the loss is ``1 -`` the mean of per-channel SSIM.
    return_grad : bool
        Return ``(loss, grad)`` (default) or the loss alone.
    **params
        Overrides of the profile: ``window``, ``win_size``, ``sigma``, ``k1``,
        ``k2``, ``covariance``.

    Returns
    -------
    loss : float
        ``1 - SSIM``, in ``[0, 2]``.
    grad : ndarray
        ``d loss / d y``, float64, same shape and array module as ``y``.

    Notes
    -----
    scikit-image's ``structural_similarity(..., gradient=True)`` returns the
    gradient (w.r.t. ``im2``) of a different quantity: it filters the *whole*
    image with ``mode='reflect'``, sums the SSIM map over all ``N`` pixels
    (border positions included, divided by ``N``) and applies the same
    reflect-mode filter in the chain rule, while the score it returns is the mean
    over the interior only. Where every window touching pixel ``q`` lies inside
    the image (``q`` at least ``2 * (win_size // 2)`` from every edge) both
    formulas sum the same terms, so there
    ``our_grad_ssim = skimage_grad * N / M`` exactly, with ``M`` the number of
    valid positions. Nearer the edges they differ; ours is the exact gradient of
    the reported score (checked by finite differences). For
    ``covariance="sample"`` scikit-image's formula also omits the ``N/(N-1)``
    factor on the variance terms, so it is not the gradient of its own score;
    ours includes it.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
    assessment: from error visibility to structural similarity", IEEE TIP 13(4),
    600-612, 2004.
    A. N. Avanaki, "Exact global histogram specification optimized for structural
    similarity", Optical Review 16, 613-621, 2009 (the gradient).

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> rng = np.random.default_rng(0)
    >>> target = rng.uniform(0, 1, (32, 32))
    >>> image = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    >>> loss, grad = sp.ssim_loss(target, image, data_range=1.0)
    >>> new_loss = sp.ssim_loss(target, image - 0.05 * grad, data_range=1.0, return_grad=False)
    >>> bool(new_loss < loss)
    True
    """
    x = as_image_array(x, "x")
    y = as_image_array(y, "y")
    check_same_shape(x, y)
    chosen_profile, chosen = resolve_params(profile, **params)
    if chosen_profile.downsample is not None:
        raise ValueError(
            f"ssim_loss does not support profile {profile!r} (it downsamples the images "
            "first, which is not differentiated here); use profile='wang2004' or 'skimage'"
        )
    if not isinstance(return_grad, bool):
        raise TypeError(f"return_grad must be True or False (got {return_grad!r})")
    data_range, _ = resolve_data_range(data_range, x.dtype, y.dtype)
    axis = normalize_channel_axis(channel_axis, x.ndim)
    spatial = x.shape if axis is None else x.shape[:axis] + x.shape[axis + 1 :]
    check_window_fits(spatial, chosen.win_size)
    check_finite(x, "x")
    check_finite(y, "y")

    xp = array_module(x, y)
    x64 = x.astype(xp.float64, copy=False)
    y64 = y.astype(xp.float64, copy=False)
    c1, c2 = chosen.constants(data_range)
    weights, cov_norm = chosen.weights(), chosen.cov_norm(len(spatial))

    def value_and_grad(x_plane: Any, y_plane: Any) -> tuple[float, Any]:
        return block_value_and_grad(
            x_plane, y_plane, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm
        )

    if axis is None:
        value, grad = value_and_grad(x64, y64)
    else:
        n_channels = x.shape[axis]
        parts = [
            value_and_grad(xp.take(x64, c, axis=axis), xp.take(y64, c, axis=axis))
            for c in range(n_channels)
        ]
        value = sum(v for v, _ in parts) / n_channels
        grad = xp.stack([g for _, g in parts], axis=axis) / n_channels
    loss = 1.0 - value
    return (loss, -grad) if return_grad else loss
