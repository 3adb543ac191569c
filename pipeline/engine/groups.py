"""Sources made of several image shapes: one plan per size group, joined into one run.

A folder of images of different sizes cannot be one ``(image, y, x, channel)``
stack. Its :class:`~pipeline.inputs.sources.SourcePair` carries one part per size group
(:attr:`SourcePair.groups`, in the order of the ``image`` axis); :func:`plan_groups`
plans each part with :func:`pipeline.engine.plan.plan_run` and joins the parts into a
single :class:`~pipeline.engine.plan.RunPlan`:

* the statistics graphs are concatenated along ``image`` (group after group);
* the regions are the union of the parts' regions in order of appearance (a
  tile spec such as ``"256px"`` gives small images fewer tiles; a pair has
  ``count`` 0 in a region its images do not have);
* the commit batches are the parts' own batches, shifted: a batch never spans
  two groups, so no decoded chunk is needed by two batches;
* the attrs are those of the first part, plus the source's (unpaired files ...),
  the size groups as JSON (``size_groups``), each dtype's data range and its
  source as JSON (``data_range_by_dtype``) and, when the groups' data ranges
  differ (8- and 16-bit files), a ``data_range`` naming each.

Each group's data range comes from its own dtype: ``data_ranges[dtype]``, else a
scalar ``data_range``, else an integer dtype's full range. A float group with
neither fails its own pairs (each status names its files and the setting to
add) and the other groups run. A scalar ``data_range`` over a folder that mixes
dtypes, one of them an integer dtype without a ``data_ranges`` entry, is refused
before any pixel is read: one L for 8-bit, 16-bit and float files would score
all but one of them wrongly.

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

from pipeline.engine.plan import DATA_RANGE_BY_DTYPE
from pipeline.engine.settings import RunConfig
from pipeline.inputs.sources import SourcePair
from pipeline.metrics.checks import lookup_data_range
from pipeline.reductions.statistics import empty_statistics
from pipeline.results.schema import SIZE_GROUPS

if TYPE_CHECKING:
    from pipeline.engine.plan import RunPlan

__all__ = ["plan_groups"]


def plan_groups(config: RunConfig, pair: SourcePair) -> RunPlan:
    """One :class:`~pipeline.engine.plan.RunPlan` for a pair made of size groups.

    Raises
    ------
    ValueError
        ``save_maps`` with more than one size group (the maps of differently sized
        images do not fit one Zarr array), or any check of a part's plan.
    """
    from pipeline.engine.plan import plan_run

    if config.save_maps and len(pair.groups) > 1:
        shapes = ", ".join(_describe(group) for group in pair.groups)
        raise ValueError(
            f"save_maps needs images of one size, but the source has {len(pair.groups)} size "
            f"groups ({shapes}); evaluate each size on its own or leave save_maps off"
        )
    _check_scalar_range(config, pair)
    plans: list[RunPlan] = []
    ranges: list[tuple[float | None, str]] = []
    offset = 0
    for group in pair.groups:
        group, group_config, found = _group_range(config, pair, group, offset)
        group = _fail_if_below_window(group_config, pair, group, offset)
        offset += group.n_images
        if group.n_channels == 1 and config.color_mode == "luma":
            # Luma of a grey image is the image: score grey groups as they are.
            group_config = group_config.replace(color_mode="channels")
        plan = plan_run(group_config, group)
        if group.rechunked is not None:
            plan = plan_run(group_config, group.rechunked(plan.chunks[0]))
        plans.append(plan)
        ranges.append(found)

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
        attrs=_attrs(config, pair, plans, ranges),
    )


def _fail_if_below_window(
    config: RunConfig, pair: SourcePair, group: SourcePair, offset: int
) -> SourcePair:
    """A size group smaller than the window fails its pairs (with the reason), not the run.

    Its slots are filled with never-read zeros of a shape the window fits.
    """
    from pipeline.kernels.downsample import downsampled_shape
    from pipeline.metrics.profiles import resolve_params

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
    return _blank(group, fits)


def _blank(group: SourcePair, shape: tuple[int, int]) -> SourcePair:
    """``group`` with never-read zeros of ``shape`` in its slots (its pairs have failed)."""
    layout = (group.n_images, *shape, group.n_channels)
    blank = da.zeros(layout, dtype=group.reference.dtype, chunks=(1, -1, -1, -1))
    status = da.full(group.n_images, "ok", dtype=object, chunks=1)
    return replace(group, reference=blank, generated=blank, read_status=status, rechunked=None)


def _dtype_names(pair: SourcePair) -> list[str]:
    return sorted({np.dtype(group.reference.dtype).name for group in pair.groups})


def _check_scalar_range(config: RunConfig, pair: SourcePair) -> None:
    """A scalar ``data_range`` may not override integer ranges in a folder of mixed dtypes.

    One ``L`` for 8-bit, 16-bit and float files scores all but one of them wrongly
    (``data_range: 1.0`` for float files would give uint8 pairs ``L = 1``). Mixed
    dtypes are seen in the headers, so this is refused before any pixel is read,
    naming the ``data_ranges`` setting that says what was meant.
    """
    if config.data_range is None:
        return
    dtypes = _dtype_names(pair)
    given = config.data_ranges or {}
    integers = [d for d in dtypes if np.dtype(d).kind in "ui" and d not in given]
    if len(dtypes) < 2 or not integers:
        return
    floats = [d for d in dtypes if np.dtype(d).kind == "f" and d not in given]
    own = ", ".join(f"{d}: {_dtype_range(d):g}" for d in integers)
    if floats:
        wanted = ", ".join(f"{d}: {config.data_range:g}" for d in floats)
        advice = (
            f"set data_ranges: {{{wanted}}} instead of data_range (integer dtypes then keep "
            "their full range)"
        )
    else:
        advice = "drop data_range (each integer dtype then takes its full range)"
    raise ValueError(
        f"data_range={config.data_range:g} would score every pair with one L, but the folder "
        f"mixes dtypes {', '.join(dtypes)} and its integer files have their own range ({own}); "
        f"{advice}, or give every dtype its own entry in data_ranges"
    )


def _dtype_range(name: str) -> float | None:
    """The full range of an integer dtype (None for floats), as every pair of it gets."""
    dtype = np.dtype(name)
    return lookup_data_range(None, dtype, dtype)[0]


def _group_range(
    config: RunConfig, pair: SourcePair, group: SourcePair, offset: int
) -> tuple[SourcePair, RunConfig, tuple[float | None, str]]:
    """The group, the settings it is planned with and its data range ``(L, source)``.

    A float group with no range given (neither ``data_ranges`` nor ``data_range``)
    fails its own pairs, each status naming its files and the setting to add; its
    slots become never-read zeros planned with a stand-in range, and the other
    groups run.
    """
    dtype = np.dtype(group.reference.dtype)
    found, source = lookup_data_range(config.data_range, dtype, dtype, config.data_ranges)
    if found is not None:
        return group, config, (found, source)
    for i in range(group.n_images):
        pair.status.setdefault(
            offset + i,
            f"reference file {group.reference_names[i]} and generated file "
            f"{group.generated_names[i]} are {dtype.name} with no data range given: set "
            f"data_ranges: {{{dtype.name}: 1.0}} to the span of their values (1.0 for [0, 1], "
            "255.0 for [0, 255]); integer files keep their dtype's range",
        )
    # The stand-in range only lets the never-read zeros be planned; nothing is scored.
    stand_in = config.replace(data_range=1.0)
    return _blank(group, group.image_shape), stand_in, (None, "missing: its pairs failed")


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


def _attrs(
    config: RunConfig,
    pair: SourcePair,
    plans: list[RunPlan],
    ranges: list[tuple[float | None, str]],
) -> dict[str, Any]:
    attrs = dict(plans[0].attrs)
    channels = [plan.pair.n_channels for plan in plans]
    attrs["n_channels"] = max(channels)
    attrs["color_mode"] = config.color_mode if max(channels) > 1 else "grey"
    by_dtype: dict[str, dict[str, Any]] = {}
    for plan, (found, source) in zip(plans, ranges, strict=True):
        by_dtype[str(plan.pair.reference.dtype)] = {"data_range": found, "source": source}
    attrs[DATA_RANGE_BY_DTYPE] = json.dumps(by_dtype, sort_keys=True)
    if len(set(ranges)) > 1:
        attrs["data_range"] = "per dtype: " + ", ".join(
            f"{'none' if entry['data_range'] is None else format(entry['data_range'], 'g')} "
            f"({name})"
            for name, entry in sorted(by_dtype.items())
        )
        attrs["data_range_source"] = f"per dtype (see {DATA_RANGE_BY_DTYPE})"
    else:
        attrs["data_range"], attrs["data_range_source"] = ranges[0]
        if ranges[0][0] is None:
            attrs["data_range"] = "none"
    # The run's own settings (a grey group may have been planned without luma).
    attrs["config_fingerprint"] = config.fingerprint()
    attrs["config"] = json.dumps(config.result_mapping(), sort_keys=True, default=str)
    groups = []
    for plan, (found, source) in zip(plans, ranges, strict=True):
        group = plan.pair
        height, width = group.image_shape
        groups.append(
            {
                "shape": [height, width, group.n_channels],
                "dtype": str(group.reference.dtype),
                "pairs": group.n_images,
                "data_range": found,
                "data_range_source": source,
                "chunks": [max(plan.chunks[0]), max(plan.chunks[1]), max(plan.chunks[2])],
                "batches": len(plan.batches),
                "decode_tasks": len(plan.chunks[0]),
                "tasks": len(plan.chunks[0]) * len(plan.chunks[1]) * len(plan.chunks[2]),
            }
        )
    attrs[SIZE_GROUPS] = json.dumps(groups)
    attrs.update(pair.attrs)
    return attrs
