"""One writer per results store: an exclusive lock file beside the store.

Two runs writing the same store would interleave their commit batches (and a
second run's ``overwrite`` could delete the first one's work), so a run that
writes a store first creates ``<store>.lock`` with ``O_CREAT | O_EXCL`` — atomic
on local file systems and on NFS v3 and later — holding the owner's pid, host,
process start time and the time the lock was taken. A second run finds it and
is refused with a :class:`StoreLockedError` naming that process and how to
clear a stale lock. The lock is removed when the run ends, also on errors and
Ctrl-C.

The lock lives beside the store, not inside it: it exists before the store is
created (two runs creating the same new store are also kept apart) and it
survives ``overwrite=True``, which deletes the store's directory.

A process killed with SIGKILL (or a crashed node) cannot remove its lock. A lock
is *stale*, and is broken automatically, when it was taken on this host by a
process that no longer runs (the pid is gone, or now belongs to a process with
another start time). A lock from another host cannot be checked from here: the
message says how to remove it by hand once that run is known to be gone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["StoreLockedError", "lock_path", "store_lock"]

# A breaker file older than this was left by a process that died while breaking a
# stale lock (a fraction of a second's work): it no longer protects anything.
_BREAKER_TIMEOUT_S = 30.0


class StoreLockedError(RuntimeError):
    """Another run holds the store's write lock.

    Attributes
    ----------
    path : pathlib.Path
        The lock file.
    owner : dict
        What the lock file says about its owner (``pid``, ``host``, ``since``, ...).
    """

    def __init__(self, path: Path, owner: dict[str, Any], message: str) -> None:
        self.path = path
        self.owner = owner
        super().__init__(message)


def lock_path(store: str | os.PathLike[str]) -> Path:
    """The lock file of a store: ``results.zarr`` -> ``results.zarr.lock``.

    The store's path is resolved first (symlinks, ``..``, the working directory), so
    every name of one store maps to one lock file: a symlink to the store, or a path
    through a symlinked folder, is not a way around the lock.
    """
    store = Path(os.path.realpath(store))
    return store.with_name(store.name + ".lock")


def _start_time(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count after its ')'.
    return text.rsplit(")", 1)[-1].split()[19]


def _owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "start_time": _start_time(pid),
        "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The lock's owner record; None when the file is gone, ``{}`` when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _is_stale(owner: dict[str, Any]) -> bool:
    """Whether the owner is a process of this host that no longer runs."""
    if owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    recorded, current = owner.get("start_time"), _start_time(pid)
    return recorded is not None and current is not None and recorded != current


def _create(path: Path, record: dict[str, Any]) -> bool:
    """Create the lock file exclusively with ``record``; False when it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as error:
        raise OSError(
            error.errno,
            f"cannot create the lock file {str(path)!r} for the output "
            f"({error.strerror}); is the output's folder writable?",
        ) from error
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _break_stale(path: Path, owner: dict[str, Any]) -> None:
    """Remove a stale lock, unless another process replaced it meanwhile.

    A breaker file taken with ``O_EXCL`` serialises the breakers: without it, a
    slow breaker could delete the fresh lock that a faster one just took.
    """
    breaker = path.with_name(path.name + ".break")
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - breaker.stat().st_mtime > _BREAKER_TIMEOUT_S:
                breaker.unlink()
        return
    os.close(fd)
    try:
        if _read_owner(path) == owner:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        breaker.unlink()


def _refusal(store: Path, path: Path, owner: dict[str, Any]) -> StoreLockedError:
    if owner:
        who = (
            f"process {owner.get('pid')} on host {owner.get('host')!r} (since {owner.get('since')})"
        )
    else:
        who = "a process that left an unreadable lock file"
    here = owner.get("host") == socket.gethostname()
    check = (
        f"check with `ps -p {owner.get('pid')}`" if here else f"check on host {owner.get('host')!r}"
    )
    return StoreLockedError(
        path,
        owner,
        f"output {str(store)!r} is being written by {who}: two runs may not write one store. "
        f"Wait for that run to finish or choose another output. If no such run is alive "
        f"({check}), the lock is stale: delete {str(path)!r} and rerun with --resume "
        "(resume=True)",
    )


@contextlib.contextmanager
def store_lock(store: str | os.PathLike[str], *, attempts: int = 20) -> Iterator[Path]:
    """Hold the write lock of ``store`` for the duration of the ``with`` block.

    Parameters
    ----------
    store : path
        The results store (it need not exist yet).
    attempts : int
        How often to retry after breaking a stale lock before giving up.

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    StoreLockedError
        A live process (or one on another host) holds the lock, whatever name
        (symlink, relative path) it gave the store.
    OSError
        The lock file cannot be created (e.g. the output's folder is not writable).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "results.zarr"
    >>> with store_lock(store) as lock:
    ...     lock.exists()
    True
    >>> lock.exists()
    False
    """
    store = Path(store)
    path = lock_path(store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            error.errno,
            f"cannot create the folder of output {str(store)!r} ({error.strerror}); "
            "choose an output in a writable folder",
        ) from error
    record = _owner_record()
    for _ in range(attempts):
        if _create(path, record):
            break
        owner = _read_owner(path)
        if owner is None:  # released between our attempt and the read: try again
            continue
        if not _is_stale(owner):
            raise _refusal(store, path, owner)
        _break_stale(path, owner)
        time.sleep(0.01)
    else:
        raise _refusal(store, path, _read_owner(path) or {})
    try:
        yield path
    finally:
        # Only our own lock is removed (never one a stale-breaker put in its place).
        if _read_owner(path) == record:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
