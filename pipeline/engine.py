"""``evaluate``: sources -> tiling -> kernels -> reductions -> dataset -> sinks.

Everything the user can get wrong is checked in :func:`plan_run` before a
pixel is read. Then the graph of partial statistics is built once and
computed one commit batch (a group of image chunks) at a time; each batch's
statistics go straight to the sink, so an interrupted run keeps what it
finished and ``resume=True`` computes the rest.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import dask
import dask.array as da
import numba
import numpy as np
import xarray as xr
import zarr

from pipeline.backend import to_host
from pipeline.cluster import SchedulerSession, open_scheduler
from pipeline.color import check_color_mode, to_luma
from pipeline.config import RunConfig, resolve_config
from pipeline.dataset import MS_SSIM, NAN_MASKED, STATUS_OK, build_dataset, template_dataset
from pipeline.family import prepare_family
from pipeline.kernels import block_maps
from pipeline.multiscale_graph import ms_ssim_graph
from pipeline.nonfinite import masked_block_statistics, screen_block, with_finite_check
from pipeline.presets import Profile, SSIMParams, resolve_params
from pipeline.reductions import (
    FIELDS,
    block_statistics,
    empty_statistics,
    finalize_statistics,
    merge_statistics,
)
from pipeline.regions import RegionPlan, parse_regions, region_ids
from pipeline.sinks import ZarrSink, export_csv, export_netcdf, open_results
from pipeline.sources import SourcePair, open_pair
from pipeline.tiling import map_valid_blocks, overlap_depth, plan_chunks, valid_map_array
from pipeline.validation import check_window_fits, resolve_data_range
from pipeline.volumes import as_volume_pair, plan_volume_chunks, volume_statistics_graph

__all__ = ["KernelSpec", "RunPlan", "evaluate", "plan_run"]

_MAP_NAMES = ("ssim", "luminance", "contrast", "structure")

BatchCallback = Callable[[int, int, int], None]


@dataclass(frozen=True)
class KernelSpec:
    """What a block needs to compute its maps: window, constants, engine, colour, device."""

    window: str
    weights: tuple[float, ...]
    c1: float
    c2: float
    cov_norm: float
    depth: int
    engine: str
    color_mode: str
    device: str
    # Threads of the compiled kernel inside one task: 1 when Dask's workers already
    # use every core (numba's setting is per thread), None to leave it alone.
    kernel_threads: int | None = None

    def whole_statistics(self, x: np.ndarray, y: np.ndarray, bins: int) -> np.ndarray | None:
        """Packed region-``all`` statistics ``(images, 1, 8 + bins)`` straight from the kernel.

        The fused CPU kernels reduce each map row while it is in cache, so the four
        maps are never stored (the same numbers as :func:`block_statistics` of
        :meth:`maps`, to ~1e-12): grey or luma blocks through
        :func:`~pipeline.kernels.fused.fused_packed_stats`, several channels averaged
        per pixel through :func:`~pipeline.kernels.fused_colour.fused_colour_packed_stats`.
        On ``device="gpu"`` the same packed rows come from the device
        (:meth:`_device_statistics`). None where no such path applies (another
        engine, a block without valid windows): use :meth:`maps`.
        """
        if self.device == "gpu":
            return self._device_statistics(x, y, bins)
        n, h, w, _ = x.shape
        if (
            self.engine not in ("auto", "fused")
            or not isinstance(x, np.ndarray)
            or not isinstance(y, np.ndarray)
            or min(h, w) <= 2 * self.depth
        ):
            return None
        from pipeline.kernels.fused import fused_packed_stats
        from pipeline.kernels.fused_colour import fused_colour_packed_stats

        x, y = self._prepared(x, y)
        args: dict[str, Any] = {
            "weights": np.asarray(self.weights),
            "uniform": self.window == "uniform",
            "c1": self.c1,
            "c2": self.c2,
            "bins": bins,
            "cov_norm": self.cov_norm,
            "threads": self.kernel_threads,
        }
        out = np.empty((n, 1, len(FIELDS) + bins))
        for i in range(n):
            if x.shape[3] == 1:
                out[i, 0] = fused_packed_stats(x[i, :, :, 0], y[i, :, :, 0], **args)
            else:
                out[i, 0] = fused_colour_packed_stats(x[i], y[i], **args)
        return out

    def _device_statistics(self, x: Any, y: Any, bins: int) -> np.ndarray | None:
        """Region-``all`` statistics reduced on the GPU: only packed rows reach the host.

        The block moves to the device once; each image's channel-averaged maps
        stay there (:mod:`pipeline.kernels.gpu_stats`). None for an engine other
        than ``gpu``/``auto`` or a block too small for one window.
        """
        n, h, w, _ = x.shape
        if self.engine not in ("auto", "gpu") or min(h, w) <= 2 * self.depth:
            return None
        from pipeline.kernels.gpu_stats import device_whole_statistics

        x, y = self._prepared(x, y)
        out = np.empty((n, 1, len(FIELDS) + bins))
        for i in range(n):
            out[i, 0] = device_whole_statistics(self._image_maps(x, y, i), bins)
        return out

    def _prepared(self, x: Any, y: Any) -> tuple[Any, Any]:
        """The block where its kernel runs: on the GPU for ``device="gpu"``, luma applied.

        Also sets numba's threads for this thread when ``kernel_threads`` says so.
        """
        if self.device == "gpu":
            import cupy

            x, y = cupy.asarray(x), cupy.asarray(y)
        if self.color_mode == "luma" and x.shape[3] == 3:
            x, y = to_luma(x, 3)[..., None], to_luma(y, 3)[..., None]
        if self.kernel_threads is not None:
            numba.set_num_threads(self.kernel_threads)
        return x, y

    def _image_maps(self, x: Any, y: Any, i: int) -> dict[str, Any]:
        """Channel-mean maps of image ``i`` of a prepared block, where the kernel made them.

        Channels are summed in the kernel's own precision: float64 for the reference
        engine (exact to 1e-9), float32 for the fused and GPU ones, whose maps are
        already rounded to float32 (a 3-term sum adds ~1e-7).
        """
        channels = x.shape[3]
        total: dict[str, Any] = {}
        for c in range(channels):
            maps = block_maps(
                x[i, :, :, c],
                y[i, :, :, c],
                window=self.window,
                weights=np.asarray(self.weights),
                c1=self.c1,
                c2=self.c2,
                cov_norm=self.cov_norm,
                components=True,
                engine=self.engine,
                threads=self.kernel_threads,
            )
            for name in _MAP_NAMES:
                total[name] = maps[name] if c == 0 else total[name] + maps[name]
        if channels > 1:
            total = {name: value / channels for name, value in total.items()}
        return total

    def maps(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Valid ``ssim``/``luminance``/``contrast``/``structure`` maps of a block.

        ``x``, ``y`` are ``(images, h, w, channels)``; the result is
        ``(images, h - 2 depth, w - 2 depth)`` on the host in the kernel's
        precision, averaged over channels (the pixel's mean of per-channel SSIM,
        so its mean is skimage's score).
        """
        n, h, w, _ = x.shape
        shape = (n, max(h - 2 * self.depth, 0), max(w - 2 * self.depth, 0))
        if 0 in shape:
            return {name: np.zeros(shape) for name in _MAP_NAMES}
        x, y = self._prepared(x, y)
        out: dict[str, np.ndarray] = {}
        for i in range(n):
            maps = {name: to_host(value) for name, value in self._image_maps(x, y, i).items()}
            if n == 1:
                # One image: keep the kernel's own arrays (and dtype), no copy.
                return {name: value[None] for name, value in maps.items()}
            for name, value in maps.items():
                out.setdefault(name, np.empty(shape, dtype=value.dtype))[i] = value
        return out


@dataclass(frozen=True)
class RunPlan:
    """A checked run: settings, sources, parameters, regions, chunks and the statistics graph."""

    config: RunConfig
    pair: SourcePair
    profile: Profile
    params: SSIMParams
    data_range: float
    data_range_source: str
    regions: RegionPlan
    chunks: tuple[tuple[int, ...], ...]
    batches: tuple[tuple[int, int], ...]
    statistics: da.Array
    attrs: dict[str, Any]
    kernel: KernelSpec
    # MS-SSIM per image (issue 8): the lazy graph, and the values of computed batches.
    ms_ssim: da.Array | None = None
    ms_values: np.ndarray | None = None

    @property
    def batch_images(self) -> int:
        return self.batches[0][1] - self.batches[0][0]


def plan_run(config: RunConfig, pair: SourcePair) -> RunPlan:
    """Check everything, plan the chunks and build the lazy statistics graph."""
    if pair.groups:
        # Several image shapes (folders): one plan per size group, joined (grouped.py).
        from pipeline.grouped import plan_groups

        return plan_groups(config, pair)
    if config.nan_policy == "mask" and (config.volume or config.ms_ssim):
        raise ValueError(
            "nan_policy='mask' works on 2-D SSIM statistics only; it cannot be combined with "
            f"volume={config.volume} or ms_ssim={config.ms_ssim} (use nan_policy='fail')"
        )
    profile, params = resolve_params(config.profile, **config.ssim_overrides())
    data_range, range_source = resolve_data_range(
        config.data_range, pair.reference.dtype, pair.generated.dtype
    )
    # Volume mode, wang2009's downsampling and MS-SSIM checks (pipeline.family).
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
    )
    depth = overlap_depth(params.win_size)
    shape = (pair.n_images, *pair.image_shape, pair.n_channels)
    if config.volume:
        chunks = plan_volume_chunks(
            tuple(pair.reference.shape),
            depth=depth,
            native=pair.native_chunks,
            chunk_pixels=config.chunk_pixels,
            requested=config.chunks,
            input_chunks=pair.reference.chunks,
        )
        batches: tuple[tuple[int, int], ...] = ((0, 1),)
    else:
        chunks, batches = plan_chunks(
            shape,
            depth=depth,
            native=pair.native_chunks,
            chunk_pixels=config.chunk_pixels,
            requested=config.chunks,
            input_chunks=pair.reference.chunks,
            batch_images=config.batch_images,
        )
    if config.nan_policy == "fail":
        pair = with_finite_check(pair, chunks)
    c1, c2 = params.constants(data_range)
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
    )
    if config.volume:
        statistics = volume_statistics_graph(pair, regions, spec, chunks, config.hist_bins)
    else:
        statistics = _statistics_graph(
            pair, regions, spec, chunks, config.hist_bins, nan_policy=config.nan_policy
        )
    ms = None
    if config.ms_ssim:
        x, y = pair.chunked(chunks)
        ms = ms_ssim_graph(x, y, spec=spec, weights=family.ms_weights)
    attrs = _provenance(config, pair, params, data_range, range_source)
    attrs.update(family.attrs)
    return RunPlan(
        config=config,
        pair=pair,
        profile=profile,
        params=params,
        data_range=data_range,
        data_range_source=range_source,
        regions=regions,
        chunks=chunks,
        batches=batches,
        statistics=statistics,
        attrs=attrs,
        kernel=spec,
        ms_ssim=ms,
        ms_values=None if ms is None else np.full(pair.n_images, np.nan),
    )


def _statistics_graph(
    pair: SourcePair,
    regions: RegionPlan,
    spec: KernelSpec,
    chunks: tuple[tuple[int, ...], ...],
    bins: int,
    *,
    nan_policy: str = "fail",
) -> da.Array:
    """Lazy ``(image, region, field)`` partial statistics, tree-combined over blocks.

    Non-finite pixels never reach a statistic (:mod:`pipeline.nonfinite`).
    """
    arrays = list(pair.chunked(chunks))
    if regions.labels is not None:
        mask = regions.labels[..., None]
        if mask.shape[0] == 1:
            # One mask for every image: broadcast views, never copies per image.
            mask = da.broadcast_to(
                mask.rechunk((1, *chunks[1:3], 1)),
                (*arrays[0].shape[:3], 1),
                chunks=(*chunks[:3], (1,)),
            )
        arrays.append(mask.rechunk((*chunks[:3], (1,))))
    n_regions = len(regions.names)
    floats = pair.reference.dtype.kind == "f" or pair.generated.dtype.kind == "f"

    def on_block(
        x: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        rows: tuple[int, int],
        cols: tuple[int, int],
    ) -> np.ndarray:
        keep = None
        if floats:
            x, y, keep = screen_block(x, y, spec.depth, mask=nan_policy == "mask")
        if n_regions == 1 and keep is None:
            # Region "all" only: the fused kernel reduces each map row in cache.
            whole = spec.whole_statistics(x, y, bins)
            if whole is not None:
                return whole
        maps = spec.maps(x, y)
        n = x.shape[0]
        if maps["ssim"].size == 0:
            return empty_statistics(n, n_regions, bins)
        label_block = None
        if labels is not None:
            # Valid-map pixel (i, j) is the window centred on block pixel (i + depth, j + depth).
            d = spec.depth
            h, w = maps["ssim"].shape[1:]
            label_block = labels[:, d : d + h, d : d + w, 0]
        ids = region_ids(regions, rows, cols, n, label_block)
        if keep is not None:
            return masked_block_statistics(maps, ids, keep, n_regions, bins)
        return block_statistics(maps, ids, n_regions, bins)

    per_block = map_valid_blocks(
        on_block, arrays, depth=spec.depth, out_tail=(n_regions, len(FIELDS) + bins)
    )
    return da.reduction(
        per_block,
        chunk=_keep,
        combine=merge_statistics,
        aggregate=merge_statistics,
        axis=(1, 2),
        dtype=np.float64,
        concatenate=True,
        split_every=8,
        meta=np.empty((0, 0, 0), dtype=np.float64),
    )


def _keep(block: np.ndarray, axis: Any = None, keepdims: bool = True) -> np.ndarray:
    return block


def _provenance(
    config: RunConfig,
    pair: SourcePair,
    params: SSIMParams,
    data_range: float,
    range_source: str,
) -> dict[str, Any]:
    from pipeline import __version__

    identity = json.dumps(pair.identity, sort_keys=True, default=str)
    import hashlib

    attrs: dict[str, Any] = {"profile": config.profile}
    attrs.update({f"ssim_{name}": value for name, value in params.as_dict().items()})
    attrs.update(
        {
            "data_range": data_range,
            "data_range_source": range_source,
            "color_mode": config.color_mode if pair.n_channels > 1 else "grey",
            "n_channels": pair.n_channels,
            "regions": config.regions,
            "hist_bins": config.hist_bins,
            "engine": config.engine,
            "device": config.device,
            "package_version": __version__,
            "config_fingerprint": config.fingerprint(),
            "source_fingerprint": hashlib.sha256(identity.encode()).hexdigest()[:16],
            "sources": identity,
            "config": json.dumps(config.result_mapping(), sort_keys=True, default=str),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    )
    return attrs


def _maps_path(config: RunConfig) -> str:
    if config.maps_output is not None:
        return config.maps_output
    if config.output is not None and config.resolved_output_format() == "zarr":
        return f"{config.output.rstrip('/')}/maps"
    raise ValueError(
        "save_maps needs maps_output (a Zarr path) unless output is a Zarr store "
        f"(got output={config.output!r})"
    )


@dataclass(frozen=True)
class _MapWriter:
    """The valid maps as one Dask array and the Zarr arrays they are stored into."""

    maps: da.Array
    targets: dict[str, zarr.Array]

    def store(self, start: int, stop: int) -> list[Any]:
        region = (slice(start, stop), slice(None), slice(None))
        return [
            da.store(
                self.maps[start:stop, :, :, k],
                cast(Any, target),
                regions=region,
                lock=False,
                compute=False,
            )
            for k, target in enumerate(self.targets.values())
        ]


def _map_writer(plan: RunPlan) -> _MapWriter:
    """Create (or reopen, when resuming) the maps' Zarr arrays, chunked like the input."""
    config, spec = plan.config, plan.kernel
    names = config.maps
    x, y = plan.pair.chunked(plan.chunks)

    def stacked(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        maps = spec.maps(xb, yb)
        return np.stack([maps[name] for name in names], axis=-1)

    valid = valid_map_array(stacked, x, y, depth=spec.depth, n_maps=len(names))
    shape = tuple(int(s) for s in valid.shape[:3])
    chunk = (
        1,
        max(1, min(plan.chunks[1][0], shape[1])),
        max(1, min(plan.chunks[2][0], shape[2])),
    )
    group = zarr.open_group(
        _maps_path(config), mode="a", zarr_format=cast(Literal[2, 3], config.zarr_format)
    )
    targets = {}
    for name in names:
        if name in group:
            target = group[name]
            if not isinstance(target, zarr.Array) or target.shape != shape:
                raise ValueError(
                    f"maps store {_maps_path(config)!r} holds {name!r} of another shape "
                    f"(expected {shape}); pass overwrite=True or another maps_output"
                )
        else:
            target = group.create_array(
                name, shape=shape, chunks=chunk, dtype="float64", fill_value=np.nan
            )
        targets[name] = target
    # Dask chunks equal to the Zarr chunks: no two tasks ever write the same chunk.
    return _MapWriter(valid.rechunk((*chunk, len(names))), targets)


@contextlib.contextmanager
def _scheduler(config: RunConfig, needed: bool = True) -> Iterator[SchedulerSession]:
    """Open ``config.cluster`` (only when there is work) and say where its dashboard is."""
    with open_scheduler(config.cluster if needed else None) as session:
        if session.dashboard_link:
            print(f"Dask dashboard: {session.dashboard_link}", file=sys.stderr, flush=True)
        yield session


def _compute(
    plan: RunPlan,
    start: int,
    stop: int,
    writer: _MapWriter | None = None,
    session: SchedulerSession | None = None,
) -> np.ndarray:
    # Batches are computed from here (the client), so progress and commits work the
    # same under every scheduler; only where the tasks run changes.
    kwargs = session.compute_kwargs if session is not None else {"scheduler": "threads"}
    extra = writer.store(start, stop) if writer is not None else []
    read_status = plan.pair.read_status
    reads = [] if read_status is None else [read_status[start:stop]]
    ms = [] if plan.ms_ssim is None else [plan.ms_ssim[start:stop]]
    packed, *found = dask.compute(plan.statistics[start:stop], *ms, *reads, *extra, **kwargs)
    if ms:
        assert plan.ms_values is not None  # allocated with the graph in plan_run
        plan.ms_values[start:stop] = found.pop(0)
    if reads:
        # Files that failed to decode (same tasks as the pixels): that pair fails, not the run.
        for offset, text in enumerate(found[0]):
            if text != STATUS_OK:
                plan.pair.status[start + offset] = str(text)
    return np.asarray(packed)


def _batch_status(plan: RunPlan, start: int, stop: int) -> list[str]:
    return [plan.pair.status.get(i, STATUS_OK) for i in range(start, stop)]


def _finalize_batch(plan: RunPlan, start: int, stop: int, packed: np.ndarray) -> dict[str, Any]:
    statistics = finalize_statistics(packed)
    if plan.ms_values is not None:
        statistics[MS_SSIM] = plan.ms_values[start:stop].copy()
    if plan.config.nan_policy == "mask":
        statistics[NAN_MASKED] = _valid_windows(plan, start) - statistics["count"][:, 0]
    failed = [i - start for i in range(start, stop) if i in plan.pair.status]
    if failed:
        for values in statistics.values():
            values[failed] = 0 if values.dtype.kind in "iu" else np.nan
    return statistics


def _valid_windows(plan: RunPlan, index: int) -> int:
    """Valid windows of image ``index`` (its size group's shape): what ``count`` is unmasked."""
    offset = 0
    for part in plan.pair.groups or (plan.pair,):
        if index < offset + part.n_images:
            break
        offset += part.n_images
    d = plan.kernel.depth
    height, width = part.image_shape
    return max(height - 2 * d, 0) * max(width - 2 * d, 0)


def evaluate(
    reference: Any,
    generated: Any,
    *,
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    on_batch: BatchCallback | None = None,
    **overrides: Any,
) -> xr.Dataset:
    """SSIM statistics of every image pair, per image and region, computed chunk by chunk.

    Parameters
    ----------
    reference, generated : array or path
        NumPy, Dask or Zarr arrays (or Zarr paths) shaped ``(image, y, x[, channel])``
        or one image ``(y, x[, channel])``; nothing is read before the graph runs.
    config : RunConfig, mapping or path, optional
        Run settings (a YAML path is read with :func:`pipeline.load_config`).
    on_batch : callable, optional
        Called as ``on_batch(done, total, images_in_batch)`` after each committed batch.
    **overrides
        Any :class:`pipeline.config.RunConfig` field, e.g. ``regions="4x4"``,
        ``output="results.zarr"``, ``resume=True``, ``engine="reference"``.

    Returns
    -------
    xarray.Dataset
        The result Dataset of DESIGN.md (lazily opened from the store when
        ``output`` is a Zarr path, in memory otherwise).

    Examples
    --------
    >>> import numpy as np, pipeline as sp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    >>> ds = sp.evaluate(x, x, regions="2x2")
    >>> ds.ssim.sel(region="all").values.tolist()
    [1.0, 1.0, 1.0]
    """
    config = resolve_config(config, **overrides)
    output_format = config.resolved_output_format()
    pair = open_pair(reference, generated, channel_axis=config.channel_axis)
    if config.volume:
        pair = as_volume_pair(pair)  # one row: the volume
    plan = plan_run(config, pair)
    common: dict[str, Any] = {
        "image": pair.image,
        "reference": pair.reference_names,
        "generated": pair.generated_names,
        "regions": plan.regions.names,
    }
    if output_format == "zarr":
        assert config.output is not None
        template = template_dataset(
            **common,
            bins=config.hist_bins,
            batch_images=plan.batch_images,
            attrs=plan.attrs,
            ms_ssim=plan.ms_ssim is not None,
            nan_masked=config.nan_policy == "mask",
        )
        sink = ZarrSink(
            config.output,
            template,
            batch_images=plan.batch_images,
            zarr_format=config.zarr_format,
            resume=config.resume,
            overwrite=config.overwrite,
        )
        try:
            writer = _map_writer(plan) if config.save_maps else None
            todo = sink.pending(plan.batches)
            with _scheduler(config, needed=bool(todo)) as session:
                for done, (start, stop) in enumerate(todo, 1):
                    packed = _compute(plan, start, stop, writer, session)
                    sink.write(
                        start,
                        stop,
                        _finalize_batch(plan, start, stop, packed),
                        _batch_status(plan, start, stop),
                    )
                    if on_batch is not None:
                        on_batch(done, len(todo), stop - start)
        finally:
            sink.close()
        return open_results(config.output)

    if output_format in ("netcdf", "csv"):
        _fresh_path(config)  # refuse an existing file before any work
    writer = _map_writer(plan) if config.save_maps else None
    parts = []
    with _scheduler(config) as session:
        for done, (start, stop) in enumerate(plan.batches, 1):
            parts.append(_compute(plan, start, stop, writer, session))
            if on_batch is not None:
                on_batch(done, len(plan.batches), stop - start)
    packed = np.concatenate(parts, axis=0)
    statistics = _finalize_batch(plan, 0, pair.n_images, packed)
    ds = build_dataset(
        statistics,
        **common,
        status=_batch_status(plan, 0, pair.n_images),
        attrs=plan.attrs,
    )
    if output_format == "netcdf":
        export_netcdf(ds, _fresh_path(config))
    elif output_format == "csv":
        export_csv(ds, _fresh_path(config))
    return ds


def _fresh_path(config: RunConfig) -> Path:
    assert config.output is not None
    path = Path(config.output)
    if path.exists() and not config.overwrite:
        raise FileExistsError(
            f"output {str(path)!r} already exists; pass overwrite=True to replace it"
        )
    return path
