"""``evaluate``: sources -> tiling -> kernels -> reductions -> dataset -> sinks.

Everything the user can get wrong is checked in :func:`~pipeline.engine.plan.plan_run`
before a pixel is read, and the graph of partial statistics is built there once.
This module runs it: one commit batch (a group of image chunks) at a time,
inside one scheduler session; each batch's statistics go straight to the sink
(and the SSIM maps, when saved, to their Zarr arrays), so an interrupted run
keeps what it finished and ``resume=True`` computes the rest. The output may be a
local path or an object-store URL (``s3://``, ``gs://``, ``az://``): the store keeps
the same promises there (see :mod:`pipeline.results.stores`), opened with the
settings' ``storage_options``.

The plan is frozen; what the run learns while it computes (pairs that failed to
read or to score, the MS-SSIM values of computed batches) is kept in the run
loop's own :class:`RunState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from pipeline.engine.batches import (
    BatchCallback,
    RetryCallback,
    RunState,
    batch_status,
    finalize_batch,
    fresh_path,
    open_sink,
    run_scheduler,
    run_storage_options,
)
from pipeline.engine.mean_maps import MeanMapRun
from pipeline.engine.models import evaluate_models
from pipeline.engine.plan import GroupPlan, RunPlan, plan_run
from pipeline.engine.saved_maps import MapWriter, map_writer
from pipeline.engine.schedulers import SchedulerSession
from pipeline.engine.settings import RunConfig, resolve_config
from pipeline.inputs.files import is_transient_status
from pipeline.inputs.models import is_several_models
from pipeline.inputs.opening import open_pair
from pipeline.reductions.kernel_spec import KernelSpec
from pipeline.reductions.mean_maps import MapSums
from pipeline.results.schema import STATUS_OK, build_dataset, template_dataset
from pipeline.results.stores import (
    ZarrSink,
    export_csv,
    export_netcdf,
    open_results,
)
from pipeline.storage.locations import location

__all__ = ["GroupPlan", "KernelSpec", "RunPlan", "evaluate", "plan_run"]


def _compute(
    plan: RunPlan,
    state: RunState,
    start: int,
    stop: int,
    writer: MapWriter | None = None,
    session: SchedulerSession | None = None,
    mean_maps: MeanMapRun | None = None,
) -> np.ndarray:
    # Batches are computed from here (the client), so progress and commits work the
    # same under every scheduler; only where the tasks run changes.
    kwargs = session.compute_kwargs if session is not None else {"scheduler": "threads"}
    extra = writer.store(start, stop) if writer is not None else []
    read_status = plan.read_status
    reads = [] if read_status is None else [read_status[start:stop]]
    ms = [] if plan.ms_ssim is None else [plan.ms_ssim[start:stop]]
    # The batch's mean-map sum, in the same compute: the reads are shared.
    sums = None if mean_maps is None else mean_maps.lazy_sums(start, stop, state.status)
    means = [] if sums is None else [sums]
    packed, *found = dask.compute(
        plan.statistics[start:stop], *means, *ms, *reads, *extra, **kwargs
    )
    state.batch_map = found.pop(0) if means else None
    if ms:
        assert state.ms_ssim is not None  # allocated with the state when MS-SSIM is on
        state.ms_ssim[start:stop] = found.pop(0)
    if reads:
        # Files that failed to decode (same tasks as the pixels): that pair fails, not the run.
        for offset, text in enumerate(found[0]):
            if text != STATUS_OK:
                state.status[start + offset] = str(text)
    if writer is not None:
        writer.clear_failed(state.status, start, stop)  # before the batch's status commits
    return np.asarray(packed)


def _commit_batch(
    plan: RunPlan,
    state: RunState,
    sink: ZarrSink,
    start: int,
    stop: int,
    writer: MapWriter | None,
    session: SchedulerSession,
    mean_maps: MeanMapRun | None = None,
) -> None:
    """Compute pairs ``[start, stop)`` and commit them to the store.

    A function of its own so that the batch's arrays are freed when it returns: a
    loop variable would keep one batch's statistics alive while the next one is
    computed, doubling the peak memory of every run longer than one batch.
    """
    packed = _compute(plan, state, start, stop, writer, session, mean_maps)
    statistics = finalize_batch(plan, state, start, stop, packed)
    del packed  # finalized: the packed partial statistics are no longer needed
    if mean_maps is not None:
        # Stored before the status commits the batch: a committed batch has its sums.
        sums = _settle_mean_map(mean_maps, state, start, stop, session)
        group = mean_maps.group_of(start)
        sink.write_mean_map_partial(group, start, stop, sums.sums, sums.count)
    sink.write(start, stop, statistics, batch_status(state, start, stop))


def _settle_mean_map(
    mean_maps: MeanMapRun, state: RunState, start: int, stop: int, session: SchedulerSession
) -> MapSums:
    """The batch's mean-map sums over its ``ok`` pairs (see :mod:`pipeline.engine.mean_maps`)."""
    computed, state.batch_map = state.batch_map, None
    return mean_maps.settle(start, stop, computed, state.status, session.compute_kwargs)


def evaluate(
    reference: Any,
    generated: Any,
    *,
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    on_batch: BatchCallback | None = None,
    on_retry: RetryCallback | None = None,
    **overrides: Any,
) -> xr.Dataset:
    """SSIM statistics of every image pair, per image and region, computed chunk by chunk.

    Parameters
    ----------
    reference, generated : array or path
        NumPy, Dask or Zarr arrays (or Zarr paths) shaped ``(image, y, x[, channel])``
        or one image ``(y, x[, channel])``, folders of image files, image files;
        nothing is read before the graph runs. ``generated`` may also be a list of
        such sources or a mapping ``{name: source}``: several models evaluated against
        the same reference in one run (see :func:`evaluate_models`).
    config : RunConfig, mapping or path, optional
        Run settings (a YAML path is read with :func:`pipeline.load_config`).
    on_batch : callable, optional
        Called as ``on_batch(done, total, images_in_batch)`` after each committed batch.
    on_retry : callable, optional
        With ``resume=True``: called once, before any work, as ``on_retry(n_pairs)``
        when the store holds pairs that failed for a transient reason (file not found,
        permission, I/O error; see :func:`pipeline.inputs.files.is_transient_status`).
        Their batches are computed again and their rows overwritten; a file that was
        read and did not decode stays failed and is not retried.
    **overrides
        Any :class:`pipeline.engine.settings.RunConfig` field, e.g. ``regions="4x4"``,
        ``output="results.zarr"`` (or ``"s3://bucket/results.zarr"``), ``resume=True``,
        ``engine="reference"``.

    Returns
    -------
    xarray.Dataset
        The result Dataset (lazily opened from the store when
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
    if config.output is not None:
        location(config.output, writable=True, what="output")  # e.g. HTTP: refused before any read
    if is_several_models(generated):
        return evaluate_models(
            reference, generated, config=config, on_batch=on_batch, on_retry=on_retry
        )
    pair = open_pair(
        reference,
        generated,
        channel_axis=config.channel_axis,
        options=config.input_options(),
    )
    plan = plan_run(config, pair)  # a volume run has one row: the volume
    pair = plan.pair
    state = RunState.start(plan)
    common: dict[str, Any] = {
        "image": pair.image,
        "reference": pair.reference_names,
        "generated": pair.generated_names,
        "regions": plan.region_names,
    }
    if output_format == "zarr":
        assert config.output is not None
        template = template_dataset(
            **common,
            bins=config.hist_bins,
            batch_images=plan.batch_images,
            attrs=dict(plan.attrs),
            ms_ssim=plan.ms_ssim is not None,
            nan_masked=config.nan_policy == "mask",
        )
        mean_maps = MeanMapRun.of(plan)
        if mean_maps is not None:
            template = template.merge(mean_maps.dataset(), combine_attrs="override")
        sink = open_sink(config, template, plan.batch_images)
        try:
            writer = map_writer(plan) if config.save_maps else None
            todo, n_retried = sink.pending(
                plan.batches, retry=is_transient_status if config.resume else None
            )
            if n_retried and on_retry is not None:
                on_retry(n_retried)
            del template  # the store has it; only per-batch data is held from here on
            with run_scheduler(config, needed=bool(todo)) as session:
                for done, (start, stop) in enumerate(todo, 1):
                    _commit_batch(plan, state, sink, start, stop, writer, session, mean_maps)
                    if on_batch is not None:
                        on_batch(done, len(todo), stop - start)
                if mean_maps is not None:
                    # Every batch is committed: reduced from the stored sums, also when resumed.
                    means = mean_maps.from_partials(sink, session.compute_kwargs)
                    sink.write_mean_maps(means)
        finally:
            sink.close()
        return open_results(config.output, storage_options=run_storage_options(config))

    if output_format in ("netcdf", "csv"):
        fresh_path(config)  # refuse an existing file before any work
    writer = map_writer(plan) if config.save_maps else None
    mean_maps = MeanMapRun.of(plan)
    map_sums = [] if mean_maps is None else [MapSums.zeros(s) for s in mean_maps.shapes]
    # Filled batch by batch: the results and one batch, never every batch's packed
    # partial statistics plus their concatenation plus the results.
    statistics: dict[str, np.ndarray] = {}
    with run_scheduler(config) as session:
        for done, (start, stop) in enumerate(plan.batches, 1):
            packed = _compute(plan, state, start, stop, writer, session, mean_maps)
            part = finalize_batch(plan, state, start, stop, packed)
            del packed
            if mean_maps is not None:
                group = mean_maps.group_of(start)
                map_sums[group].add(_settle_mean_map(mean_maps, state, start, stop, session))
            for name, values in part.items():
                if name not in statistics:
                    statistics[name] = np.empty((pair.n_images, *values.shape[1:]), values.dtype)
                statistics[name][start:stop] = values
            del part
            if on_batch is not None:
                on_batch(done, len(plan.batches), stop - start)
    ds = build_dataset(
        statistics,
        **common,
        status=batch_status(state, 0, pair.n_images),
        attrs=dict(plan.attrs),
    )
    if mean_maps is not None:
        ds = ds.merge(mean_maps.dataset(map_sums), combine_attrs="override")
    options = run_storage_options(config)
    if output_format == "netcdf":
        export_netcdf(ds, fresh_path(config), storage_options=options)
    elif output_format == "csv":
        export_csv(ds, fresh_path(config), storage_options=options)
    return ds
