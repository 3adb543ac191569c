"""`ssim-pipeline evaluate --out s3://bucket/r.zarr` keeps every promise of a local --out.

The CLI runs as a subprocess against moto's real S3 server (``tests/s3_server.py``),
with the standard ``AWS_*`` variables as its only credentials, on a local Zarr pair
of real photographs cut into tiles (:func:`pipeline.testing.photograph`, noise from
:func:`pipeline.testing.degrade`). The run is paused after a seeded batch so that a
second writer (the test's own process, through ``main``) meets its lock, then let go
and SIGKILLed at whatever point it has reached; ``--resume`` must finish it with
values identical to the same command with a local ``--out`` (except the creation
time). The secret key never appears in any output, attribute or stored object.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from reliability_counts import record
from s3_server import SECRET_KEY

import pipeline as sp
from pipeline.cli.main import main
from pipeline.results.schema import PENDING_STATUSES
from pipeline.storage.locations import location, zarr_store
from pipeline.testing import degrade, photograph

ROOT = Path(__file__).resolve().parents[2]
TILE, BATCH = 64, 8
CONFIG = f"regions: 2x2\nbatch_images: {BATCH}\nhist_bins: 20\n"

# The CLI, paused after its n-th committed batch until a file appears: a first writer
# that holds the store's lock for as long as the test needs.
PAUSED_CLI = """
import sys, time
from pathlib import Path
import pipeline.engine.run as run
from pipeline.cli.main import main

pause_after, go = int(sys.argv[1]), Path(sys.argv[2])
real_commit, done = run._commit_batch, [0]

def commit(*args, **kwargs):
    real_commit(*args, **kwargs)
    done[0] += 1
    if done[0] == pause_after:
        go.with_suffix(".paused").write_text("1")
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

run._commit_batch = commit
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """A Zarr pair of photograph tiles, its run settings, and the run with a local --out."""
    where = tmp_path_factory.mktemp("stacks")
    rng = np.random.default_rng(2004)
    tiles = [
        image[i : i + TILE, j : j + TILE]
        for image in (photograph("camera"), photograph("moon"))
        for i in range(0, 512, 2 * TILE)
        for j in range(0, 512, TILE)
    ]
    x = np.stack(tiles)  # 64 pairs: 8 commit batches
    y = np.stack([degrade(tile, "noise", strength=12.0, rng=rng) for tile in tiles])
    paths = []
    for name, data in (("reference", x), ("generated", y)):
        path = where / f"{name}.zarr"
        array = zarr.create_array(
            str(path), shape=data.shape, chunks=(BATCH, TILE, TILE), dtype="u1"
        )
        array[:] = data
        paths.append(str(path))
    config = where / "run.yaml"
    config.write_text(CONFIG)
    local = where / "local.zarr"
    args = ["evaluate", *paths, "--out", str(local), "--config", str(config), "--quiet"]
    assert main(args) == 0
    return paths[0], paths[1], str(config), _without_time(sp.open_results(local))


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def _command(stacks, out: str, *extra: str) -> list[str]:
    reference, generated, config, _ = stacks
    return ["evaluate", reference, generated, "--out", out, "--config", config, "--quiet", *extra]


def _environment(s3_server) -> dict[str, str]:
    return {**os.environ, **s3_server.environment(), "PYTHONPATH": str(ROOT)}


def _committed(url: str) -> int:
    """Pairs whose status is written, read straight from the bucket as the run goes."""
    store = zarr_store(location(url), {"use_listings_cache": False}, read_only=True)
    try:
        status = zarr.open_array(store, path="status", mode="r")[:]
    except Exception:  # not laid out yet
        return 0
    return int((~np.isin(np.asarray(status, dtype=object), PENDING_STATUSES)).sum())


def _objects(bucket: str) -> dict[str, bytes]:
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    return {key: fs.cat_file(key) for key in fs.find(bucket)}


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert process.poll() is None, f"the run ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def test_s3_out_second_writer_refused_sigkill_then_resume_equals_local_out(
    stacks, s3_server, s3_bucket, tmp_path, capsys
):
    url = f"s3://{s3_bucket}/runs/r.zarr"
    lock = f"{s3_bucket}/runs/r.zarr.lock"
    env = _environment(s3_server)
    outputs: list[str] = []
    n_pairs = stacks[3].sizes["image"]
    pause_after = int(np.random.default_rng(31).integers(1, 4))
    go = tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_CLI, str(pause_after), str(go), *_command(stacks, url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for(go.with_suffix(".paused"), first)
        assert _committed(url) == pause_after * BATCH
        owner = json.loads(_objects(s3_bucket)[lock])
        assert owner["pid"] == first.pid
        # A second writer (this process) is refused by the lock, even one that asks to
        # start again.
        assert main(_command(stacks, url, "--overwrite")) == 2
        second = capsys.readouterr()
        outputs += [second.out, second.err]
        assert f"being written by process {first.pid}" in second.err
        assert f"'{url}.lock'" in second.err
        assert _committed(url) == pause_after * BATCH  # the refused runs wrote nothing
        # Let the first run go on, and kill it wherever it has got to.
        go.write_text("1")
        deadline = time.monotonic() + 120
        while _committed(url) < (pause_after + 2) * BATCH and first.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        out, err = first.communicate(timeout=60)
        outputs += [out, err]
    finally:
        first.kill()
        first.wait()
    assert first.returncode == -signal.SIGKILL, err
    done = _committed(url)
    assert done % BATCH == 0 and done <= n_pairs  # whole batches only
    assert lock in _objects(s3_bucket)  # left behind by the killed process: stale

    # Another configuration on the store is refused (by the CLI, in this process).
    assert main([*_command(stacks, url, "--resume"), "--regions", "3x3"]) == 2
    refused = capsys.readouterr()
    outputs += [refused.out, refused.err]
    assert f"output '{url}' was written with a different configuration" in refused.err

    resumed = subprocess.run(
        [sys.executable, "-m", "pipeline", *_command(stacks, url, "--resume")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    outputs += [resumed.stdout, resumed.stderr]
    assert resumed.returncode == 0, resumed.stderr
    stored = _objects(s3_bucket)
    assert lock not in stored  # the stale lock was broken, the new one released
    ds = _without_time(sp.open_results(url))
    xr.testing.assert_identical(ds, stacks[3])

    report = tmp_path / "report"
    assert main(["report", url, "--out", str(report)]) == 0
    printed = capsys.readouterr()
    outputs += [printed.out, printed.err]
    assert (report / "report.html").is_file()
    assert f"report: {report / 'report.html'}" in printed.out

    assert not any(SECRET_KEY in text for text in outputs)
    assert SECRET_KEY not in json.dumps(ds.attrs, default=str)
    assert not any(SECRET_KEY.encode() in data for data in stored.values())
    record("interruptions", "SIGKILL mid-run with --out s3://, then --resume")
    record("faults", "concurrent writer refused (CLI, s3:// output)")


def test_s3_out_errors_name_the_url_and_never_the_secret(stacks, s3_bucket, capsys):
    import fsspec

    missing = "s3://no-such-bucket-ssim/r.zarr"
    assert main(_command(stacks, missing)) == 2
    err = capsys.readouterr().err
    assert f"lock {missing}.lock of the output: the bucket or container does not exist" in err

    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    fs.pipe_file(f"{s3_bucket}/taken.zarr/data.bin", b"not results")
    taken = f"s3://{s3_bucket}/taken.zarr"
    assert main(_command(stacks, taken)) == 2
    err += capsys.readouterr().err
    assert f"output '{taken}' exists and is not a Zarr store" in err
    assert fs.cat_file(f"{s3_bucket}/taken.zarr/data.bin") == b"not results"

    assert main([*_command(stacks, taken, "--resume"), "--dry-run"]) == 0
    err += capsys.readouterr().err
    assert f"--out {taken} exists but is not a readable results store" in err

    assert main(["report", taken]) == 2
    err += capsys.readouterr().err
    assert f"results {taken} exist but are neither a Zarr store" in err

    assert main(_command(stacks, "https://example.org/r.zarr")) == 2
    err += capsys.readouterr().err
    assert "--out: https://example.org/r.zarr is read-only (HTTP)" in err

    with_secret = f"s3://reader:{SECRET_KEY}@{s3_bucket}/r.zarr"
    assert main(_command(stacks, with_secret)) == 2
    err += capsys.readouterr().err
    assert "s3://***@" in err
    assert SECRET_KEY not in err
    record("bad_input", "object-store output errors (missing bucket, not results, HTTP)", 4)


def test_s3_out_with_credentials_the_server_does_not_know_is_a_clear_error(
    stacks, monkeypatch, capsys
):
    import s3fs
    from s3_server import S3Server

    # A server of its own that checks access keys (moto knows none of them here).
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
    server = S3Server()
    try:
        monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        url = "s3://results-bucket/r.zarr"
        assert main(_command(stacks, url)) == 2
        err = capsys.readouterr().err
        assert f"cannot create the lock {url}.lock of the output: access denied" in err
        assert main(["report", url]) == 2
        err += capsys.readouterr().err
        assert f"opening results {url} was refused (access denied" in err
        assert SECRET_KEY not in err
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
    record("bad_input", "object-store output with unknown credentials")
