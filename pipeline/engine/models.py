"""Several generated sources (models) against one reference, in one run.

:func:`evaluate_models` opens each model's pair against the same reference
(:func:`pipeline.inputs.models.open_models`) and plans each one as a run of its
own (:func:`pipeline.engine.plan.plan_run`): same checks, same graphs, so each
model's values are exactly those of its own run. The run then computes the
models in lockstep, one commit batch at a time: a single ``dask.compute`` call
takes every model's statistics of the batch, and the reference decode tasks,
whose graph keys depend on the reference alone, are shared by all of them --
each reference is decoded once per run, not once per model. The batch's rows of
every model are then committed together (one chunk of the store holds them). With
``save_maps``, each model's map writes of the batch are tasks of the same compute,
into the model's own group of the maps store (:mod:`pipeline.engine.saved_maps`), so
each model's saved maps are those of its own run.

The Dataset gains a leading ``model`` dimension (coordinate ``model``; ``generated``
becomes ``(model, image)``); ``ds.sel(model=name, drop=True)`` holds that model's
own run. Every model has the same ``image`` axis, size groups and batches, those of
the references (:func:`pipeline.inputs.models.open_models`): a reference that one
folder lacks, or whose file in one folder is unreadable, truncated, not an image, or
of another size, dtype or channel count, is a failed row of that model only (the
reason in ``status`` names the file, and both shapes for a size mismatch), in the
slot its reference has in every model; the other models' rows, and that model's
other rows, equal their own runs. Plans whose rows would still not line up (a guard:
no source opened by :func:`~pipeline.inputs.models.open_models` gives them) are
refused, naming the models.
"""

from __future__ import annotations

import hashlib
import json
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
    join_models,
    open_sink,
    run_scheduler,
    run_storage_options,
)
from pipeline.engine.mean_maps import (
    MeanMapRun,
    keep_model_sums,
    lazy_model_sums,
    models_dataset,
    settle_models,
    slot_key,
)
from pipeline.engine.plan import RunPlan, plan_run
from pipeline.engine.saved_maps import MapWriter, map_writer
from pipeline.engine.schedulers import SchedulerSession
from pipeline.engine.settings import RunConfig
from pipeline.inputs.files import is_transient_status
from pipeline.inputs.models import model_sources, open_models
from pipeline.inputs.sources import SourcePair
from pipeline.reductions.mean_maps import MapSums
from pipeline.results.schema import (
    AMBIGUOUS,
    GENERATED,
    MODEL,
    MODEL_ATTRS,
    MODELS,
    SIZE_GROUPS,
    SKIPPED_FILES,
    STATUS_OK,
    UNPAIRED_GENERATED,
    UNPAIRED_REFERENCE,
    build_dataset,
    template_dataset,
)
from pipeline.results.stores import (
    MAPS_GROUP,
    ZarrSink,
    export_csv,
    export_netcdf,
    maps_groups,
    open_results,
)

__all__ = ["evaluate_models"]

# Attrs that describe one model's pairing: kept per model in ``model_attrs``; the lists
# also at the top level, each entry prefixed with its model's name.
_PER_MODEL_LISTS = (UNPAIRED_REFERENCE, UNPAIRED_GENERATED, AMBIGUOUS, SKIPPED_FILES)
_PER_MODEL = (
    *_PER_MODEL_LISTS,
    SIZE_GROUPS,
    "sources",
    "source_fingerprint",
    "data_range",
    "data_range_source",
)


def evaluate_models(
    reference: Any,
    generated: Any,
    *,
    config: RunConfig,
    on_batch: BatchCallback | None = None,
    on_retry: RetryCallback | None = None,
) -> xr.Dataset:
    """Every model of ``generated`` (a list or a mapping ``{name: source}``) against ``reference``.

    Called by :func:`pipeline.evaluate` when ``generated`` holds several sources;
    same parameters and outputs, the Dataset with a leading ``model`` dimension.
    ``on_batch(done, total, pairs)`` counts the pairs of every model in the batch
    (images times models).

    Raises
    ------
    ValueError
        Models whose plans do not line up (other images, order or batching: named),
        or any error of one model's pair (prefixed with the model's name).
    """
    named = model_sources(generated)
    names = [name for name, _ in named]
    pairs = open_models(
        reference, named, channel_axis=config.channel_axis, options=config.input_options()
    )
    plans = [_plan_model(config, name, pair) for name, pair in zip(names, pairs, strict=True)]
    _check_aligned(names, plans)
    first = plans[0]
    states = [RunState.start(plan) for plan in plans]
    groups = maps_groups(names) if config.save_maps else None
    attrs = _attrs(names, plans, groups)
    n_images = first.pair.n_images
    generated_names = np.stack([np.asarray(plan.pair.generated_names) for plan in plans])
    output_format = config.resolved_output_format()
    # Mean maps: one run of sums per model, in the same batches (pipeline.engine.mean_maps).
    runs = [MeanMapRun.of(plan, m) for m, plan in enumerate(plans)]
    mean_maps = None if any(r is None for r in runs) else [r for r in runs if r is not None]
    if output_format == "zarr":
        assert config.output is not None
        template = _template(names, plans, attrs)
        if mean_maps is not None:
            maps = models_dataset(names, [run.dataset() for run in mean_maps])
            template = template.merge(maps, combine_attrs="override")
        sink = open_sink(config, template, first.batch_images)
        try:
            writers = _map_writers(names, plans, groups)
            todo, n_retried = sink.pending(
                first.batches, retry=is_transient_status if config.resume else None
            )
            if n_retried and on_retry is not None:
                on_retry(n_retried)
            del template
            with run_scheduler(config, needed=bool(todo)) as session:
                for done, (start, stop) in enumerate(todo, 1):
                    _commit_models(plans, states, sink, start, stop, session, mean_maps, writers)
                    if on_batch is not None:
                        on_batch(done, len(todo), (stop - start) * len(plans))
                if mean_maps is not None:
                    # Every batch is committed: each model's means from its stored sums.
                    kwargs = session.compute_kwargs
                    means = [run.from_partials(sink, kwargs) for run in mean_maps]
                    sink.write_mean_maps(models_dataset(names, means))
        finally:
            sink.close()
        return open_results(config.output, storage_options=run_storage_options(config))

    if output_format in ("netcdf", "csv"):
        fresh_path(config)
    statistics: dict[str, np.ndarray] = {}
    totals = [[MapSums.zeros(shape) for shape in run.shapes] for run in mean_maps or []]
    writers = _map_writers(names, plans, groups)
    with run_scheduler(config) as session:
        for done, (start, stop) in enumerate(first.batches, 1):
            part = _batch_models(plans, states, start, stop, session, mean_maps, writers)
            if mean_maps is not None:
                settled = settle_models(mean_maps, states, start, stop, session.compute_kwargs)
                for total, run, sums in zip(totals, mean_maps, settled, strict=True):
                    total[run.group_of(start)].add(sums)
            for name, values in part.items():
                if name not in statistics:
                    shape = (len(plans), n_images, *values.shape[2:])
                    statistics[name] = np.empty(shape, values.dtype)
                statistics[name][:, start:stop] = values
            del part
            if on_batch is not None:
                on_batch(done, len(first.batches), (stop - start) * len(plans))
    datasets = [
        build_dataset(
            {name: values[m] for name, values in statistics.items()},
            image=plan.pair.image,
            reference=list(plan.pair.reference_names),
            generated=list(plan.pair.generated_names),
            regions=plan.region_names,
            status=batch_status(states[m], 0, n_images),
            attrs=attrs,
        )
        for m, plan in enumerate(plans)
    ]
    ds = _stacked(names, datasets, generated_names, attrs)
    if mean_maps is not None:
        means = [run.dataset(total) for run, total in zip(mean_maps, totals, strict=True)]
        ds = ds.merge(models_dataset(names, means), combine_attrs="override")
    options = run_storage_options(config)
    if output_format == "netcdf":
        export_netcdf(ds, fresh_path(config), storage_options=options)
    elif output_format == "csv":
        export_csv(ds, fresh_path(config), storage_options=options)
    return ds


def _plan_model(config: RunConfig, name: str, pair: SourcePair) -> RunPlan:
    """:func:`plan_run` of one model, its refusals naming the model.

    E.g. a stack of another dtype than the reference's with no data range given.
    """
    try:
        return plan_run(config, pair)
    except ValueError as error:
        raise ValueError(f"model {name!r}: {error}") from None


def _check_aligned(names: list[str], plans: list[RunPlan]) -> None:
    """Refuse models that do not pair the same images in the same order and batches."""
    first = plans[0]
    ours = [str(v) for v in first.pair.image]
    for name, plan in zip(names[1:], plans[1:], strict=True):
        theirs = [str(v) for v in plan.pair.image]
        if theirs != ours:
            missing = sorted(set(ours) - set(theirs))
            extra = sorted(set(theirs) - set(ours))
            detail = []
            if missing:
                detail.append(f"{name!r} lacks {_few(missing)} that {names[0]!r} pairs")
            if extra:
                detail.append(f"{name!r} pairs {_few(extra)} that {names[0]!r} lacks")
            if not detail:
                detail.append("the same images in another order")
            raise ValueError(
                f"models {names[0]!r} and {name!r} pair different images with the reference: "
                f"{'; '.join(detail)}. Every model must pair the same reference images; "
                "evaluate such a model in a run of its own"
            )
        if plan.batches != first.batches or plan.region_names != first.region_names:
            raise ValueError(
                f"models {names[0]!r} and {name!r} pair the same images in other size groups, "
                "batches or regions; evaluate such a model in a run of its own"
            )


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{len(ids)} image(s) ({shown}{more})"


def _attrs(
    names: list[str], plans: list[RunPlan], groups: list[str] | None = None
) -> dict[str, Any]:
    """The run's attrs: the first model's settings, each model's pairing, one fingerprint.

    ``groups``: each model's group in the maps store (``save_maps``), kept per model
    as ``maps_group`` so that each model's results find their own saved maps.
    """
    attrs = dict(plans[0].attrs)
    per_model = {
        name: {key: plan.attrs[key] for key in _PER_MODEL if key in plan.attrs}
        for name, plan in zip(names, plans, strict=True)
    }
    for name, group in zip(names, groups or [], strict=False):
        per_model[name][MAPS_GROUP] = group
    for key in _PER_MODEL_LISTS:
        if key in attrs:
            attrs[key] = [
                f"{name}: {entry}"
                for name, plan in zip(names, plans, strict=True)
                for entry in plan.attrs.get(key, [])
            ]
    identity = json.dumps(
        [
            [name, plan.attrs.get("source_fingerprint")]
            for name, plan in zip(names, plans, strict=True)
        ]
    )
    attrs["source_fingerprint"] = hashlib.sha256(identity.encode()).hexdigest()[:16]
    attrs["sources"] = json.dumps(
        {name: plan.attrs.get("sources") for name, plan in zip(names, plans, strict=True)}
    )
    attrs[MODELS] = json.dumps(names)
    attrs[MODEL_ATTRS] = json.dumps(per_model, default=str)
    return attrs


def _stacked(
    names: list[str],
    datasets: list[xr.Dataset],
    generated_names: np.ndarray,
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Per-model Datasets of one layout joined along a leading ``model`` dimension."""
    parts = [ds.drop_vars(GENERATED) for ds in datasets]
    ds = join_models(names, parts)
    ds = ds.assign_coords({GENERATED: ((MODEL, "image"), generated_names.astype(object))})
    ds[MODEL] = ds[MODEL].astype(object)
    ds.attrs = dict(attrs)
    return ds


def _template(names: list[str], plans: list[RunPlan], attrs: dict[str, Any]) -> xr.Dataset:
    """The store's layout: each model's template joined along ``model`` (one chunk)."""
    config = plans[0].config
    datasets = [
        template_dataset(
            image=plan.pair.image,
            reference=list(plan.pair.reference_names),
            generated=list(plan.pair.generated_names),
            regions=plan.region_names,
            bins=config.hist_bins,
            batch_images=plan.batch_images,
            attrs=attrs,
            ms_ssim=plan.ms_ssim is not None,
            nan_masked=config.nan_policy == "mask",
        )
        for plan in plans
    ]
    generated_names = np.stack([np.asarray(plan.pair.generated_names) for plan in plans])
    ds = _stacked(names, datasets, generated_names, attrs)
    for name, variable in ds.data_vars.items():
        if variable.chunks is not None:  # the statistics: one chunk over every model
            ds[name] = variable.chunk({MODEL: -1})
    return ds


def _map_writers(
    names: list[str], plans: list[RunPlan], groups: list[str] | None
) -> list[MapWriter] | None:
    """Each model's map writer, into its own group of the maps store (``save_maps``)."""
    if groups is None:
        return None
    return [
        map_writer(plan, model=(name, group))
        for name, plan, group in zip(names, plans, groups, strict=True)
    ]


def _batch_models(
    plans: list[RunPlan],
    states: list[RunState],
    start: int,
    stop: int,
    session: SchedulerSession,
    mean_maps: list[MeanMapRun] | None = None,
    writers: list[MapWriter] | None = None,
) -> dict[str, np.ndarray]:
    """Every model's finalized statistics of pairs ``[start, stop)``, stacked on ``model``.

    One ``dask.compute`` takes all models' graphs: the tasks they share (the reference
    decode) run once. With ``mean_maps``, each model's map sums of the batch come from
    the same block tasks (kept in its state until settled on its ``ok`` pairs). With
    ``writers`` (``save_maps``), each model's map writes of the batch are in the same
    compute, and its failed pairs' maps are NaN before the batch is committed.
    """
    wanted: list[Any] = []
    layout: list[tuple[int, int, int]] = []  # per model: index of statistics, ms, reads
    for plan in plans:
        at = len(wanted)
        wanted.append(plan.statistics[start:stop])
        ms = -1
        if plan.ms_ssim is not None:
            ms = len(wanted)
            wanted.append(plan.ms_ssim[start:stop])
        reads = -1
        if plan.read_status is not None:
            reads = len(wanted)
            wanted.append(plan.read_status[start:stop])
        layout.append((at, ms, reads))
    lazy = [] if mean_maps is None else lazy_model_sums(mean_maps, states, start, stop)
    sums = [m for m in lazy if m is not None]
    stores = [task for writer in writers or [] for task in writer.store(start, stop)]
    found = dask.compute(*wanted, *sums, *stores, **session.compute_kwargs)
    if mean_maps is not None:
        keep_model_sums(states, lazy, list(found[len(wanted) : len(wanted) + len(sums)]))
    parts = []
    for plan, state, (at, ms, reads) in zip(plans, states, layout, strict=True):
        if ms >= 0:
            assert state.ms_ssim is not None
            state.ms_ssim[start:stop] = found[ms]
        if reads >= 0:
            for offset, text in enumerate(found[reads]):
                if text != STATUS_OK:
                    state.status[start + offset] = str(text)
        parts.append(finalize_batch(plan, state, start, stop, np.asarray(found[at])))
    for writer, state in zip(writers or [], states, strict=False):
        writer.clear_failed(state.status, start, stop)
    return {name: np.stack([part[name] for part in parts]) for name in parts[0]}


def _commit_models(
    plans: list[RunPlan],
    states: list[RunState],
    sink: ZarrSink,
    start: int,
    stop: int,
    session: SchedulerSession,
    mean_maps: list[MeanMapRun] | None = None,
    writers: list[MapWriter] | None = None,
) -> None:
    """Compute pairs ``[start, stop)`` of every model and commit them in one batch."""
    statistics = _batch_models(plans, states, start, stop, session, mean_maps, writers)
    if mean_maps is not None:
        # Stored before the status commits the batch: a committed batch has its sums.
        settled = settle_models(mean_maps, states, start, stop, session.compute_kwargs)
        for m, (run, sums) in enumerate(zip(mean_maps, settled, strict=True)):
            slot = slot_key(run.group_of(start), m)
            sink.write_mean_map_partial(slot, start, stop, sums.sums, sums.count)
    status = np.array([batch_status(state, start, stop) for state in states], dtype=object)
    sink.write(start, stop, statistics, status)
