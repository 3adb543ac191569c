"""Where the graph runs: one switch from the embedded threaded scheduler to a cluster.

``threads`` (default), ``synchronous`` and ``processes`` are Dask's local
schedulers and import nothing from ``distributed``; ``default`` leaves the choice
to Dask's configuration (e.g. a ``distributed.Client`` the user already made).
``local`` starts a ``distributed.LocalCluster``; ``tcp://...`` (or a scheduler-file
path) connects to a running scheduler; ``slurm`` / ``pbs`` start workers through
dask-jobqueue; ``cuda`` starts dask-cuda's LocalCUDACluster (one worker per GPU).
The graph is the same everywhere, so the results are too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The cluster section is a run setting (validated with the others); imported from here too.
from pipeline.engine.settings import LOCAL_SCHEDULERS, NAMED_SCHEDULERS, ClusterSettings

__all__ = [
    "LOCAL_SCHEDULERS",
    "NAMED_SCHEDULERS",
    "ClusterSettings",
    "SchedulerConnectionError",
    "SchedulerSession",
    "open_scheduler",
]


class SchedulerConnectionError(RuntimeError):
    """A scheduler address that did not answer within the timeout."""


@dataclass(frozen=True)
class SchedulerSession:
    """An open scheduler: what to pass to ``dask.compute`` and what to tell the user."""

    settings: ClusterSettings
    client: Any = None
    cluster: Any = None
    pool: Any = None

    @property
    def compute_kwargs(self) -> dict[str, Any]:
        if self.client is not None:
            return {"scheduler": self.client}
        kind = self.settings.kind
        if kind == "default":
            return {}
        kwargs: dict[str, Any] = {"scheduler": kind}
        if self.pool is not None:
            kwargs["pool"] = self.pool
        elif self.settings.workers is not None and kind == "threads":
            kwargs["num_workers"] = self.settings.workers
        return kwargs

    @property
    def dashboard_link(self) -> str | None:
        return None if self.client is None else str(self.client.dashboard_link)

    @property
    def n_workers(self) -> int:
        if self.client is None:
            import os

            if self.settings.kind == "synchronous":
                return 1
            return self.settings.workers or os.cpu_count() or 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))


@contextlib.contextmanager
def open_scheduler(settings: ClusterSettings | None = None) -> Iterator[SchedulerSession]:
    """Start or connect to the scheduler ``settings`` names; close what was started.

    Raises
    ------
    SchedulerConnectionError
        When an address or scheduler file does not answer within
        ``connect_timeout`` seconds.
    """
    settings = settings or ClusterSettings()
    if settings.kind == "processes":
        with _process_pool(settings.workers) as pool:
            yield SchedulerSession(settings, pool=pool)
        return
    if not settings.distributed:
        yield SchedulerSession(settings)
        return
    with contextlib.ExitStack() as stack:
        client, cluster = _start(settings, stack)
        session = SchedulerSession(settings, client=client, cluster=cluster)
        if settings.performance_report:
            from distributed import performance_report

            stack.enter_context(performance_report(filename=settings.performance_report))
        yield session


def _process_pool(workers: int | None) -> Any:
    """One process pool for the whole session, set up as ``dask.multiprocessing`` does.

    Dask's ``processes`` scheduler otherwise starts (spawns) a fresh pool for every
    ``dask.compute``, i.e. for every commit batch, each paying the imports again.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    import dask.multiprocessing

    # Consistent hashing in the workers needs a fixed seed, inherited through the environment.
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    return ProcessPoolExecutor(
        workers or os.cpu_count() or 1,
        mp_context=dask.multiprocessing.get_context(),
        initializer=dask.multiprocessing.initialize_worker_process,
    )


def _start(settings: ClusterSettings, stack: contextlib.ExitStack) -> tuple[Any, Any]:
    from distributed import Client

    kind = settings.kind
    if kind in ("address", "scheduler-file"):
        target = settings.scheduler
        if kind == "scheduler-file" and not Path(target).is_file():
            raise FileNotFoundError(f"cluster.scheduler: scheduler file {target} does not exist")
        kwargs = {"scheduler_file": target} if kind == "scheduler-file" else {"address": target}
        try:
            client = Client(**kwargs, timeout=settings.connect_timeout)
        except OSError as error:  # TimeoutError and refused connections are OSErrors
            raise SchedulerConnectionError(
                f"could not reach the Dask scheduler at {target} within "
                f"{settings.connect_timeout:g} s ({type(error).__name__}); check the address "
                "and that the scheduler is running"
            ) from error
        stack.callback(client.close)
        # A scheduler without workers would accept the graph and wait forever (e.g. the
        # workers of a job script that failed to start): wait, bounded, for the first ones.
        _wait_for_workers(client, settings, target)
        return client, None

    cluster = stack.enter_context(_make_cluster(settings))
    client = stack.enter_context(Client(cluster))
    if kind in ("slurm", "pbs"):
        cluster.scale(jobs=settings.workers or 1)
        _wait_for_workers(client, settings, f"the {kind} cluster")
    return client, cluster


def _wait_for_workers(client: Any, settings: ClusterSettings, where: str) -> None:
    timeout = settings.extra.get("worker_timeout", 300)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as error:
        raise SchedulerConnectionError(
            f"no Dask worker joined {where} within {timeout:g} s (cluster.extra.worker_timeout); "
            "check that the workers started (job logs, queue)"
        ) from error


def _make_cluster(settings: ClusterSettings) -> Any:
    kind = settings.kind
    extra = _cluster_extra(settings)
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            processes=True,
            dashboard_address=settings.dashboard_address,
            **extra,
        )
    if kind == "cuda":
        from dask_cuda import LocalCUDACluster

        return LocalCUDACluster(dashboard_address=settings.dashboard_address, **extra)
    return make_jobqueue_cluster(settings)


def make_jobqueue_cluster(settings: ClusterSettings) -> Any:
    """A dask-jobqueue SLURMCluster or PBSCluster from ``settings`` (no jobs submitted yet)."""
    import dask_jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[settings.kind]
    options: dict[str, Any] = {
        "cores": settings.cores or 1,
        "memory": settings.memory or "4GB",
        "processes": 1,
        "walltime": settings.walltime,
        "queue": settings.queue,
        "account": settings.account,
        "job_extra_directives": list(settings.job_directives),
        "scheduler_options": {"dashboard_address": settings.dashboard_address},
    }
    return cls(**{k: v for k, v in options.items() if v is not None}, **_cluster_extra(settings))


def _cluster_extra(settings: ClusterSettings) -> dict[str, Any]:
    """``cluster.extra`` as keyword arguments of the cluster class (``worker_timeout`` is ours)."""
    return {k: v for k, v in settings.extra.items() if k != "worker_timeout"}
