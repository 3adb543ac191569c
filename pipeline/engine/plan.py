"""``plan_run``: a checked run and its lazy graph of partial statistics.

The planning half of :func:`pipeline.engine.run.evaluate`: everything the user can
get wrong is checked here before a pixel is read (parameters, data range,
window, colour, regions), the chunks and commit batches are planned
(:mod:`pipeline.tiling.chunks`), and the lazy graph sources -> tiling -> kernels
(:class:`~pipeline.reductions.kernel_spec.KernelSpec`) -> reductions is built once, with
the provenance attrs of the Dataset. Nothing is computed here; the run loop in
:mod:`pipeline.engine.run` computes the :class:`RunPlan` batch by batch.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, replace
from typing import Any

import dask.array as da
import numpy as np

from pipeline.engine.family import prepare_family
from pipeline.engine.multiscale import ms_ssim_graph
from pipeline.engine.schedulers import LOCAL_SCHEDULERS
from pipeline.engine.settings import RunConfig
from pipeline.engine.volumes import plan_volume_chunks, volume_statistics_graph
from pipeline.inputs.sources import SourcePair
from pipeline.metrics.checks import check_window_fits, resolve_data_range
from pipeline.metrics.colour import check_color_mode
from pipeline.metrics.profiles import Profile, SSIMParams, resolve_params
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.nonfinite import masked_block_statistics, screen_block, with_finite_check
from pipeline.reductions.regions import RegionPlan, parse_regions, region_ids
from pipeline.reductions.statistics import (
    FIELDS,
    block_statistics,
    empty_statistics,
    unscored_reasons,
)
from pipeline.results.schema import STATUS_OK
from pipeline.tiling.chunks import (
    map_valid_blocks,
    merge_block_statistics,
    overlap_depth,
    plan_chunks,
    statistics_bytes_per_image,
)

__all__ = ["DATA_RANGE_BY_DTYPE", "RunPlan", "plan_run"]

# Result attr: JSON ``{dtype: {"data_range": L or null, "source": ...}}``, the data
# range every dtype of the run was scored with and where it came from.
DATA_RANGE_BY_DTYPE = "data_range_by_dtype"


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
    # MS-SSIM per image: the lazy graph, and the values of computed batches.
    ms_ssim: da.Array | None = None
    ms_values: np.ndarray | None = None

    @property
    def batch_images(self) -> int:
        return self.batches[0][1] - self.batches[0][0]


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
    """Check everything, plan the chunks and build the lazy statistics graph."""
    _check_device(config)
    if pair.groups:
        # Several image shapes (folders): one plan per size group, joined (grouped.py).
        from pipeline.engine.groups import plan_groups

        return plan_groups(config, pair)
    if config.nan_policy == "mask" and (config.volume or config.ms_ssim):
        raise ValueError(
            "nan_policy='mask' works on 2-D SSIM statistics only; it cannot be combined with "
            f"volume={config.volume} or ms_ssim={config.ms_ssim} (use nan_policy='fail')"
        )
    profile, params = resolve_params(config.profile, **config.ssim_overrides())
    data_range, range_source = resolve_data_range(
        config.data_range, pair.reference.dtype, pair.generated.dtype, config.data_ranges
    )
    # C1, C2 beyond float64 are refused here, before any pixel is read.
    c1, c2 = params.constants(data_range)
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
            statistics_bytes=statistics_bytes_per_image(len(regions.names), config.hist_bins),
        )
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
    pair = _with_statistics_check(pair, statistics, ms, chunks)
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

    Non-finite pixels never reach a statistic (:mod:`pipeline.reductions.nonfinite`).
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
    return merge_block_statistics(per_block, axis=(1, 2))


def _with_statistics_check(
    pair: SourcePair,
    statistics: da.Array,
    ms: da.Array | None,
    chunks: tuple[tuple[int, ...], ...],
) -> SourcePair:
    """``pair`` whose ``read_status`` also fails pairs whose statistics are not a score.

    A pair is ``ok`` only with a finite score
    (:func:`pipeline.reductions.statistics.unscored_reasons`): NaN or Inf sums
    (arithmetic that overflowed) or no window at all fail it with the reason. The
    check reads the merged statistics of the same graph, so the engine computes them
    once for both.
    """
    prior = pair.read_status
    if prior is None:
        prior = da.full(pair.n_images, STATUS_OK, dtype=object, chunks=(chunks[0],))

    def describe(status: np.ndarray, packed: np.ndarray, *ms_values: np.ndarray) -> np.ndarray:
        out = np.asarray(status, dtype=object).copy()
        reasons = unscored_reasons(packed, ms_values[0] if ms_values else None)
        for i, reason in enumerate(reasons):
            if out[i] == STATUS_OK and reason is not None:
                out[i] = reason
        return out

    extra: list[Any] = [] if ms is None else [ms, "i"]
    status = da.blockwise(
        describe,
        "i",
        prior,
        "i",
        statistics,
        "ijk",
        *extra,
        dtype=object,
        concatenate=True,
        meta=np.empty((0,), dtype=object),
    )
    return replace(pair, read_status=status)


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
            DATA_RANGE_BY_DTYPE: json.dumps(
                {_dtype_key(pair): {"data_range": data_range, "source": range_source}}
            ),
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


def _dtype_key(pair: SourcePair) -> str:
    """The dtype a data range is recorded under: ``"uint8"``, or ``"uint8/float32"``."""
    x, y = pair.reference.dtype, pair.generated.dtype
    return x.name if x == y else f"{x.name}/{y.name}"
