"""Sources made of several image shapes: one plan per size group, joined into one run.

A folder of images of different sizes cannot be one ``(image, y, x, channel)``
stack. Its :class:`~pipeline.sources.SourcePair` carries one part per size group
(:attr:`SourcePair.groups`, in the order of the ``image`` axis); :func:`plan_groups`
plans each part with :func:`pipeline.run_plan.plan_run` and joins the parts into a
single :class:`~pipeline.run_plan.RunPlan`:

* the statistics graphs are concatenated along ``image`` (group after group);
* the regions are the union of the parts' regions in order of appearance (a
  tile spec such as ``"256px"`` gives small images fewer tiles; a pair has
  ``count`` 0 in a region its images do not have);
* the commit batches are the parts' own batches, shifted: a batch never spans
  two groups, so no decoded chunk is needed by two batches;
* the attrs are those of the first part, plus the source's (unpaired files ...),
  the size groups as JSON (``size_groups``) and, when the groups' data ranges
  differ (8- and 16-bit files), a ``data_range`` naming each.

Parts whose images are read independently (``SourcePair.rechunked``) are planned
twice: once to learn the engine's chunks, then rebuilt with exactly those chunks
along ``image`` so that each decode task reads one planned chunk.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from pipeline.config import RunConfig
from pipeline.dataset import SIZE_GROUPS
from pipeline.reductions import empty_statistics
from pipeline.sources import SourcePair

if TYPE_CHECKING:
    from pipeline.run_plan import RunPlan

__all__ = ["plan_groups"]


def plan_groups(config: RunConfig, pair: SourcePair) -> RunPlan:
    """One :class:`~pipeline.run_plan.RunPlan` for a pair made of size groups.

    Raises
    ------
    ValueError
        ``save_maps`` with more than one size group (the maps of differently sized
        images do not fit one Zarr array), or any check of a part's plan.
    """
    from pipeline.run_plan import plan_run

    if config.save_maps and len(pair.groups) > 1:
        shapes = ", ".join(_describe(group) for group in pair.groups)
        raise ValueError(
            f"save_maps needs images of one size, but the source has {len(pair.groups)} size "
            f"groups ({shapes}); evaluate each size on its own or leave save_maps off"
        )
    plans: list[RunPlan] = []
    offset = 0
    for group in pair.groups:
        group = _fail_if_below_window(config, pair, group, offset)
        offset += group.n_images
        group_config = config
        if group.n_channels == 1 and config.color_mode == "luma":
            # Luma of a grey image is the image: score grey groups as they are.
            group_config = config.replace(color_mode="channels")
        plan = plan_run(group_config, group)
        if group.rechunked is not None:
            plan = plan_run(group_config, group.rechunked(plan.chunks[0]))
        plans.append(plan)

    names: list[str] = []
    for plan in plans:
        names.extend(name for name in plan.regions.names if name not in names)
    bins = config.hist_bins
    parts = [_widen_regions(plan.statistics, plan.regions.names, names, bins) for plan in plans]
    statistics = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)

    batches: list[tuple[int, int]] = []
    offset = 0
    for plan in plans:
        batches.extend((start + offset, stop + offset) for start, stop in plan.batches)
        offset += plan.pair.n_images
    reads = [plan.pair.read_status for plan in plans]
    read_status = None
    if all(r is not None for r in reads):
        read_status = da.concatenate([r for r in reads if r is not None], axis=0)

    first = plans[0]
    joined = replace(
        pair,
        reference=first.pair.reference,
        generated=first.pair.generated,
        native_chunks=first.pair.native_chunks,
        read_status=read_status,
        groups=tuple(plan.pair for plan in plans),
    )
    extra: dict[str, Any] = {}
    if getattr(first, "ms_ssim", None) is not None:
        # MS-SSIM per image (one value per pair): joined like the statistics.
        extra["ms_ssim"] = da.concatenate([plan.ms_ssim for plan in plans], axis=0)
        extra["ms_values"] = np.full(pair.n_images, np.nan)
    return replace(
        first,
        **extra,
        config=config,
        pair=joined,
        regions=replace(first.regions, names=tuple(names)),
        batches=tuple(batches),
        statistics=statistics,
        attrs=_attrs(config, pair, plans),
    )


def _fail_if_below_window(
    config: RunConfig, pair: SourcePair, group: SourcePair, offset: int
) -> SourcePair:
    """A size group smaller than the window fails its pairs (with the reason), not the run.

    Its slots are filled with never-read zeros of a shape the window fits.
    """
    from pipeline.kernels.downsample import downsampled_shape
    from pipeline.presets import resolve_params

    profile, params = resolve_params(config.profile, **config.ssim_overrides())
    shape = group.image_shape
    if min(downsampled_shape(shape, profile.downsample_factor(shape))) >= params.win_size:
        return group
    height, width = shape
    for i in range(group.n_images):
        pair.status[offset + i] = (
            f"image of {height}x{width} pixels is smaller than the {params.win_size}x"
            f"{params.win_size} window; use a smaller odd win_size or larger images"
        )
    fits = (max(height, params.win_size), max(width, params.win_size))
    layout = (group.n_images, *fits, group.n_channels)
    blank = da.zeros(layout, dtype=group.reference.dtype, chunks=(1, -1, -1, -1))
    status = da.full(group.n_images, "ok", dtype=object, chunks=1)
    return replace(group, reference=blank, generated=blank, read_status=status, rechunked=None)


def _describe(group: SourcePair) -> str:
    height, width = group.image_shape
    return f"{group.n_images} x {height}x{width}x{group.n_channels} {group.reference.dtype}"


def _widen_regions(
    statistics: da.Array, have: tuple[str, ...], names: list[str], bins: int
) -> da.Array:
    """Packed ``(image, region, field)`` statistics placed on the joined region axis."""
    if list(have) == names:
        return statistics
    index = [names.index(name) for name in have]

    def place(block: np.ndarray) -> np.ndarray:
        out = empty_statistics(block.shape[0], len(names), bins)
        out[:, index] = block
        return out

    return da.map_blocks(
        place,
        statistics,
        chunks=(statistics.chunks[0], (len(names),), statistics.chunks[2]),
        dtype=np.float64,
        meta=np.empty((0, 0, 0), dtype=np.float64),
    )


def _attrs(config: RunConfig, pair: SourcePair, plans: list[RunPlan]) -> dict[str, Any]:
    attrs = dict(plans[0].attrs)
    channels = [plan.pair.n_channels for plan in plans]
    attrs["n_channels"] = max(channels)
    attrs["color_mode"] = config.color_mode if max(channels) > 1 else "grey"
    ranges = {plan.data_range for plan in plans}
    if len(ranges) > 1:
        attrs["data_range"] = "per size group: " + ", ".join(
            f"{plan.data_range:g} ({plan.pair.reference.dtype})" for plan in plans
        )
        attrs["data_range_source"] = "per size group (see size_groups)"
    # The run's own settings (a grey group may have been planned without luma).
    attrs["config_fingerprint"] = config.fingerprint()
    attrs["config"] = json.dumps(config.result_mapping(), sort_keys=True, default=str)
    groups = []
    for plan in plans:
        group = plan.pair
        height, width = group.image_shape
        groups.append(
            {
                "shape": [height, width, group.n_channels],
                "dtype": str(group.reference.dtype),
                "pairs": group.n_images,
                "data_range": plan.data_range,
                "chunks": [max(plan.chunks[0]), max(plan.chunks[1]), max(plan.chunks[2])],
                "batches": len(plan.batches),
                "decode_tasks": len(plan.chunks[0]),
                "tasks": len(plan.chunks[0]) * len(plan.chunks[1]) * len(plan.chunks[2]),
            }
        )
    attrs[SIZE_GROUPS] = json.dumps(groups)
    attrs.update(pair.attrs)
    return attrs
