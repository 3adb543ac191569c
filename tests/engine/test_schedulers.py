"""pipeline.engine.schedulers: local schedulers import nothing from distributed; clusters are real.

The cluster settings themselves (checks, YAML round trip) are tested in test_settings.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr
import zarr

import pipeline as sp
from pipeline.engine.schedulers import (
    ClusterSettings,
    SchedulerConnectionError,
    make_jobqueue_cluster,
    open_scheduler,
)

# 24 pairs of 256 x 256 in batches of 4: six commits, each a fraction of a second of
# work on two workers, so that a worker can be killed while a batch is in flight.
N_IMAGES, SIDE, BATCH = 24, 256, 4


def test_unreachable_address_fails_within_timeout():
    start = time.monotonic()
    settings = ClusterSettings(scheduler="tcp://127.0.0.1:9", connect_timeout=2)
    with pytest.raises(SchedulerConnectionError, match=r"tcp://127.0.0.1:9 within 2 s"):
        with open_scheduler(settings):
            pass
    assert time.monotonic() - start < 30


def test_missing_scheduler_file_is_named(tmp_path):
    path = tmp_path / "scheduler.json"
    with pytest.raises(FileNotFoundError, match=r"scheduler file .*scheduler.json does not exist"):
        with open_scheduler(ClusterSettings(scheduler=str(path))):
            pass


@pytest.mark.parametrize(("kind", "prefix"), [("slurm", "#SBATCH"), ("pbs", "#PBS")])
def test_jobqueue_script_carries_every_directive(kind, prefix):
    pytest.importorskip("dask_jobqueue")
    settings = ClusterSettings(
        scheduler=kind,
        cores=4,
        memory="8GB",
        walltime="01:30:00",
        queue="batch",
        account="proj42",
        job_directives=("--exclusive",) if kind == "slurm" else ("-V",),
    )
    cluster = make_jobqueue_cluster(settings)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert f"{prefix} -q batch" in script or f"{prefix} -p batch" in script
    assert f"{prefix} -A proj42" in script
    assert "01:30:00" in script
    assert ("--exclusive" if kind == "slurm" else "-V") in script


# -- the switch through evaluate -----------------------------------------------------------


@pytest.fixture(scope="module")
def stack_pair(tmp_path_factory):
    """A Zarr pair on disk (workers read it themselves; nothing large enters the graph)."""
    root = tmp_path_factory.mktemp("cluster-pair")
    rng = np.random.default_rng(20040413)
    x = rng.integers(0, 256, (N_IMAGES, SIDE, SIDE), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    paths = []
    for name, values in (("reference", x), ("generated", y)):
        path = root / f"{name}.zarr"
        target = zarr.create_array(
            str(path), shape=values.shape, chunks=(1, SIDE, SIDE), dtype=values.dtype
        )
        target[:] = values
        paths.append(str(path))
    return tuple(paths)


RUN = {"regions": "2x2", "batch_images": BATCH}


@pytest.fixture(scope="module")
def threads_result(stack_pair):
    return sp.evaluate(*stack_pair, **RUN)


def _assert_same_results(actual: xr.Dataset, expected: xr.Dataset) -> None:
    # Everything but the creation time: values, coordinates, statuses, provenance.
    actual, expected = actual.copy(), expected.copy()
    for ds in (actual, expected):
        ds.attrs.pop("created")
    xr.testing.assert_identical(actual.load(), expected.load())


@pytest.fixture(scope="module")
def local_run(stack_pair, tmp_path_factory):
    """One evaluate on a 2-worker LocalCluster, with what it printed and reported."""
    report = tmp_path_factory.mktemp("report") / "performance.html"
    batches: list[tuple[int, int, int]] = []
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        ds = sp.evaluate(
            *stack_pair,
            **RUN,
            cluster={
                "scheduler": "local",
                "workers": 2,
                "threads_per_worker": 1,
                "performance_report": str(report),
            },
            on_batch=lambda *progress: batches.append(progress),
        )
    return {"ds": ds, "stderr": stderr.getvalue(), "batches": batches, "report": report}


def test_local_cluster_gives_identical_results(local_run, threads_result):
    _assert_same_results(local_run["ds"], threads_result)
    assert set(local_run["ds"].status.values) == {"ok"}


def test_local_cluster_prints_dashboard_and_reports_progress(local_run):
    assert "Dask dashboard: http://" in local_run["stderr"]
    total = N_IMAGES // BATCH
    assert local_run["batches"] == [(done, total, BATCH) for done in range(1, total + 1)]


def test_performance_report_is_html(local_run):
    text = local_run["report"].read_text()
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:1000].lower()
    assert "Dask Performance Report" in text


def test_processes_scheduler_gives_identical_results(stack_pair, threads_result):
    ds = sp.evaluate(*stack_pair, **RUN, scheduler="processes", num_workers=2)
    _assert_same_results(ds, threads_result)


def test_threads_runs_without_distributed_installed(stack_pair):
    # dask.compute probes for distributed when it is installed, so the check is that the
    # default path still works when distributed cannot be imported at all.
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "import pipeline as sp\n"
        f"ds = sp.evaluate({stack_pair[0]!r}, {stack_pair[1]!r}, batch_images=12)\n"
        "print(int(ds.sizes['image']), bool((ds.status == 'ok').all()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(N_IMAGES), "True"]
    assert "Dask dashboard" not in out.stderr


def _run_and_kill_a_worker(stack_pair) -> tuple[int, dict[str, object]]:
    """Evaluate on a 2-worker LocalCluster and SIGKILL one worker after the first commit.

    Returns how many tasks the killed worker held when it died, and the run's outcome.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        victim, victim_pid = sorted(client.run(os.getpid).items())[0]
        first_commit = threading.Event()
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["ds"] = sp.evaluate(
                    *stack_pair,
                    **RUN,
                    scheduler=cluster.scheduler_address,
                    on_batch=lambda done, total, n: first_commit.set(),
                )
            except BaseException as error:  # reported by the assertions of the caller
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        assert first_commit.wait(60), "no batch was committed within 60 s"
        # Kill the worker while it holds a task of a later batch (not between batches).
        deadline = time.monotonic() + 10
        while not client.processing().get(victim) and time.monotonic() < deadline:
            time.sleep(0.005)
        in_flight = len(client.processing().get(victim, ()))
        os.kill(victim_pid, signal.SIGKILL)
        thread.join(120)
        assert not thread.is_alive(), "evaluate did not finish after a worker was killed"
        assert victim not in client.scheduler_info()["workers"]
    return in_flight, outcome


def test_killing_a_worker_mid_run_still_gives_complete_results(stack_pair, threads_result):
    # The batches are small: now and then the run ends before the poll sees the victim
    # holding a task (a CI run did). Such a try proves nothing, so it is tried again.
    for _ in range(3):
        in_flight, outcome = _run_and_kill_a_worker(stack_pair)
        assert "error" not in outcome, outcome.get("error")
        _assert_same_results(outcome["ds"], threads_result)
        if in_flight > 0:
            break
    assert in_flight > 0, "in three tries the killed worker never held a task"


def test_unreachable_scheduler_through_evaluate_is_a_clear_error(stack_pair):
    start = time.monotonic()
    with pytest.raises(SchedulerConnectionError, match=r"could not reach the Dask scheduler"):
        sp.evaluate(*stack_pair, cluster={"scheduler": "tcp://127.0.0.1:9", "connect_timeout": 2})
    assert time.monotonic() - start < 30


def test_scheduler_without_workers_is_a_clear_error(tmp_path):
    # A job script whose workers never start must fail, not hang until its walltime.
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        settings = ClusterSettings(scheduler=cluster.scheduler_address, extra={"worker_timeout": 1})
        with pytest.raises(SchedulerConnectionError, match=r"no Dask worker joined \S+ within 1 s"):
            with open_scheduler(settings):
                pass


# -- the cluster section of RunConfig --------------------------------------------------------
