"""The rest of the SSIM family in the engine: volumes, ``wang2009``, MS-SSIM.

:func:`prepare_family` is what :func:`pipeline.engine.plan.plan_run` calls for each
size group before it plans the group's chunks: it checks the settings (same
messages as the in-memory :func:`pipeline.ssim` and :func:`pipeline.ms_ssim`,
before anything is read),
turns a stack into one volume when ``volume=True`` (:mod:`pipeline.engine.volumes`),
applies the ``wang2009`` profile's ``ssim.m`` downsampling chunk by chunk
(:mod:`pipeline.tiling.downsample`) and records it all in the Dataset attrs.

With ``wang2009`` the SSIM maps, regions and counts are on the reduced grid
(as :func:`pipeline.ssim` returns its maps): a grid ``"RxC"`` splits the reduced
image, and a label mask given at full resolution is read at the kept samples
(:func:`pipeline.tiling.downsample.downsample_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.engine.multiscale import check_ms_ssim_settings, ms_ssim_attrs
from pipeline.engine.settings import RunConfig
from pipeline.engine.volumes import as_volume_pair, check_volume_settings, spatial_shape
from pipeline.inputs.sources import SourcePair
from pipeline.kernels.downsample import downsampled_shape
from pipeline.metrics.checks import check_window_fits
from pipeline.metrics.multiscale import resolve_weights
from pipeline.metrics.profiles import Profile, SSIMParams
from pipeline.tiling.downsample import downsample_labels, downsample_pair

__all__ = ["FamilySetup", "prepare_family"]


@dataclass(frozen=True)
class FamilySetup:
    """What the engine evaluates after volume mode and ``wang2009`` are applied.

    Attributes
    ----------
    pair : SourcePair
        The stack, or the volume ``(1, z, y, x, channel)``, downsampled when the
        profile says so.
    spatial : tuple of int
        ``(y, x)`` or ``(z, y, x)`` of what the kernels see.
    factor : int
        The ``wang2009`` factor (1: no downsampling).
    labels : object
        The label mask for :func:`pipeline.reductions.regions.parse_regions` (on the reduced grid).
    region_images : int
        ``n_images`` for ``parse_regions``: images of a stack, slices of a volume
        (so that a ``(z, y, x)`` label volume is accepted).
    ms_weights : tuple of float
        MS-SSIM exponents, empty when MS-SSIM is off.
    attrs : dict
        Provenance for the Dataset attrs.
    """

    pair: SourcePair
    spatial: tuple[int, ...]
    factor: int
    labels: Any
    region_images: int
    ms_weights: tuple[float, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def prepare_family(
    config: RunConfig, profile: Profile, params: SSIMParams, pair: SourcePair
) -> FamilySetup:
    """Check volume, MS-SSIM and downsampling settings and prepare the pair; reads nothing.

    Raises
    ------
    ValueError
        ``volume`` with an engine or option it cannot run; MS-SSIM with the
        ``wang2009`` profile or images too small for its scales; a window larger
        than the (downsampled) images.
    """
    if config.volume:
        check_volume_settings(engine=config.engine, save_maps=config.save_maps)
        pair = as_volume_pair(pair)
    spatial = spatial_shape(pair)
    weights: tuple[float, ...] = ()
    if config.ms_ssim:
        weights = resolve_weights(config.ms_weights)
        check_ms_ssim_settings(
            spatial,
            weights,
            params.win_size,
            downsample=profile.downsample,
            profile=profile.name,
        )
    factor = profile.downsample_factor(spatial)
    reduced = downsampled_shape(spatial, factor)
    check_window_fits(reduced, params.win_size)
    attrs: dict[str, Any] = {
        "volume": int(config.volume),
        "downsample_factor": factor,
    }
    if config.ms_ssim:
        attrs.update(ms_ssim_attrs(weights))
    return FamilySetup(
        pair=downsample_pair(pair, factor),
        spatial=reduced,
        factor=factor,
        labels=downsample_labels(
            config.labels, factor, volume=config.volume, options=config.input_options()
        ),
        region_images=reduced[0] if config.volume else pair.n_images,
        ms_weights=weights,
        attrs=attrs,
    )
