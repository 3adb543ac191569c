"""The batch loop's parts that every run shares: what a run learns, finalizing a batch.

:mod:`pipeline.engine.run` (one generated source) and :mod:`pipeline.engine.models`
(several, in one run) compute commit batches the same way: the state a run learns
while it computes (:class:`RunState`), each batch's finalized statistics
(:func:`finalize_batch`) and statuses (:func:`batch_status`), the scheduler session
and the output checks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.engine.plan import GroupPlan, RunPlan
from pipeline.engine.schedulers import SchedulerSession, open_scheduler
from pipeline.engine.settings import RunConfig
from pipeline.reductions.statistics import finalize_statistics
from pipeline.results.schema import MODEL, MS_SSIM, NAN_MASKED, STATUS_OK
from pipeline.results.stores import ZarrSink, output_exists
from pipeline.storage.locations import location

__all__ = [
    "BatchCallback",
    "RetryCallback",
    "RunState",
    "batch_status",
    "finalize_batch",
    "fresh_path",
    "run_scheduler",
    "run_storage_options",
    "valid_windows",
]

BatchCallback = Callable[[int, int, int], None]
RetryCallback = Callable[[int], None]


def run_storage_options(config: RunConfig) -> dict[str, Any]:
    """The filesystem options of the run's URLs (credentials, endpoint), or none."""
    return dict(config.storage_options)


def open_sink(config: RunConfig, template: xr.Dataset, batch_images: int) -> ZarrSink:
    """The run's Zarr results store (created, resumed or overwritten as ``config`` says)."""
    assert config.output is not None
    return ZarrSink(
        config.output,
        template,
        batch_images=batch_images,
        zarr_format=config.zarr_format,
        resume=config.resume,
        overwrite=config.overwrite,
        storage_options=run_storage_options(config),
    )


@dataclass
class RunState:
    """What the run learns as it computes: never written into the (frozen) plan.

    Attributes
    ----------
    status : dict
        Failed pairs, row -> reason: those the plan knew before any read, then those
        whose reads or statistics failed in a computed batch.
    ms_ssim : numpy.ndarray, optional
        MS-SSIM per pair, NaN until its batch is computed (None when MS-SSIM is off).
    batch_map : numpy.ndarray, optional
        The last computed batch's mean-map sums over all its rows (None when mean maps
        are off, or until a batch is computed).
    """

    status: dict[int, str]
    ms_ssim: np.ndarray | None
    batch_map: np.ndarray | None = None

    @classmethod
    def start(cls, plan: RunPlan) -> RunState:
        ms = None if plan.ms_ssim is None else np.full(plan.n_images, np.nan)
        return cls(status=dict(plan.failed), ms_ssim=ms)


@contextlib.contextmanager
def run_scheduler(config: RunConfig, needed: bool = True) -> Iterator[SchedulerSession]:
    """Open ``config.cluster`` (only when there is work) and say where its dashboard is."""
    with open_scheduler(config.cluster if needed else None) as session:
        if session.dashboard_link:
            print(f"Dask dashboard: {session.dashboard_link}", file=sys.stderr, flush=True)
        yield session


def batch_status(state: RunState, start: int, stop: int) -> list[str]:
    return [state.status.get(i, STATUS_OK) for i in range(start, stop)]


def finalize_batch(
    plan: RunPlan, state: RunState, start: int, stop: int, packed: np.ndarray
) -> dict[str, Any]:
    statistics = finalize_statistics(packed)
    if state.ms_ssim is not None:
        statistics[MS_SSIM] = state.ms_ssim[start:stop].copy()
    if plan.config.nan_policy == "mask":
        statistics[NAN_MASKED] = valid_windows(plan.group_of(start)) - statistics["count"][:, 0]
    failed = [i - start for i in range(start, stop) if i in state.status]
    if failed:
        for values in statistics.values():
            values[failed] = 0 if values.dtype.kind in "iu" else np.nan
    return statistics


def valid_windows(group: GroupPlan) -> int:
    """Valid windows of an image of ``group`` (its shape, its window): ``count`` unmasked.

    A commit batch never spans two groups, so the group of its first pair is that of all.
    """
    d = group.kernel.depth
    height, width = group.pair.image_shape
    return max(height - 2 * d, 0) * max(width - 2 * d, 0)


def fresh_path(config: RunConfig) -> str:
    """The output path or URL, refused when something is there and overwrite is off."""
    assert config.output is not None
    where = location(config.output, writable=True, what="output")
    if not config.overwrite and output_exists(config.output, run_storage_options(config)):
        shown = str(where) if where.remote else where.path
        raise FileExistsError(f"output {shown!r} already exists; pass overwrite=True to replace it")
    return config.output


def join_models(names: list[str], datasets: list[xr.Dataset]) -> xr.Dataset:
    """Datasets of one layout, one per model, joined along a leading ``model`` dimension.

    The first Dataset's coordinates and attributes are kept (the others have the same
    layout); the ``model`` coordinate holds ``names``.
    """
    return xr.concat(
        datasets,
        dim=pd.Index(names, name=MODEL),
        data_vars="all",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="override",
    )
