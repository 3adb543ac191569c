"""The scheduler switch: local schedulers import nothing from distributed; clusters are real."""

from __future__ import annotations

import subprocess
import sys
import time

import dask
import dask.array as da
import pytest

from pipeline.cluster import (
    ClusterSettings,
    SchedulerConnectionError,
    make_jobqueue_cluster,
    open_scheduler,
)


def test_threads_is_default_and_imports_nothing_from_distributed():
    # dask.compute itself looks for a default distributed Client when the package is
    # installed, so the check is on what *we* import, up to the moment of computing.
    code = (
        "import sys, dask.array as da, pipeline\n"
        "from pipeline.cluster import open_scheduler\n"
        "with open_scheduler() as s:\n"
        "    assert s.compute_kwargs == {'scheduler': 'threads'}\n"
        "    print('distributed' in sys.modules)\n"
        "    da.ones(10, chunks=5).sum().compute(**s.compute_kwargs)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_processes_scheduler_computes():
    with open_scheduler(ClusterSettings(scheduler="processes")) as session:
        (total,) = dask.compute(da.ones(100, chunks=10).sum(), **session.compute_kwargs)
    assert total == 100


def test_local_cluster_has_requested_workers_and_dashboard():
    settings = ClusterSettings(scheduler="local", workers=2, threads_per_worker=1)
    with open_scheduler(settings) as session:
        assert session.n_workers == 2
        assert session.dashboard_link and session.dashboard_link.startswith("http")
        (total,) = dask.compute(da.arange(1000, chunks=100).sum(), **session.compute_kwargs)
    assert total == 499500


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


@pytest.mark.parametrize(
    ("mapping", "error", "message"),
    [
        ({"scheduler": "yarn"}, ValueError, r"'yarn' is not one of threads, processes, local"),
        ({"scheduler": 3}, TypeError, r"cluster.scheduler must be a string"),
        ({"workers": 0}, ValueError, r"cluster.workers must be a positive integer \(got 0\)"),
        ({"connect_timeout": float("inf")}, ValueError, r"connect_timeout must be a positive"),
        ({"nodes": 3}, ValueError, r"unknown key\(s\) in cluster: nodes; valid keys: account"),
    ],
)
def test_bad_settings_are_named(mapping, error, message):
    with pytest.raises(error, match=message):
        ClusterSettings.from_mapping(mapping)


def test_mapping_round_trip():
    settings = ClusterSettings(
        scheduler="slurm",
        workers=2,
        cores=4,
        memory="8GB",
        walltime="01:00:00",
        queue="gpu",
        account="proj42",
        job_directives=("--exclusive",),
    )
    assert ClusterSettings.from_mapping(settings.to_mapping()) == settings


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
