"""A real `ssim-pipeline evaluate` killed (SIGKILL) or interrupted (Ctrl-C) loses nothing.

The process is started as ``python -m pipeline evaluate`` on a Zarr stack of 300
pairs with small commit batches, interrupted at a seeded random point once some
batches are committed, and finished with ``--resume``; the final store must be
identical to an uninterrupted run (except its creation time).
"""

from __future__ import annotations

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

import pipeline as sp
from pipeline.results.lock import lock_path
from pipeline.results.schema import PENDING_STATUSES

ROOT = Path(__file__).resolve().parents[2]
N_PAIRS, BATCH = 200, 8
CONFIG = f"regions: 2x2\nbatch_images: {BATCH}\nhist_bins: 20\n"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    where = tmp_path_factory.mktemp("stacks")
    rng = np.random.default_rng(130)
    x = rng.integers(0, 256, (N_PAIRS, 64, 64), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    paths = []
    for name, data in (("reference", x), ("generated", y)):
        path = where / f"{name}.zarr"
        array = zarr.create_array(str(path), shape=data.shape, chunks=(BATCH, 64, 64), dtype="u1")
        array[:] = data
        paths.append(str(path))
    config = where / "run.yaml"
    config.write_text(CONFIG)
    whole = where / "whole.zarr"
    sp.evaluate(paths[0], paths[1], config=str(config), output=str(whole))
    return paths[0], paths[1], str(config), _without_time(sp.open_results(whole))


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


# The CLI as a terminal's Ctrl-C finds it, with every file Zarr writes delayed by a few
# milliseconds. A program started from a background job (pytest under `nohup ... &`, a
# CI runner's) inherits SIGINT ignored, and Python then leaves it ignored: the default
# handler is put back, as in a foreground program. The writes are slowed so that the run
# is still going when the signal arrives, on a fast machine too (on 2 cores the whole run
# takes ~8.5 s, start-up included, and ~11 s slowed).
SLOW_WRITES = """
import signal, sys, time
import zarr.storage._local as zarr_local
from pipeline.cli.main import main

signal.signal(signal.SIGINT, signal.default_int_handler)
real_put = zarr_local._put

def put(path, value, exclusive=False):
    time.sleep(0.005)
    return real_put(path, value, exclusive=exclusive)

zarr_local._put = put
sys.exit(main(sys.argv[1:]))
"""


def _start(stacks, out: Path, *extra: str, slow: bool = False) -> subprocess.Popen[str]:
    reference, generated, config, _ = stacks
    launcher = ["-c", SLOW_WRITES] if slow else ["-m", "pipeline"]
    command = [sys.executable, *launcher, "evaluate", reference, generated]
    command += ["--out", str(out), "--config", config, "--quiet", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _committed(out: Path) -> int:
    """Pairs whose status is written (read straight from the store, as the run goes)."""
    try:
        status = zarr.open_array(str(out / "status"), mode="r")[:]
    except Exception:  # not created yet
        return 0
    return int((~np.isin(np.asarray(status), PENDING_STATUSES)).sum())


def _wait_until(process: subprocess.Popen[str], out: Path, pairs: int) -> None:
    deadline = time.monotonic() + 120
    while _committed(out) < pairs:
        assert process.poll() is None, f"the run ended before the interruption: {process.stderr}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(stacks, tmp_path):
    rng = np.random.default_rng(9)
    out = tmp_path / "r.zarr"
    kills = 0
    for extra in ((), ("--resume",)):
        process = _start(stacks, out, *extra)
        target = _committed(out) + BATCH * int(rng.integers(1, 10))
        _wait_until(process, out, target)
        process.send_signal(signal.SIGKILL)
        code, _ = _finish(process)
        assert code == -signal.SIGKILL
        done = _committed(out)
        assert target <= done < N_PAIRS and done % BATCH == 0  # whole batches only
        assert lock_path(out).exists()  # left behind by the killed process: stale
        kills += 1
    code, err = _finish(_start(stacks, out, "--resume"))
    assert code == 0, err
    assert not lock_path(out).exists()
    xr.testing.assert_identical(_without_time(sp.open_results(out)), stacks[3])
    record("interruptions", "SIGKILL mid-run, then --resume", kills)


def test_ctrl_c_exits_promptly_with_how_to_resume(stacks, tmp_path):
    out = tmp_path / "r.zarr"
    process = _start(stacks, out, slow=True)
    _wait_until(process, out, 2 * BATCH)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    code, err = _finish(process)
    assert time.monotonic() - sent < 10
    assert code == 130, err
    assert "Traceback" not in err, err
    assert "interrupted" in err and "--resume" in err
    assert not lock_path(out).exists()  # released on the way out
    assert _committed(out) < N_PAIRS
    code, err = _finish(_start(stacks, out, "--resume"))
    assert code == 0, err
    xr.testing.assert_identical(_without_time(sp.open_results(out)), stacks[3])
    record("interruptions", "SIGINT (Ctrl-C) mid-run, then --resume")


# The CLI, SIGKILLed by itself when Zarr is about to write the n-th file of the run:
# a kill at a chosen moment of the store's layout, other writes still in flight.
KILL_AT_WRITE = """
import os, signal, sys
import zarr.storage._local as zarr_local
from pipeline.cli.main import main

kill_at, real_put, seen = int(sys.argv[1]), zarr_local._put, [0]

def put(path, value, exclusive=False):
    if seen[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    seen[0] += 1
    return real_put(path, value, exclusive=exclusive)

zarr_local._put = put
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_while_the_store_is_laid_out_then_resume_completes(stacks, tmp_path):
    from pipeline.cli.main import main

    reference, generated, config, whole = stacks
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The layout is the run's first ~20 files; seeded points in it, run side by side.
    points = sorted(int(p) for p in np.random.default_rng(21).choice(20, 2, replace=False))
    runs = {}
    for kill_at in points:
        out = tmp_path / f"r{kill_at}.zarr"
        command = [sys.executable, "-c", KILL_AT_WRITE, str(kill_at), "evaluate"]
        command += [reference, generated, "--out", str(out), "--config", config, "--quiet"]
        runs[out] = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    for out, process in runs.items():
        code, err = _finish(process)
        assert code == -signal.SIGKILL, err
        assert not out.exists() or _committed(out) == 0
        args = ["evaluate", reference, generated, "--out", str(out), "--config", config]
        assert main([*args, "--quiet", "--resume"]) == 0
        xr.testing.assert_identical(_without_time(sp.open_results(out)), whole)
    record("interruptions", "SIGKILL while the store is laid out, then --resume", len(runs))


def test_after_ctrl_c_only_the_closed_loop_noise_is_dropped(monkeypatch):
    # The unraisable hook the CLI installs on Ctrl-C: Zarr's coroutines finalized after
    # their event loop closed say nothing; any other unraisable error is still shown.
    from types import SimpleNamespace

    from pipeline.cli.main import _drop_closed_loop_noise

    async def pending() -> None:
        return None

    shown: list[object] = []
    monkeypatch.setattr(sys, "__unraisablehook__", shown.append)
    coroutine = pending()
    closed = RuntimeError("Event loop is closed")
    noise = SimpleNamespace(
        exc_type=RuntimeError, exc_value=closed, exc_traceback=None, err_msg=None, object=coroutine
    )
    _drop_closed_loop_noise(noise)
    coroutine.close()
    assert shown == []
    other = SimpleNamespace(
        exc_type=ValueError,
        exc_value=ValueError("something else"),
        exc_traceback=None,
        err_msg=None,
        object="a finalizer",
    )
    _drop_closed_loop_noise(other)
    assert shown == [other]
