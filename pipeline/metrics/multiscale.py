"""Multi-scale SSIM (Wang, Simoncelli, Bovik 2003) of one image pair held in memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module
from pipeline.kernels.cpu.combine import float32_holds
from pipeline.kernels.dispatch import scale_mean
from pipeline.kernels.multiscale import (
    MSSSIM_WEIGHTS,
    max_scales,
    min_side_for_scales,
    pyramid_ms_ssim,
)
from pipeline.metrics.checks import (
    as_image_array,
    check_pixels,
    check_same_shape,
    normalize_channel_axis,
    resolve_data_range,
)
from pipeline.metrics.colour import check_color_mode, to_luma
from pipeline.metrics.profiles import SSIMParams, resolve_params

__all__ = ["MSSSIM_WEIGHTS", "check_msssim_size", "ms_ssim", "resolve_weights"]


def resolve_weights(weights: Sequence[float] | None) -> tuple[float, ...]:
    """The per-scale exponents: Wang's five by default; their count is the number of scales."""
    if weights is None:
        return MSSSIM_WEIGHTS
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence | np.ndarray):
        raise TypeError(f"weights must be a sequence of numbers, one per scale (got {weights!r})")
    values = list(weights)
    if not values:
        raise ValueError("weights must hold at least one number (one per scale; got none)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TypeError(f"weights must be numbers (got {value!r} in {values!r})")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"weights must be finite and >= 0 (got {values!r})")
    return tuple(float(v) for v in values)


def check_msssim_size(spatial_shape: tuple[int, ...], scales: int, win_size: int) -> None:
    """Refuse images too small for ``scales`` scales with a ``win_size`` window."""
    need = min_side_for_scales(scales, win_size)
    smallest = min(spatial_shape)
    if smallest < need:
        fits = max_scales(smallest, win_size)
        hint = (
            f"this image allows at most {fits} scale(s): pass that many weights "
            f"(e.g. weights=weights[:{fits}])"
            if fits
            else "not even one scale fits: use a smaller odd win_size"
        )
        raise ValueError(
            f"ms_ssim with {scales} scales and win_size {win_size} needs every spatial side "
            f">= {need} = (win_size - 1) * 2**(scales - 1) + 1 (got image shape "
            f"{tuple(spatial_shape)}); {hint}"
        )


def ms_ssim(
    x: Any,
    y: Any,
    *,
    data_range: float | None = None,
    weights: Sequence[float] | None = None,
    channel_axis: int | None = None,
    color_mode: str = "channels",
    profile: str = "wang2004",
    engine: str = "auto",
    **params: Any,
) -> float:
    """Multi-scale structural similarity of two images.

    At scale ``j = 1..M`` (``M = len(weights)``) the mean of the 'valid' cs map
    is taken; at the last scale the mean of the SSIM map. Between scales both
    images are halved by Wang's ``msssim.m`` rule (a 2x2 mean, symmetric
    extension on odd sides). The score is
    ``relu(ssim_M)^w_M * prod_{j<M} relu(cs_j)^w_j``.

    Parameters
    ----------
    x, y : array_like
        Reference and distorted image, NumPy or CuPy, same shape; 2-D or N-D
        (every spatial axis is halved between scales).
    data_range : float, optional
        ``L`` in ``C1 = (K1 L)^2``; integer dtypes default to their full range,
        floating-point input must give it.
    weights : sequence of float, optional
        One exponent per scale; default Wang's
        ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. Fewer weights mean fewer
        scales (and a smaller minimum image size).
    channel_axis : int, optional
        Axis of colour channels: MS-SSIM per channel, then the mean
        (``color_mode="channels"``), or MS-SSIM of BT.601 luma (``"luma"``).
    color_mode : str
        ``"channels"`` or ``"luma"``.
    profile : str
        Window and covariance defaults per scale: ``"wang2004"`` (Gaussian 11,
        sigma 1.5, population covariance: what ``msssim.m``, pytorch-msssim and
        TensorFlow use) or ``"skimage"``. ``"wang2009"`` is refused: MS-SSIM has
        its own downsampling.
    engine : str
        ``"auto"`` or ``"reference"`` (float64 oracle), as in :func:`pipeline.ssim`.
        Where the fused CPU kernel runs, each scale's mean comes from its float64 sums
        of deficits (``1 - cs``, ``1 - ssim`` at the last scale), not from rounded
        float32 maps, and the coarse scales (valid maps of at most 4096 pixels, too few
        to average the float32 kernel's per-pixel error away) are computed in float64.
    **params
        Overrides of the profile's parameters: ``window``, ``win_size``,
        ``sigma``, ``k1``, ``k2``, ``covariance``.

    Returns
    -------
    float
        In ``[0, 1]``; 1 for identical images.

    Raises
    ------
    ValueError
        If a spatial side is below ``(win_size - 1) * 2**(scales - 1) + 1``
        (161 for the defaults): the window would not fit at the coarsest scale.

    Notes
    -----
    *Odd sides.* ``msssim.m`` filters with ``ones(2)/4`` (``'symmetric'``) and keeps
    ``x(1:2:end, 1:2:end)``: an odd side ``n`` becomes ``(n + 1) / 2`` and its last
    sample is copied. TensorFlow's ``ssim_multiscale`` pads odd sides at the end
    with ``SYMMETRIC`` before a 2x2 'VALID' average pool, which is the same.
    pytorch-msssim instead calls ``avg_pool2d(padding=n % 2)``: one *zero* sample
    on both ends of an odd side, counted in the mean, which shifts the sampling
    grid by one and darkens the first and last samples; its scores differ from
    this function (and from TF) whenever a side is odd at any scale above the
    first. On sides divisible by ``2**(M - 1)`` all three agree.

    *Negative cs.* Each mean cs and the last mean SSIM are clamped at 0 before the
    fractional power (as pytorch-msssim and TensorFlow do; ``msssim.m`` would
    return a complex number). No NaN is produced.

    References
    ----------
    Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for
    image quality assessment", 37th Asilomar Conference on Signals, Systems and
    Computers, 2003, pp. 1398-1402.

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (176, 176), dtype=np.uint8)
    >>> sp.ms_ssim(x, x)
    1.0
    """
    x = as_image_array(x, "x")
    y = as_image_array(y, "y")
    check_same_shape(x, y)
    scale_weights = resolve_weights(weights)
    chosen_profile, chosen = resolve_params(profile, **params)
    if chosen_profile.downsample is not None:
        raise ValueError(
            f"ms_ssim does not take profile {profile!r}: it downsamples the images itself "
            "and MS-SSIM has its own scales; use profile='wang2004'"
        )
    data_range, _ = resolve_data_range(data_range, x.dtype, y.dtype)
    axis = normalize_channel_axis(channel_axis, x.ndim)
    check_color_mode(color_mode, axis, None if axis is None else x.shape[axis])
    spatial = x.shape if axis is None else x.shape[:axis] + x.shape[axis + 1 :]
    check_msssim_size(spatial, len(scale_weights), chosen.win_size)
    magnitude = max(check_pixels(x, "x"), check_pixels(y, "y"))
    if engine in ("auto", "fused", "gpu") and not float32_holds(
        *chosen.constants(data_range), magnitude
    ):
        engine = "reference"  # float32 cannot hold these numbers: the float64 reference can

    if axis is not None and color_mode == "luma":
        x, y, axis = to_luma(x, axis), to_luma(y, axis), None
    if axis is None:
        return _ms_ssim_plane(x, y, chosen, data_range, scale_weights, engine)
    xp = array_module(x, y)
    # One copy of each image with its channels first, each channel a contiguous view of it
    # (as pipeline.ssim takes them): a third of the time of numpy.take per channel.
    stacked_x = xp.ascontiguousarray(xp.moveaxis(x, axis, 0))
    stacked_y = xp.ascontiguousarray(xp.moveaxis(y, axis, 0))
    per_channel = [
        _ms_ssim_plane(a, b, chosen, data_range, scale_weights, engine)
        for a, b in zip(stacked_x, stacked_y, strict=True)
    ]
    return float(np.mean(per_channel))


def _ms_ssim_plane(
    x: Any,
    y: Any,
    params: SSIMParams,
    data_range: float,
    weights: tuple[float, ...],
    engine: str,
) -> float:
    """MS-SSIM of one channel (no channel axis).

    Each scale needs one mean, and the fused engine gives it from a float64 sum of
    deficits (``1 - cs``, then ``1 - ssim`` at the last scale) without storing a map;
    the other engines average their map in float64. Where the fused engine runs,
    scales whose valid map has at most ``PRECISE_PIXELS`` pixels are computed in
    float64 instead (:func:`pipeline.kernels.multiscale.precise_means`): the float32
    kernel's per-pixel error does not average away over so few pixels, and the cost
    of so small a scale is negligible.
    """
    args = params.kernel_args(data_range, x.ndim)

    def mean(a: Any, b: Any, name: str, precise: bool) -> float:
        return scale_mean(a, b, name, **args, engine=engine, precise=precise)

    return pyramid_ms_ssim(x, y, weights, params.win_size, mean)
