"""A full disk stops the run with a clear error; the store stays readable and resumable."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr.storage._local as zarr_local
from reliability_counts import record

import pipeline as sp
from pipeline.results.lock import lock_path

SETTINGS = {"regions": "2x2", "batch_images": 3, "engine": "reference"}


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(28)  # errno 28: ENOSPC
    x = rng.integers(0, 256, (12, 24, 24), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 30, x.shape), 0, 255).astype(np.uint8)
    return x, y


@pytest.fixture(scope="module")
def uninterrupted(stack, tmp_path_factory):
    x, y = stack
    out = tmp_path_factory.mktemp("whole") / "r.zarr"
    return _without_time(sp.evaluate(x, y, output=str(out), **SETTINGS))


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, n_writes: int, delay: float = 0.0) -> None:
    """Every Zarr file write after the first ``n_writes`` fails as on a full disk.

    ``delay`` slows each successful write, so that writes Zarr runs side by side are
    still in flight when another one fails.
    """
    real_put = zarr_local._put
    written = [0]

    def put(path, value, exclusive=False):
        if written[0] >= n_writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written[0] += 1
        time.sleep(delay)
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(zarr_local, "_put", put)


def _check_partial(out: Path, batch: int) -> None:
    """Readable; every pair either committed (ok, finite values) or pending.

    A pending pair may already hold the values of its batch (values are written
    before the status): its status "pending" is what says "not done".
    """
    partial = sp.open_results(out).load()
    status = partial["status"].values
    assert set(status) <= {"ok", "pending"}
    done = status == "ok"
    assert np.isfinite(partial["ssim"].values[done]).all()
    batches = done.reshape(-1, batch)
    assert (batches.all(axis=1) | ~batches.any(axis=1)).all()  # never half-marked
    assert not lock_path(out).exists()


# Writes into the run: the template's metadata takes the first ~20 files, each batch ~12 more.
@pytest.mark.parametrize("n_writes", [3, 25, 40, 47, 60])
def test_full_disk_stops_cleanly_and_resume_completes(
    stack, uninterrupted, tmp_path, monkeypatch, n_writes
):
    x, y = stack
    out = tmp_path / "r.zarr"
    with monkeypatch.context() as patch:
        _disk_full_after(patch, n_writes)
        with pytest.raises(OSError, match=rf"no space left on the device of output '{out}'"):
            sp.evaluate(x, y, output=str(out), **SETTINGS)
    if out.exists():
        _check_partial(out, SETTINGS["batch_images"])
        resumed = sp.evaluate(x, y, output=str(out), resume=True, **SETTINGS)
    else:  # the disk filled while the store was being laid out: none is left behind
        assert not lock_path(out).exists()
        resumed = sp.evaluate(x, y, output=str(out), **SETTINGS)
    xr.testing.assert_identical(_without_time(resumed), uninterrupted)
    record("faults", "disk full (ENOSPC) at a chosen write")


def test_layout_failure_leaves_no_store_with_writes_in_flight(stack, tmp_path, monkeypatch):
    # Zarr writes a new store's files side by side and does not cancel the others when
    # one fails: slow ones land after the failure (a flaky CI run left r.zarr/region/
    # without a group). The half-made store must still be gone once evaluate raises.
    x, y = stack
    out = tmp_path / "r.zarr"
    with monkeypatch.context() as patch:
        _disk_full_after(patch, 3, delay=0.01)
        with pytest.raises(OSError, match="no space left on the device"):
            sp.evaluate(x, y, output=str(out), **SETTINGS)
    time.sleep(0.2)  # anything still in flight has landed by now
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert not lock_path(out).exists()
    record("faults", "disk full while the store is laid out, other writes in flight")


def _mount_tmpfs(where: Path, size: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


def test_real_full_tmpfs_then_resume_after_freeing_space(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched test covers it")
    try:
        rng = np.random.default_rng(2)
        x = rng.integers(0, 256, (200, 24, 24), dtype=np.uint8)
        y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
        settings = {"regions": "2x2", "batch_images": 4}
        out = disk / "r.zarr"
        with pytest.raises(OSError, match=r"no space left on the device of output"):
            sp.evaluate(x, y, output=str(out), **settings)
        _check_partial(out, 4)
        finished = int((sp.open_results(out)["status"].values == "ok").sum())
        assert 0 < finished < 200
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        resumed = sp.evaluate(x, y, output=str(out), resume=True, **settings)
        whole = sp.evaluate(x, y, output=str(tmp_path / "whole.zarr"), **settings)
        xr.testing.assert_identical(_without_time(resumed), _without_time(whole))
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    record("faults", "disk full (real tmpfs)")
