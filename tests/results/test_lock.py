"""pipeline.results.lock: one writer per results store.

A second run is refused, stale locks are broken.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from reliability_counts import record

import pipeline as sp
from pipeline.results.lock import StoreLockedError, lock_path, store_lock

ROOT = Path(__file__).resolve().parents[2]

# A writer in another process: commits its first batch, announces it, waits for a go.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    import pipeline as sp

    out, signal = sys.argv[1], Path(sys.argv[2])
    x = np.random.default_rng(1).integers(0, 256, (6, 24, 24), dtype=np.uint8)

    def on_batch(done, total, n):
        if done == 1:
            signal.with_suffix(".started").write_text("1")
            deadline = time.monotonic() + 60
            while not signal.with_suffix(".go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    sp.evaluate(x, x[::-1].copy(), output=out, batch_images=2, on_batch=on_batch)
    """
)


def _stack():
    x = np.random.default_rng(1).integers(0, 256, (6, 24, 24), dtype=np.uint8)
    return x, x[::-1].copy()


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"writer exited early: {process.stderr.read().decode()}")
        assert time.monotonic() < deadline, "writer did not start"
        time.sleep(0.05)


def _without_time(ds: xr.Dataset) -> xr.Dataset:
    out = ds.load().copy()
    out.attrs.pop("created")
    return out


def test_second_run_on_the_same_store_is_refused_naming_the_holder(tmp_path):
    out, signal = tmp_path / "r.zarr", tmp_path / "signal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), str(signal)],
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        _wait_for(signal.with_suffix(".started"), writer)
        x, y = _stack()
        holder = rf"process {writer.pid} on host '{socket.gethostname()}'"
        with pytest.raises(StoreLockedError, match=rf"being written by {holder} \(since "):
            sp.evaluate(x, y, output=str(out), batch_images=2, resume=True)
        with pytest.raises(StoreLockedError, match=r"two runs may not write one store"):
            sp.evaluate(x, y, output=str(out), batch_images=2, overwrite=True)
        signal.with_suffix(".go").write_text("1")
        assert writer.wait(timeout=120) == 0
    finally:
        writer.kill()
        writer.wait()
        writer.stderr.close()
    record("faults", "concurrent writer refused", 2)
    # The refused runs wrote nothing: the store is exactly an undisturbed run's.
    assert not lock_path(out).exists()
    alone = sp.evaluate(x, y, output=str(tmp_path / "alone.zarr"), batch_images=2)
    xr.testing.assert_identical(_without_time(sp.open_results(out)), _without_time(alone))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _write_lock(store: Path, **owner: object) -> Path:
    path = lock_path(store)
    path.write_text(json.dumps({"since": "2026-01-01T00:00:00+00:00", **owner}))
    return path


def test_stale_lock_of_a_dead_process_is_broken(tmp_path):
    x, y = _stack()
    out = tmp_path / "r.zarr"
    path = _write_lock(out, pid=_dead_pid(), host=socket.gethostname())
    ds = sp.evaluate(x, y, output=str(out))
    assert (ds["status"].values == "ok").all()
    assert not path.exists()
    record("faults", "stale lock (dead pid)")


def test_stale_lock_of_a_reused_pid_is_broken(tmp_path):
    # Our own pid, but a start time it never had: the pid was reused by another process.
    out = tmp_path / "r.zarr"
    path = _write_lock(out, pid=os.getpid(), host=socket.gethostname(), start_time="1")
    with store_lock(out):
        assert json.loads(path.read_text())["start_time"] != "1"
    assert not path.exists()
    record("faults", "stale lock (reused pid)")


def test_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path):
    x, y = _stack()
    out = tmp_path / "r.zarr"
    path = _write_lock(out, pid=4242, host="node-17")
    with pytest.raises(
        StoreLockedError,
        match=rf"process 4242 on host 'node-17'.*check on host 'node-17'.*"
        rf"delete '{path}' and rerun with --resume",
    ):
        sp.evaluate(x, y, output=str(out))
    assert path.exists()  # never broken from here
    assert not out.exists()  # and nothing was written
    path.write_text("garbage")
    with pytest.raises(StoreLockedError, match=r"a process that left an unreadable lock file"):
        sp.evaluate(x, y, output=str(out))
    record("faults", "lock held elsewhere / unreadable", 2)


def test_lock_is_released_when_the_run_fails(tmp_path):
    x, y = _stack()
    out = tmp_path / "r.zarr"
    with pytest.raises(ValueError, match=r"data_range is required for floating-point"):
        sp.evaluate(x.astype(float), y.astype(float), output=str(out))
    assert not lock_path(out).exists()
    sp.evaluate(x, y, output=str(out))
    with pytest.raises(FileExistsError, match=r"already exists \(same configuration\)"):
        sp.evaluate(x, y, output=str(out))
    assert not lock_path(out).exists()


def test_output_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    x, y = _stack()
    with pytest.raises(OSError, match=r"cannot create the folder of output .*choose an output"):
        sp.evaluate(x, y, output=str(tmp_path / "file" / "sub" / "r.zarr"))
    record("bad_input", "output folder not creatable")


def test_second_writer_through_a_symlink_or_another_path_is_refused(tmp_path):
    x, y = _stack()
    real = tmp_path / "data" / "r.zarr"
    real.parent.mkdir()
    alias = tmp_path / "alias.zarr"
    alias.symlink_to(real, target_is_directory=True)
    # The kernel follows 'up' before '..': 'up/../r.zarr' is data/r.zarr, not the
    # tmp_path/r.zarr that the text suggests.
    elsewhere = tmp_path / "data" / "sub"
    elsewhere.mkdir()
    (tmp_path / "up").symlink_to(elsewhere, target_is_directory=True)
    names = [alias, tmp_path / "up" / ".." / "r.zarr", Path(os.path.relpath(real))]
    with store_lock(real):
        for name in names:
            assert lock_path(name) == lock_path(real)
            with pytest.raises(StoreLockedError, match=rf"output '{name}' is being written by"):
                sp.evaluate(x, y, output=str(name), batch_images=2)
    assert not real.exists()  # the refused runs wrote nothing
    ds = sp.evaluate(x, y, output=str(alias), batch_images=2)
    assert (ds["status"].values == "ok").all() and (real / "zarr.json").is_file()
    replaced = sp.evaluate(x, y, output=str(alias), batch_images=2, overwrite=True, win_size=7)
    assert replaced.attrs["ssim_win_size"] == 7 and alias.is_symlink()
    record("faults", "second writer through a symlink or another path refused", len(names))


# -- stores in an object store: the lock object, created with If-None-Match ----------------


def _lock_object(url: str) -> str:
    return url.removeprefix("s3://") + ".lock"


def _s3():
    import fsspec

    return fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)


def test_object_store_lock_refuses_a_second_writer_and_is_released(s3_bucket):
    x, y = _stack()
    url = f"s3://{s3_bucket}/r.zarr"
    fs = _s3()
    with store_lock(url) as where:
        assert str(where) == url + ".lock"
        owner = json.loads(fs.cat_file(_lock_object(url)))
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        # Whoever the second writer is (this process again, with any name of the store),
        # the object store's conditional write refuses it.
        holder = rf"process {os.getpid()} on host '{socket.gethostname()}'"
        with pytest.raises(StoreLockedError, match=rf"being written by {holder} \(since "):
            sp.evaluate(x, y, output=url, batch_images=2)
        with pytest.raises(StoreLockedError, match=rf"delete the object '{url}.lock'"):
            with store_lock(url + "/"):
                pass
        # The exclusive creation itself: a plain second create of the object fails.
        with pytest.raises(FileExistsError):
            fs.pipe_file(_lock_object(url), b"{}", mode="create")
    assert not fs.exists(_lock_object(url))
    assert not fs.exists(f"{s3_bucket}/r.zarr")  # the refused run wrote nothing
    ds = sp.evaluate(x, y, output=url, batch_images=2)
    assert (ds["status"].values == "ok").all()
    assert not fs.exists(_lock_object(url))
    record("faults", "concurrent writer refused (object store)")


def test_object_store_stale_lock_of_a_dead_process_is_broken(s3_bucket):
    x, y = _stack()
    url = f"s3://{s3_bucket}/r.zarr"
    fs = _s3()
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "since": "2026-01-01T00:00:00"}
    fs.pipe_file(_lock_object(url), json.dumps(stale).encode())
    ds = sp.evaluate(x, y, output=url, batch_images=3)
    assert (ds["status"].values == "ok").all()
    assert not fs.exists(_lock_object(url))
    assert not fs.exists(_lock_object(url) + ".break")
    record("faults", "stale lock (dead pid, object store)")


def test_object_store_lock_from_another_host_is_refused_with_how_to_clear_it(s3_bucket):
    x, y = _stack()
    url = f"s3://{s3_bucket}/r.zarr"
    fs = _s3()
    other = {"pid": 1, "host": "node-17", "since": "2026-01-01T00:00:00"}
    fs.pipe_file(_lock_object(url), json.dumps(other).encode())
    with pytest.raises(
        StoreLockedError,
        match=rf"process 1 on host 'node-17'.*check on host 'node-17'.*"
        rf"delete the object '{url}.lock' and rerun with --resume",
    ):
        sp.evaluate(x, y, output=url)
    assert json.loads(fs.cat_file(_lock_object(url))) == other  # left alone


def test_object_store_without_a_conditional_write_takes_an_advisory_lock_and_says_so(
    s3_bucket, monkeypatch
):
    from pipeline.results import lock as locks

    # As gs:// and az:// are handled: no conditional write used, so the lock is advisory.
    monkeypatch.setattr(locks, "CONDITIONAL_CREATE_SCHEMES", frozenset())
    url = f"s3://{s3_bucket}/r.zarr"
    advisory = rf"the lock {url}.lock of output {url} is advisory: s3:// stores are written"
    with pytest.warns(locks.UnguardedLockWarning, match=advisory):
        with store_lock(url):
            # Still checked: a second writer that comes later is refused.
            with pytest.warns(locks.UnguardedLockWarning), pytest.raises(StoreLockedError):
                with store_lock(url):
                    pass
    assert not _s3().exists(_lock_object(url))
