"""SSIM of one image pair held in memory: the scores users compare across libraries."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pipeline.kernels import MAP_NAMES, block_score
from pipeline.kernels.backend import array_module
from pipeline.kernels.cpu.combine import float32_holds
from pipeline.kernels.dispatch import block_maps_and_score
from pipeline.kernels.downsample import box_downsample, downsampled_shape
from pipeline.metrics.checks import (
    as_image_array,
    check_pixels,
    check_same_shape,
    check_window_fits,
    normalize_channel_axis,
    resolve_data_range,
)
from pipeline.metrics.colour import check_color_mode, to_luma
from pipeline.metrics.profiles import Profile, SSIMParams, resolve_params

__all__ = ["ssim"]


def ssim(
    x: Any,
    y: Any,
    *,
    data_range: float | None = None,
    profile: str = "wang2004",
    channel_axis: int | None = None,
    color_mode: str = "channels",
    full: bool = False,
    engine: str = "auto",
    **params: Any,
) -> float | tuple[float, dict[str, Any]]:
    """Structural similarity of two images, the mean of the 'valid' SSIM map.

    Parameters
    ----------
    x, y : array_like
        Reference and distorted image, NumPy or CuPy, of the same shape and any
        integer or floating dtype; 2-D, or N-D (a volume gets an N-D window).
    data_range : float, optional
        ``L`` in ``C1 = (K1 L)^2``. Integer dtypes default to their full range
        (uint8: 255, uint16: 65535); floating-point input must give it.
        ``k1 * data_range`` and ``k2 * data_range`` must lie within
        [1e-150, 1e150] (C1, C2 normal float64 numbers), and float64 pixels
        within +-1e150 (their squares overflow beyond); else a ValueError.
    profile : str
        ``"wang2004"`` (Gaussian 11x11, sigma 1.5, population covariance),
        ``"skimage"`` (uniform 7x7, sample covariance) or ``"wang2009"``
        (wang2004 after ``ssim.m``'s automatic downsampling by
        ``max(1, round(min side / 256))``; maps are then on the reduced grid).
    channel_axis : int, optional
        Axis of colour channels; the score is then the mean of per-channel SSIM
        (``color_mode="channels"``) or the SSIM of BT.601 luma (``"luma"``).
    full : bool
        Also return the maps ``ssim``, ``luminance``, ``contrast``,
        ``structure`` and ``cs`` on the valid region, with the mean of the same
        pass: on the fused engine from float64 sums of the deficits ``1 - ssim``,
        so it may differ from the mean of the returned float32 ``ssim`` map by that
        map's rounding (up to 3e-8). Without ``full`` the score takes its own path,
        which stores no map: on the fused engine under a Gaussian window of odd
        size up to 11 (``wang2004``, ``wang2009``) the moments of ``x + y`` and
        ``x - y`` with a float64 comparison step, within 4e-9 of the exact mean on
        the tested adversarial pairs, near-identical textures included (uint8
        checkerboards 128+-50 against 128+-48; the maps path there carries
        ``var(x - y)`` as a sixth moment). The two scores are therefore not the
        same bits: they agree within 1e-8 (3e-9 the largest difference measured,
        from the maps path's float32 moments) and each is within that of the
        float64 reference engine. With the reference or GPU
        engine, or a uniform window (``skimage``), they are the same number.
    engine : str
        ``"auto"`` (the fastest path for the array type: ``"fused"`` for 2-D NumPy,
        ``"gpu"`` for 2-D CuPy, else ``"reference"``), ``"fused"`` (compiled CPU
        kernel, float32 maps), ``"gpu"`` (CuPy) or ``"reference"`` (the readable
        float64 oracle). The fused and GPU kernels compute in float32: where that
        cannot hold the numbers (pixels beyond 2^59, such as float32 near its limit
        or 64-bit integers with high bits set; C1 or C2 outside [2^-100, 2^120]) the
        reference computes the score instead, so every engine gives the float64 number.
    **params
        Overrides of the profile: ``window``, ``win_size``, ``sigma``, ``k1``,
        ``k2``, ``covariance``.

    Returns
    -------
    float, or (float, dict of arrays) with ``full=True``.

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
    assessment: from error visibility to structural similarity", IEEE TIP 13(4),
    600-612, 2004.

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    >>> sp.ssim(x, x)
    1.0
    >>> round(sp.ssim(x, 255 - x), 3)
    -0.966
    """
    x = as_image_array(x, "x")
    y = as_image_array(y, "y")
    check_same_shape(x, y)
    # The profile, its overrides, the data range and C1, C2 (refused beyond float64
    # before any arithmetic), resolved once per set of arguments.
    plan = _call_plan(profile, params, data_range, x.dtype, y.dtype)
    chosen_profile, chosen, data_range = plan.profile, plan.params, plan.data_range
    axis = normalize_channel_axis(channel_axis, x.ndim)
    check_color_mode(color_mode, axis, None if axis is None else x.shape[axis])
    spatial = x.shape if axis is None else x.shape[:axis] + x.shape[axis + 1 :]
    factor = chosen_profile.downsample_factor(spatial)
    _check_colour_without_axis(x.shape, axis, chosen.win_size)
    fitted = spatial if factor == 1 else downsampled_shape(spatial, factor)
    check_window_fits(fitted, chosen.win_size)
    magnitude = max(check_pixels(x, "x"), check_pixels(y, "y"))
    engine = _engine_for_range(engine, plan.c1, plan.c2, magnitude)

    if axis is not None and color_mode == "luma":
        x, y, axis = to_luma(x, axis), to_luma(y, axis), None
    if factor > 1:  # profile "wang2009": ssim.m's automatic downsampling
        spatial_axes = tuple(a for a in range(x.ndim) if a != axis)
        x, y = box_downsample(x, factor, spatial_axes), box_downsample(y, factor, spatial_axes)
    xp = array_module(x, y)
    if axis is None:
        channels = [(x, y)]
    else:
        # One copy of each image with its channels first, then each channel a
        # contiguous view of it: a third of the time of taking the channels one by
        # one (numpy.take along the last axis), the same pixels.
        stacked_x = xp.ascontiguousarray(xp.moveaxis(x, axis, 0))
        stacked_y = xp.ascontiguousarray(xp.moveaxis(y, axis, 0))
        channels = list(zip(stacked_x, stacked_y, strict=True))
    args = plan.kernel_args(x.ndim if axis is None else x.ndim - 1)
    if not full:
        # Score only: the fused kernel reduces its rows as it makes them, no map is stored.
        scores = [block_score(a, b, **args, engine=engine) for a, b in channels]
        return _mean_score(scores)
    # The mean of the same pass (the fused kernel's float64 sum of its deficits 1 - ssim,
    # not the mean of the float32 map); the call without full=True takes the score's own
    # path, within 1e-8 of it.
    found = [
        block_maps_and_score(a, b, **args, components=True, engine=engine) for a, b in channels
    ]
    per_channel = [maps for maps, _ in found]
    score = _mean_score([channel_score for _, channel_score in found])
    if axis is None:
        return score, {k: per_channel[0][k] for k in MAP_NAMES}
    return score, {k: xp.stack([m[k] for m in per_channel], axis=axis) for k in MAP_NAMES}


def _engine_for_range(engine: str, c1: float, c2: float, magnitude: float) -> str:
    """``engine``, or ``"reference"`` where float32 cannot hold these pixels and constants.

    The fused and GPU kernels compute in float32; pixels beyond 2^59 (float32 near
    its limit, 64-bit integers with high bits set) or a data range that puts C1/C2
    outside float32 would give NaN there, so the float64 reference scores the pair.
    """
    if engine not in ("auto", "fused", "gpu"):
        return engine  # "reference", or a name the dispatcher refuses
    return engine if float32_holds(c1, c2, magnitude) else "reference"


def _mean_score(scores: list[float]) -> float:
    """The mean of the channels' scores: one channel's as it is, else numpy.mean's number.

    ``numpy.mean`` of a list is the float64 ``add.reduce`` of its array divided by the
    count; that is done here without the list's trip through ``numpy.mean``'s
    wrapper, which costs more than a small image's kernel.
    """
    if len(scores) == 1:
        return scores[0]
    if not scores:  # no channel at all: numpy.mean's NaN and warning, as before
        return float(np.mean(scores))
    return float(np.add.reduce(np.array(scores, dtype=np.float64)) / len(scores))


class _CallPlan:
    """What :func:`ssim` resolves from its arguments before it reads a pixel.

    The profile and its parameters, the data range ``L`` and ``C1``, ``C2``; the
    kernels' keyword arguments per number of spatial axes, made on first use.
    """

    __slots__ = ("_args", "c1", "c2", "data_range", "params", "profile")

    def __init__(self, profile: Profile, params: SSIMParams, data_range: float) -> None:
        self.profile = profile
        self.params = params
        self.data_range = data_range
        self.c1, self.c2 = params.constants(data_range)
        self._args: dict[int, dict[str, Any]] = {}

    def kernel_args(self, ndim: int) -> dict[str, Any]:
        """:meth:`SSIMParams.kernel_args` for ``ndim`` spatial axes (shared: do not change it)."""
        args = self._args.get(ndim)
        if args is None:
            args = self._args[ndim] = self.params.kernel_args(self.data_range, ndim)
        return args


def _call_plan(
    profile: Any, params: dict[str, Any], data_range: Any, dtype_x: np.dtype, dtype_y: np.dtype
) -> _CallPlan:
    """The :class:`_CallPlan` of these arguments, from a small cache where they allow it.

    The cache is keyed on every argument and its type (so ``k1=1`` and ``k1=True``,
    which is refused, or ``data_range=255`` and ``255.0`` are looked up apart);
    unhashable arguments, which the checks refuse with their own message, and
    arguments that raise are never stored.
    """
    overrides = tuple(item for pair in sorted(params.items()) for item in pair) if params else ()
    try:
        hash((profile, data_range, overrides))
    except TypeError:
        return _make_plan(profile, data_range, dtype_x, dtype_y, *overrides)
    return _cached_plan(profile, data_range, dtype_x, dtype_y, *overrides)


def _make_plan(
    profile: Any, data_range: Any, dtype_x: np.dtype, dtype_y: np.dtype, *overrides: Any
) -> _CallPlan:
    """The checks and resolution of :func:`ssim`'s profile, parameters and data range.

    ``overrides`` alternates parameter names and values. In this order: the profile
    and parameters, the data range, then ``C1`` and ``C2``; each raises naming its
    parameter.
    """
    chosen_profile, chosen = resolve_params(
        profile, **dict(zip(overrides[::2], overrides[1::2], strict=True))
    )
    found, _ = resolve_data_range(data_range, dtype_x, dtype_y)
    return _CallPlan(chosen_profile, chosen, found)


# Bounded: a loop over many data ranges (one per image) keeps the last 128 only.
_cached_plan = functools.lru_cache(maxsize=128, typed=True)(_make_plan)


def _check_colour_without_axis(shape: tuple[int, ...], axis: int | None, win_size: int) -> None:
    """A colour image passed without ``channel_axis`` is read as a volume: say so."""
    if axis is not None or len(shape) != 3 or min(shape) >= win_size:
        return
    if shape[-1] in (3, 4) or shape[0] in (3, 4):
        raise ValueError(
            f"x has shape {shape}: for a colour image pass channel_axis=-1 (channels last) "
            "or channel_axis=0 (channels first); without channel_axis a 3-D array is a "
            f"volume and the {win_size}-wide window does not fit its side of {min(shape)}"
        )
