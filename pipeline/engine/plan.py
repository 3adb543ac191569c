"""``plan_run``: a checked run, one plan per size group, and the lazy graphs they hold.

The planning half of :func:`pipeline.engine.run.evaluate`: everything the user can
get wrong is checked here before a pixel is read (parameters, data range,
window, colour, regions), the chunks and commit batches are planned
(:mod:`pipeline.tiling.chunks`), and the lazy graph sources -> tiling -> kernels
(:class:`~pipeline.reductions.kernel_spec.KernelSpec`) -> reductions is built once
(:mod:`pipeline.engine.graphs`), with the provenance attrs of the Dataset. Nothing
is computed here; the run loop in :mod:`pipeline.engine.run` computes the
:class:`RunPlan` batch by batch.

**Size groups.** A folder of images of different sizes cannot be one
``(image, y, x, channel)`` stack. Its :class:`~pipeline.inputs.sources.SourcePair`
carries one part per size group (:attr:`SourcePair.groups`, in the order of the
``image`` axis); every other source is one group. Each group is planned on its
own (:class:`GroupPlan`: its parameters, data range, chunks, kernel, regions and
graph), and the :class:`RunPlan` lists them:

* the statistics graphs are concatenated along ``image`` (group after group);
* the regions are the union of the groups' regions in order of appearance (a
  tile spec such as ``"256px"`` gives small images fewer tiles; a pair has
  ``count`` 0 in a region its images do not have);
* the commit batches are the groups' own batches, shifted: a batch never spans
  two groups, so no decoded chunk is needed by two batches;
* the attrs of a source in size groups are those of the first group, plus the
  source's (unpaired files ...), the size groups as JSON (``size_groups``), each
  dtype's data range and its source as JSON (``data_range_by_dtype``) and, when
  the groups' data ranges differ (8- and 16-bit files), a ``data_range`` naming each.

Each group's data range comes from its own dtype: ``data_ranges[dtype]``, else a
scalar ``data_range``, else an integer dtype's full range. A float group with
neither fails its own pairs (each status names its files and the setting to
add) and the other groups run. A scalar ``data_range`` over a folder that mixes
dtypes, one of them an integer dtype without a ``data_ranges`` entry, is refused
before any pixel is read: one L for 8-bit, 16-bit and float files would score
all but one of them wrongly. A group smaller than the window fails its pairs.

Groups whose images are read independently (``SourcePair.rechunked``) are planned
twice: once to learn the engine's chunks, then rebuilt with exactly those chunks
along ``image`` so that each decode task reads one planned chunk.

Plans are frozen: what the run learns (pairs that fail while read, MS-SSIM values)
is kept by the run loop, never written into a plan or its sources.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import dask.array as da
import numpy as np

from pipeline.engine.family import prepare_family
from pipeline.engine.graphs import statistics_graphs, widen_regions, with_statistics_check
from pipeline.engine.multiscale import ms_ssim_graph
from pipeline.engine.schedulers import LOCAL_SCHEDULERS
from pipeline.engine.settings import RunConfig
from pipeline.engine.volumes import as_volume_pair, plan_volume_chunks, volume_statistics_graph
from pipeline.inputs.sources import SourcePair
from pipeline.kernels.downsample import downsampled_shape
from pipeline.metrics.checks import check_window_fits, lookup_data_range, resolve_data_range
from pipeline.metrics.colour import check_color_mode
from pipeline.metrics.profiles import Profile, SSIMParams, resolve_params
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.mean_maps import mean_maps_enabled
from pipeline.reductions.nonfinite import with_finite_check
from pipeline.reductions.regions import RegionPlan, parse_regions
from pipeline.results.schema import SIZE_GROUPS, package_version
from pipeline.tiling.chunks import overlap_depth, plan_chunks, statistics_bytes_per_image

__all__ = ["DATA_RANGE_BY_DTYPE", "GroupPlan", "RunPlan", "plan_run"]

# Result attr: JSON ``{dtype: {"data_range": L or null, "source": ...}}``, the data
# range every dtype of the run was scored with and where it came from.
DATA_RANGE_BY_DTYPE = "data_range_by_dtype"

Chunks = tuple[tuple[int, ...], ...]
Batches = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class GroupPlan:
    """One size group, checked and planned: rows ``[start, stop)`` of the run.

    Attributes
    ----------
    config : RunConfig
        The settings the group is planned with (a grey group of a ``luma`` run is
        scored as ``channels``: luma of a grey image is the image).
    pair : SourcePair
        The group's stacks as the kernels see them (volume, downsampling), with
        ``read_status`` failing pairs that cannot be read or scored.
    start : int
        The group's first row on the run's ``image`` axis.
    profile, params : Profile, SSIMParams
        The group's SSIM parameters.
    data_range : float or None
        The data range ``L`` its pairs are scored with; None when a float group
        got none (its pairs have failed and nothing of it is read).
    data_range_source : str
        Where ``data_range`` comes from (``"given"``, ``"dtype uint8"`` ...).
    regions : RegionPlan
        The group's own regions (tiles of its image size, labels).
    chunks : tuple of tuple of int
        Chunks of the group's stacks.
    batches : tuple of (int, int)
        Commit batches on the group's own rows (0 is its first pair).
    statistics : dask.array.Array
        Lazy ``(image, region, field)`` partial statistics over ``regions``.
    kernel : KernelSpec
        Window, constants, engine and device of the group's kernels.
    ms_ssim : dask.array.Array, optional
        Lazy MS-SSIM per pair (None when MS-SSIM is off).
    attrs : mapping
        The group's provenance (parameters, data range, settings).
    map_sums : dask.array.Array, optional
        Lazy ``(image chunk, y, x, component)`` sums of the valid maps, from the
        statistics' own block tasks (None when mean maps are off).
    """

    config: RunConfig
    pair: SourcePair
    start: int
    profile: Profile
    params: SSIMParams
    data_range: float | None
    data_range_source: str
    regions: RegionPlan
    chunks: Chunks
    batches: Batches
    statistics: da.Array
    kernel: KernelSpec
    ms_ssim: da.Array | None
    attrs: Mapping[str, Any]
    map_sums: da.Array | None = None

    @property
    def n_images(self) -> int:
        return self.pair.n_images

    @property
    def stop(self) -> int:
        """One past the group's last row on the run's ``image`` axis."""
        return self.start + self.n_images


@dataclass(frozen=True)
class RunPlan:
    """A checked run: its size groups and what the run loop computes, joined along ``image``.

    Attributes
    ----------
    config : RunConfig
        The run's settings.
    pair : SourcePair
        The source as the rows of the result (image ids, file names, attrs); a
        volume run has one row.
    groups : tuple of GroupPlan
        One plan per size group, in the order of ``image`` (one for most sources).
    failed : mapping of int to str
        Pairs known to fail before any pixel is read (headers, a group smaller
        than the window, a float group with no data range): row -> reason.
    region_names : tuple of str
        The run's regions: the union of the groups' regions.
    batches : tuple of (int, int)
        Commit batches on the run's rows; a batch never spans two groups.
    statistics : dask.array.Array
        Lazy ``(image, region, field)`` partial statistics over ``region_names``.
    read_status : dask.array.Array, optional
        ``(image,)`` strings from the reads and checks of the graph (``"ok"`` or why).
    ms_ssim : dask.array.Array, optional
        Lazy MS-SSIM per pair (None when MS-SSIM is off).
    attrs : mapping
        Provenance attrs of the result Dataset.
    """

    config: RunConfig
    pair: SourcePair
    groups: tuple[GroupPlan, ...]
    failed: Mapping[int, str]
    region_names: tuple[str, ...]
    batches: Batches
    statistics: da.Array
    read_status: da.Array | None
    ms_ssim: da.Array | None
    attrs: Mapping[str, Any]

    @property
    def n_images(self) -> int:
        return self.pair.n_images

    @property
    def batch_images(self) -> int:
        return self.batches[0][1] - self.batches[0][0]

    def group_of(self, index: int) -> GroupPlan:
        """The group plan that holds row ``index`` of the run."""
        for group in self.groups:
            if index < group.stop:
                return group
        raise IndexError(f"row {index} is beyond the run's {self.n_images} pairs")


def _check_device(config: RunConfig) -> None:
    """``device="gpu"`` on this machine's schedulers needs a GPU here: say so before any work.

    Cluster workers elsewhere (an address, SLURM, PBS) may have GPUs this client
    lacks, so only the schedulers that run on this machine are checked.
    """
    if config.device != "gpu" or config.scheduler not in (*LOCAL_SCHEDULERS, "local", "cuda"):
        return
    from pipeline.kernels.backend import gpu_available

    if not gpu_available():
        raise RuntimeError(
            f"device='gpu' needs CuPy and a CUDA device on this machine for scheduler "
            f"{config.scheduler!r}, and no device answered (is CuPy installed: pip install "
            "'ssim-pipeline[gpu]'?); use device='cpu', or a cluster whose workers have GPUs"
        )


def plan_run(config: RunConfig, pair: SourcePair) -> RunPlan:
    """Check everything, plan each size group's chunks and build the lazy graphs.

    Parameters
    ----------
    config : RunConfig
        The run's settings.
    pair : SourcePair
        The opened sources (:func:`pipeline.inputs.opening.open_pair`); a stack is
        made one volume here when ``config.volume`` is set.

    Returns
    -------
    RunPlan
        One :class:`GroupPlan` per size group and the graphs joined along ``image``.

    Raises
    ------
    ValueError
        Any setting the sources cannot be scored with (parameters, data range,
        window, colour, regions); ``save_maps`` with more than one size group (the
        maps of differently sized images do not fit one Zarr array).
    RuntimeError
        ``device="gpu"`` on a local scheduler with no GPU here.
    """
    _check_device(config)
    if config.volume:
        pair = as_volume_pair(pair)  # one row: the volume
    failed = dict(pair.status)
    mean_maps = mean_maps_enabled(
        config.mean_maps,
        [part.image_shape for part in pair.groups] or [pair.image_shape],
        volume=config.volume,
        nan_policy=config.nan_policy,
        output_format=config.resolved_output_format(),
    )
    if not pair.groups:
        data_range, range_source = resolve_data_range(
            config.data_range, pair.reference.dtype, pair.generated.dtype, config.data_ranges
        )
        maps = frozenset(failed) if mean_maps else None
        group = _plan_group(config, pair, 0, data_range, range_source, maps)
        return _joined(config, pair, (group,), failed, dict(group.attrs))
    if config.save_maps and len(pair.groups) > 1:
        shapes = ", ".join(_describe(part) for part in pair.groups)
        raise ValueError(
            f"save_maps needs images of one size, but the source has {len(pair.groups)} size "
            f"groups ({shapes}); evaluate each size on its own or leave save_maps off"
        )
    _check_scalar_range(config, pair)
    groups: list[GroupPlan] = []
    start = 0
    for part in pair.groups:
        dtype = np.dtype(part.reference.dtype)
        found, source = lookup_data_range(config.data_range, dtype, dtype, config.data_ranges)
        if found is None:
            failed.update(_missing_range(part, start, dtype, failed))
            part = _blank(part, part.image_shape)
        part_config = config
        if part.n_channels == 1 and config.color_mode == "luma":
            # Luma of a grey image is the image: score grey groups as they are.
            part_config = config.replace(color_mode="channels")
        too_small = _below_window(part_config, part, start)
        if too_small:
            failed.update(too_small)
            part = _blank(part, _fitting_shape(part_config, part))
        source = "missing: its pairs failed" if found is None else source
        # Mean maps leave out the pairs known to fail already (no second pass for them).
        known = frozenset(i - start for i in failed if start <= i < start + part.n_images)
        maps = known if mean_maps else None
        group = _plan_group(part_config, part, start, found, source, maps)
        if part.rechunked is not None:
            rechunked = part.rechunked(group.chunks[0])
            group = _plan_group(part_config, rechunked, start, found, source, maps)
        groups.append(group)
        start += part.n_images
    return _joined(config, pair, tuple(groups), failed, _group_attrs(config, pair, groups))


def _joined(
    config: RunConfig,
    pair: SourcePair,
    groups: tuple[GroupPlan, ...],
    failed: dict[int, str],
    attrs: dict[str, Any],
) -> RunPlan:
    """The run of ``groups``: regions, batches and graphs joined along ``image``."""
    names: list[str] = []
    for group in groups:
        names.extend(name for name in group.regions.names if name not in names)
    region_names = tuple(names)
    parts = [
        widen_regions(g.statistics, g.regions.names, region_names, config.hist_bins) for g in groups
    ]
    reads = [g.pair.read_status for g in groups]
    read_status = None
    if all(r is not None for r in reads):
        read_status = _concatenate([r for r in reads if r is not None])
    ms = [g.ms_ssim for g in groups if g.ms_ssim is not None]
    return RunPlan(
        config=config,
        pair=pair,
        groups=groups,
        failed=MappingProxyType(failed),
        region_names=region_names,
        batches=tuple((a + g.start, b + g.start) for g in groups for a, b in g.batches),
        statistics=_concatenate(parts),
        read_status=read_status,
        ms_ssim=_concatenate(ms) if len(ms) == len(groups) else None,
        attrs=attrs,
    )


def _concatenate(parts: list[da.Array]) -> da.Array:
    return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)


def _plan_group(
    config: RunConfig,
    pair: SourcePair,
    start: int,
    data_range: float | None,
    range_source: str,
    mean_maps: frozenset[int] | None = None,
) -> GroupPlan:
    """Check and plan one group of images of one size; ``data_range`` None: its pairs failed.

    ``mean_maps``: None when off, else the group's rows that mean maps leave out.
    """
    if config.nan_policy == "mask" and (config.volume or config.ms_ssim):
        raise ValueError(
            "nan_policy='mask' works on 2-D SSIM statistics only; it cannot be combined with "
            f"volume={config.volume} or ms_ssim={config.ms_ssim} (use nan_policy='fail')"
        )
    profile, params = resolve_params(config.profile, **config.ssim_overrides())
    # C1, C2 beyond float64 are refused here, before any pixel is read. A group whose
    # pairs failed for want of a data range is never read: any L plans its zeros.
    c1, c2 = params.constants(1.0 if data_range is None else data_range)
    # Volume mode, wang2009's downsampling and MS-SSIM checks (pipeline.engine.family).
    family = prepare_family(config, profile, params, pair)
    pair = family.pair
    check_window_fits(pair.image_shape, params.win_size)
    if config.color_mode == "luma":
        # The sources moved the channels last; what matters is that there are three.
        check_color_mode("luma", 3 if pair.n_channels > 1 else None, pair.n_channels)
    regions = parse_regions(
        config.regions,
        pair.image_shape,
        n_images=family.region_images,
        labels=family.labels,
        label_names=config.label_names,
        options=config.input_options(),
    )
    depth = overlap_depth(params.win_size)
    chunks, batches = _plan_chunks(
        config, pair, depth, len(regions.names), mean_maps=mean_maps is not None
    )
    if not config.volume:
        # Zarr stacks read straight at these chunks keep room around each block for
        # its overlap, which the block tasks then add in place instead of copying.
        pair = replace(pair, halo=depth)
    # Zarr stacks read straight at these chunks report their missing chunks from those reads.
    pair = pair.planned(chunks)
    if config.nan_policy == "fail":
        pair = with_finite_check(pair, chunks)
    spec = KernelSpec(
        window=params.window,
        weights=tuple(float(w) for w in params.weights()),
        c1=c1,
        c2=c2,
        cov_norm=params.cov_norm(len(family.spatial)),
        depth=depth,
        engine=config.engine,
        color_mode=config.color_mode,
        device=config.device,
        kernel_threads=None if config.scheduler == "synchronous" else 1,
        data_range=data_range,
    )
    map_sums = None
    if config.volume:
        statistics = volume_statistics_graph(pair, regions, spec, chunks, config.hist_bins)
    else:
        statistics, map_sums = statistics_graphs(
            pair,
            regions,
            spec,
            chunks,
            config.hist_bins,
            nan_policy=config.nan_policy,
            mean_maps=mean_maps is not None,
            skip_rows=mean_maps or frozenset(),
        )
    ms = None
    if config.ms_ssim:
        x, y = pair.chunked(chunks)
        ms = ms_ssim_graph(x, y, spec=spec, weights=family.ms_weights)
    pair = with_statistics_check(pair, statistics, ms, chunks)
    attrs = _provenance(config, pair, params, data_range, range_source)
    attrs.update(family.attrs)
    return GroupPlan(
        config=config,
        pair=pair,
        start=start,
        profile=profile,
        params=params,
        data_range=data_range,
        data_range_source=range_source,
        regions=regions,
        chunks=chunks,
        batches=batches,
        statistics=statistics,
        kernel=spec,
        ms_ssim=ms,
        attrs=attrs,
        map_sums=map_sums,
    )


def _plan_chunks(
    config: RunConfig, pair: SourcePair, depth: int, n_regions: int, *, mean_maps: bool = False
) -> tuple[Chunks, Batches]:
    """The group's chunks and its commit batches (a volume is one batch; ``mean_maps``:
    the group accumulates them, see :func:`~pipeline.tiling.chunks.plan_chunks`)."""
    if config.volume:
        chunks = plan_volume_chunks(
            tuple(pair.reference.shape),
            depth=depth,
            native=pair.native_chunks,
            chunk_pixels=config.chunk_pixels,
            requested=config.chunks,
            input_chunks=pair.reference.chunks,
        )
        return chunks, ((0, 1),)
    return plan_chunks(
        (pair.n_images, *pair.image_shape, pair.n_channels),
        depth=depth,
        native=pair.native_chunks,
        chunk_pixels=config.chunk_pixels,
        requested=config.chunks,
        input_chunks=pair.reference.chunks,
        batch_images=config.batch_images,
        statistics_bytes=statistics_bytes_per_image(n_regions, config.hist_bins),
        mean_maps=mean_maps,
    )


def _provenance(
    config: RunConfig,
    pair: SourcePair,
    params: SSIMParams,
    data_range: float | None,
    range_source: str,
) -> dict[str, Any]:
    identity = json.dumps(pair.identity, sort_keys=True, default=str)
    attrs: dict[str, Any] = {"profile": config.profile}
    attrs.update({f"ssim_{name}": value for name, value in params.as_dict().items()})
    attrs.update(
        {
            "data_range": data_range,
            "data_range_source": range_source,
            DATA_RANGE_BY_DTYPE: json.dumps(
                {_dtype_key(pair): {"data_range": data_range, "source": range_source}}
            ),
            "color_mode": config.color_mode if pair.n_channels > 1 else "grey",
            "n_channels": pair.n_channels,
            "regions": config.regions,
            "hist_bins": config.hist_bins,
            "engine": config.engine,
            "device": config.device,
            "package_version": package_version(),
            "config_fingerprint": config.fingerprint(),
            "source_fingerprint": hashlib.sha256(identity.encode()).hexdigest()[:16],
            "sources": identity,
            "config": json.dumps(config.result_mapping(), sort_keys=True, default=str),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    )
    return attrs


def _dtype_key(pair: SourcePair) -> str:
    """The dtype a data range is recorded under: ``"uint8"``, or ``"uint8/float32"``."""
    x, y = pair.reference.dtype, pair.generated.dtype
    return x.name if x == y else f"{x.name}/{y.name}"


# -- size groups -----------------------------------------------------------------------


def _below_window(config: RunConfig, group: SourcePair, start: int) -> dict[int, str]:
    """The failures of a size group smaller than the window (empty when the window fits)."""
    profile, params = resolve_params(config.profile, **config.ssim_overrides())
    shape = group.image_shape
    if min(downsampled_shape(shape, profile.downsample_factor(shape))) >= params.win_size:
        return {}
    height, width = shape
    reason = (
        f"image of {height}x{width} pixels is smaller than the {params.win_size}x"
        f"{params.win_size} window; use a smaller odd win_size or larger images"
    )
    return {start + i: reason for i in range(group.n_images)}


def _fitting_shape(config: RunConfig, group: SourcePair) -> tuple[int, int]:
    """The group's image shape grown to the window: the shape its never-read zeros take."""
    _, params = resolve_params(config.profile, **config.ssim_overrides())
    height, width = group.image_shape
    return max(height, params.win_size), max(width, params.win_size)


def _blank(group: SourcePair, shape: tuple[int, int]) -> SourcePair:
    """``group`` with never-read zeros of ``shape`` in its slots (its pairs have failed)."""
    layout = (group.n_images, *shape, group.n_channels)
    blank = da.zeros(layout, dtype=group.reference.dtype, chunks=(1, -1, -1, -1))
    status = da.full(group.n_images, "ok", dtype=object, chunks=1)
    return replace(group, reference=blank, generated=blank, read_status=status, rechunked=None)


def _missing_range(
    group: SourcePair, start: int, dtype: np.dtype, known: Mapping[int, str]
) -> dict[int, str]:
    """The failures of a float group with no data range given (pairs already failed kept).

    Each status names the pair's files and the setting to add.
    """
    out = {}
    for i in range(group.n_images):
        if start + i in known:
            continue
        out[start + i] = (
            f"reference file {group.reference_names[i]} and generated file "
            f"{group.generated_names[i]} are {dtype.name} with no data range given: set "
            f"data_ranges: {{{dtype.name}: 1.0}} to the span of their values (1.0 for [0, 1], "
            "255.0 for [0, 255]); integer files keep their dtype's range"
        )
    return out


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


def _describe(group: SourcePair) -> str:
    height, width = group.image_shape
    return f"{group.n_images} x {height}x{width}x{group.n_channels} {group.reference.dtype}"


def _group_attrs(config: RunConfig, pair: SourcePair, groups: list[GroupPlan]) -> dict[str, Any]:
    """The attrs of a source in size groups: the first group's, and each group's own."""
    attrs = dict(groups[0].attrs)
    channels = [group.pair.n_channels for group in groups]
    attrs["n_channels"] = max(channels)
    attrs["color_mode"] = config.color_mode if max(channels) > 1 else "grey"
    ranges = [(group.data_range, group.data_range_source) for group in groups]
    by_dtype: dict[str, dict[str, Any]] = {}
    for group, (found, source) in zip(groups, ranges, strict=True):
        by_dtype[str(group.pair.reference.dtype)] = {"data_range": found, "source": source}
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
    sizes = []
    for group, (found, source) in zip(groups, ranges, strict=True):
        height, width = group.pair.image_shape
        chunks = group.chunks
        sizes.append(
            {
                "shape": [height, width, group.pair.n_channels],
                "dtype": str(group.pair.reference.dtype),
                "pairs": group.n_images,
                "data_range": found,
                "data_range_source": source,
                "chunks": [max(chunks[0]), max(chunks[1]), max(chunks[2])],
                "batches": len(group.batches),
                "decode_tasks": len(chunks[0]),
                "tasks": len(chunks[0]) * len(chunks[1]) * len(chunks[2]),
            }
        )
    attrs[SIZE_GROUPS] = json.dumps(sizes)
    attrs.update(pair.attrs)
    return attrs
