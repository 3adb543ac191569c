"""The job scripts in workflows/: submitted to a real SLURM, run, and checked.

The SLURM script goes through a real single-node queue (munge + slurmctld + slurmd
on this machine, started by ``.ci/slurm.sh``, as ``.ci/run`` does). No PBS server
exists here: the PBS script is syntax-checked, compared with dask-jobqueue's
directives, and run as a plain shell script (which is what PBS does with it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import pipeline as sp
from pipeline.cli.demo import make_demo_folders
from pipeline.engine.schedulers import ClusterSettings, make_jobqueue_cluster
from pipeline.engine.settings import load_config

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCRIPTS = {
    "slurm": WORKFLOWS / "slurm" / "evaluate.sbatch",
    "pbs": WORKFLOWS / "pbs" / "evaluate.pbs",
    # Not "gpu": conftest skips every test whose keywords hold "gpu" when no device answers.
    "cuda-node": WORKFLOWS / "gpu" / "evaluate-gpu.sbatch",
}
JOB_TIMEOUT = 180  # seconds from submission to a finished job


@pytest.fixture(scope="module")
def demo_pair(tmp_path_factory):
    return make_demo_folders(tmp_path_factory.mktemp("workflow-demo"))


def _threads_result(demo_pair, config: Path, out: Path) -> xr.Dataset:
    # The in-process reference: the same config and inputs on the embedded threaded scheduler.
    return sp.evaluate(*map(str, demo_pair), config=config, output=str(out), scheduler="threads")


@pytest.fixture(scope="module")
def pbs_threads_result(demo_pair, tmp_path_factory) -> xr.Dataset:
    """:func:`_threads_result` of the PBS configuration, shared by the PBS jobs (loaded)."""
    out = tmp_path_factory.mktemp("pbs-threads") / "t.zarr"
    return _threads_result(demo_pair, ROOT / "configs" / "cluster-pbs.yaml", out).load()


def _assert_same_results(actual: xr.Dataset, expected: xr.Dataset) -> None:
    actual, expected = actual.load(), expected.load()
    for ds in (actual, expected):
        ds.attrs.pop("created")
    xr.testing.assert_identical(actual, expected)


# -- static checks of every script --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_is_valid_bash_and_calls_the_cli_with_a_config(name):
    script = SCRIPTS[name]
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert re.search(r'"\$ssim_pipeline" evaluate "\$reference" "\$generated" --out', text)
    config = re.search(r"config=\$\{\w+:-(configs/[\w.-]+\.yaml)\}", text)
    assert config is not None, "the script names no default config from configs/"
    load_config(ROOT / config.group(1))


def test_pbs_directives_match_dask_jobqueue():
    # dask-jobqueue writes the PBS Pro resource syntax that PBS sites accept; the
    # hand-written script uses the same directives.
    pytest.importorskip("dask_jobqueue")
    settings = ClusterSettings(
        scheduler="pbs", cores=4, memory="8GB", walltime="01:00:00", queue="QUEUE"
    )
    cluster = make_jobqueue_cluster(settings)
    try:
        generated = cluster.job_script()
    finally:
        cluster.close()
    ours = SCRIPTS["pbs"].read_text()
    for pattern in (r"#PBS -l select=1:ncpus=4:mem=\d+[gm]b\n", r"#PBS -l walltime=01:00:00\n"):
        assert re.search(pattern, ours, flags=re.IGNORECASE)
        assert re.search(pattern, generated, flags=re.IGNORECASE)
    assert re.search(r"^##?PBS -q QUEUE$", ours, flags=re.MULTILINE)
    assert "#PBS -q QUEUE" in generated


# -- the PBS script, run as the shell script PBS would start ------------------------------


def test_pbs_script_runs_as_a_plain_job(demo_pair, pbs_threads_result, tmp_path):
    out = tmp_path / "pbs.zarr"
    env = {
        **os.environ,
        "REFERENCE": str(demo_pair[0]),
        "GENERATED": str(demo_pair[1]),
        "RESULTS": str(out),
        "CONFIG": str(ROOT / "configs" / "cluster-pbs.yaml"),
        "PBS_O_WORKDIR": str(tmp_path),
        "PBS_JOBID": "1.test",
        "NCPUS": "2",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS["pbs"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Dask dashboard: http://" in done.stderr
    assert not (tmp_path / ".dask" / "scheduler-1.test.json").exists()  # cleaned up
    _assert_same_results(sp.open_results(str(out)), pbs_threads_result.copy())


def test_pbs_script_workers_read_and_write_a_bucket(
    demo_pair, pbs_threads_result, s3_bucket, tmp_path
):
    # The cluster case of object stores: the scheduler and worker processes the job script
    # starts read the inputs from the bucket and the results go back to it, with the
    # credentials and endpoint of the standard AWS_* variables the job inherits.
    from s3_server import SECRET_KEY, upload

    upload(demo_pair[0], f"s3://{s3_bucket}/real")
    upload(demo_pair[1], f"s3://{s3_bucket}/fake")
    out = f"s3://{s3_bucket}/runs/pbs.zarr"
    env = {
        **os.environ,
        "REFERENCE": f"s3://{s3_bucket}/real",
        "GENERATED": f"s3://{s3_bucket}/fake",
        "RESULTS": out,
        "CONFIG": str(ROOT / "configs" / "cluster-pbs.yaml"),
        "PBS_O_WORKDIR": str(tmp_path),
        "PBS_JOBID": "2.test",
        "NCPUS": "2",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS["pbs"])], env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET_KEY not in done.stdout + done.stderr
    expected = pbs_threads_result.copy()
    actual = sp.open_results(out).load()
    # The same pixels give the same numbers; only where the files were read from differs.
    for ds in (actual, expected):
        ds.attrs.pop("created")
        ds.attrs.pop("source_fingerprint", None)
        ds.attrs.pop("sources", None)
    xr.testing.assert_equal(
        actual.drop_vars(["reference", "generated"]), expected.drop_vars(["reference", "generated"])
    )
    assert [Path(name).name for name in actual["reference"].values] == [
        Path(name).name for name in expected["reference"].values
    ]


# -- a real SLURM queue --------------------------------------------------------------------


@pytest.fixture(scope="session")
def slurm_queue():
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed (SLURM's client); .ci/run installs slurm-wlm")
    if subprocess.run(["bash", str(ROOT / ".ci" / "slurm.sh"), "status"]).returncode != 0:
        if os.geteuid() != 0:
            pytest.fail("SLURM is installed but not running, and starting it needs root")
        subprocess.run(["bash", str(ROOT / ".ci" / "slurm.sh"), "start"], check=True, timeout=90)


@pytest.mark.slurm
def test_slurm_workflow_on_a_real_queue(slurm_queue, demo_pair, tmp_path):
    out = tmp_path / "results.zarr"
    config = ROOT / "configs" / "cluster-slurm.yaml"
    start = time.monotonic()
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--chdir={tmp_path}",
            f"--time={JOB_TIMEOUT // 60 + 1}",
            str(SCRIPTS["slurm"]),
            str(demo_pair[0]),
            str(demo_pair[1]),
            str(out),
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip().split(";")[0]
    state = ""
    try:
        while time.monotonic() - start < JOB_TIMEOUT:
            shown = subprocess.run(
                ["scontrol", "show", "job", job], capture_output=True, text=True
            ).stdout
            state = re.search(r"JobState=(\w+)", shown).group(1) if "JobState=" in shown else ""
            if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OOM"):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"SLURM job {job} did not finish within {JOB_TIMEOUT} s (state {state})")
    finally:
        subprocess.run(["scancel", job], capture_output=True)
    log = (tmp_path / f"ssim-evaluate-{job}.out").read_text()
    assert state == "COMPLETED", log[-3000:]
    assert "Dask dashboard: http://" in log
    results = sp.open_results(str(out))
    assert set(results.status.values) == {"ok"}
    expected = _threads_result(demo_pair, config, tmp_path / "threads.zarr")
    _assert_same_results(results, expected)


# -- the GPU node script, on dask-cuda's LocalCUDACluster ---------------------------------


@pytest.mark.gpu
def test_gpu_script_runs_as_a_plain_job_on_a_cuda_cluster(demo_pair, tmp_path):
    # What SLURM would start on a GPU node: the script itself, one GPU visible. The CLI
    # comes through SSIM_PIPELINE, here the checkout's own interpreter and package.
    pytest.importorskip("dask_cuda")
    wrapper = tmp_path / "ssim-pipeline"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m pipeline "$@"\n')
    wrapper.chmod(0o755)
    out = tmp_path / "gpu.zarr"
    config = ROOT / "configs" / "cluster-slurm.yaml"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "SSIM_PIPELINE": str(wrapper), "PYTHONPATH": path}
    done = subprocess.run(
        ["bash", str(SCRIPTS["cuda-node"]), *map(str, demo_pair), str(out), str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    on_gpu = sp.open_results(str(out)).load()
    assert on_gpu.attrs["device"] == "gpu"
    on_cpu = sp.evaluate(
        *map(str, demo_pair), config=config, scheduler="threads", device="cpu"
    ).load()
    assert (on_gpu.status.values == on_cpu.status.values).all()
    for name in ("ssim", "luminance", "contrast", "structure", "ssim_min", "ssim_max"):
        # float32 maps on both devices: parity within the float32 path's 1e-5.
        np.testing.assert_allclose(on_gpu[name].values, on_cpu[name].values, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(on_gpu["count"].values, on_cpu["count"].values)
