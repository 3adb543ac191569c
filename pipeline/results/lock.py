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

Stores in object stores
-----------------------
A store at an ``s3://`` URL is locked by the object ``<store>.lock`` beside it
(same bucket, the store's key plus ``.lock``), created with S3's conditional
write ``If-None-Match: *`` (s3fs ``pipe_file(mode="create")``): the object store
itself refuses the second creation, so of two runs starting at the same moment
on any hosts exactly one gets the lock. What that guarantees and what it does not:

* guaranteed on AWS S3 and on S3-compatible servers that implement conditional
  writes (tested against moto's server): one writer per store, the same record
  (pid, host, start time) and the same refusal message as on a local disk;
* a server that ignores ``If-None-Match`` (older S3-compatible servers) silently
  lets a second creation overwrite the first: the lock is then advisory only.
  The record is read back after creation, so a run that lost such a race in a
  visible way is still refused;
* stale locks are detected only for runs of *this* host (by pid and process start
  time, as on a local disk); a lock left by a killed run on another host must be
  deleted by hand (the message names the object, credentials removed);
* ``gs://`` and ``az://`` / ``abfs://`` stores: the conditional writes of GCS
  (``ifGenerationMatch=0``) and Azure (``If-None-Match: *``) are not used here,
  because the filesystem packages expose them differently and they are not tested
  with this package. Their lock is *advisory*: checked, written, then read back,
  with a window in which two runs starting together can both proceed. The run
  says so on stderr (a :class:`UnguardedLockWarning`) when it takes such a lock.
* stale-breaking on an object store is serialised by a second conditional object
  ``<store>.lock.break``, as on a local disk.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.storage.locations import (
    Location,
    LocationError,
    filesystem,
    location,
    redact,
)

__all__ = [
    "CONDITIONAL_CREATE_SCHEMES",
    "StoreLockedError",
    "UnguardedLockWarning",
    "lock_location",
    "lock_path",
    "results_filesystem",
    "store_lock",
]

# Schemes whose exclusive creation (``pipe_file(mode="create")``) is a server-side
# conditional write that this package uses and tests.
CONDITIONAL_CREATE_SCHEMES = frozenset({"s3", "s3a"})

# A breaker file older than this was left by a process that died while breaking a
# stale lock (a fraction of a second's work): it no longer protects anything.
_BREAKER_TIMEOUT_S = 30.0


class StoreLockedError(RuntimeError):
    """Another run holds the store's write lock.

    Attributes
    ----------
    path : pathlib.Path or str
        The lock file (a URL, credentials removed, for a store in an object store).
    owner : dict
        What the lock file says about its owner (``pid``, ``host``, ``since``, ...).
    """

    def __init__(self, path: Path | str, owner: dict[str, Any], message: str) -> None:
        self.path = path
        self.owner = owner
        super().__init__(message)


class UnguardedLockWarning(UserWarning):
    """The store's lock is advisory: its object store is used without a conditional write."""


def results_filesystem(where: Location, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The fsspec filesystem of a results location, without a cache of listings.

    A results store is listed to learn whether it exists and what it holds while
    other processes (and other filesystem instances of this one) write it: a cached
    listing would answer with the past.
    """
    options = dict(storage_options or {})
    if where.remote:
        options.setdefault("use_listings_cache", False)
    return filesystem(where, options)


def lock_location(
    store: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Location:
    """The lock of a store as a location: :func:`lock_path` locally, ``<url>.lock`` remotely."""
    where = location(store, writable=True, what="output")
    if not where.remote:
        path = str(lock_path(where.path))
        return Location(url=path, scheme="file", path=path)
    if "/" not in where.path:
        raise LocationError(
            f"output {where} is a whole bucket; name a store inside it "
            f"({where.scheme}://{where.path}/results.zarr)"
        )
    return Location(
        url=where.url.rstrip("/") + ".lock", scheme=where.scheme, path=where.path + ".lock"
    )


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
def store_lock(
    store: str | os.PathLike[str],
    *,
    attempts: int = 20,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Hold the write lock of ``store`` for the duration of the ``with`` block.

    Parameters
    ----------
    store : path or URL
        The results store (it need not exist yet): a local path, a ``file://`` URL
        or an object-store URL (``s3://``, ``gs://``, ``az://``; see the module
        docstring for what the lock guarantees on each).
    attempts : int
        How often to retry after breaking a stale lock before giving up.
    storage_options : mapping, optional
        Options of the object store's filesystem (credentials, endpoint).

    Yields
    ------
    pathlib.Path or Location
        The lock file (local stores) or the lock object's location (object stores).

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
    if location(store, writable=True, what="output").remote:
        with _object_lock(store, attempts, storage_options) as where:
            yield where
        return
    store = Path(location(store).path)
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


# -- object stores ---------------------------------------------------------------------


def _read_object_owner(fs: Any, path: str) -> dict[str, Any] | None:
    """The lock object's owner record; None when it is gone, ``{}`` when unreadable."""
    try:
        text = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _create_object(
    fs: Any,
    where: Location,
    data: bytes,
    *,
    guarded: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> bool:
    """Create the object at ``where`` only if absent; False when it already exists."""

    def shown(error: BaseException) -> str:
        return redact(error, storage_options)

    try:
        if guarded:
            fs.pipe_file(where.path, data, mode="create")
            return True
        # Advisory: a check, then a plain write (two runs at the same moment may both pass).
        if fs.exists(where.path):
            return False
        fs.pipe_file(where.path, data)
        return True
    except FileExistsError:
        return False
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"cannot create the lock {where} of the output: the bucket or container "
            f"does not exist ({shown(error)})"
        ) from None
    except PermissionError as error:
        raise PermissionError(
            f"cannot create the lock {where} of the output: access denied; check the "
            f"credentials and that they may write there ({shown(error)})"
        ) from None
    except OSError as error:
        raise OSError(
            error.errno, f"cannot create the lock {where} of the output ({shown(error)})"
        ) from None
    except Exception as error:  # e.g. the client's validation of a bucket name
        raise ValueError(
            f"cannot create the lock {where} of the output ({type(error).__name__}: {shown(error)})"
        ) from None


def _break_stale_object(fs: Any, where: Location, owner: dict[str, Any], guarded: bool) -> None:
    """Remove a stale lock object, serialised by a ``.break`` object as on a local disk."""
    breaker = Location(url=where.url + ".break", scheme=where.scheme, path=where.path + ".break")
    if not _create_object(fs, breaker, b"{}", guarded=guarded):
        with contextlib.suppress(Exception):  # gone meanwhile, or no modification time
            if time.time() - fs.modified(breaker.path).timestamp() > _BREAKER_TIMEOUT_S:
                fs.rm_file(breaker.path)
        return
    try:
        if _read_object_owner(fs, where.path) == owner:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(where.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(breaker.path)


def _object_refusal(store: str, where: Location, owner: dict[str, Any]) -> StoreLockedError:
    if owner:
        who = (
            f"process {owner.get('pid')} on host {owner.get('host')!r} (since {owner.get('since')})"
        )
    else:
        who = "a process that left an unreadable lock object"
    here = owner.get("host") == socket.gethostname()
    check = (
        f"check with `ps -p {owner.get('pid')}`" if here else f"check on host {owner.get('host')!r}"
    )
    return StoreLockedError(
        str(where),
        owner,
        f"output {store!r} is being written by {who}: two runs may not write one store. "
        f"Wait for that run to finish or choose another output. If no such run is alive "
        f"({check}), the lock is stale: delete the object {str(where)!r} and rerun with "
        "--resume (resume=True)",
    )


@contextlib.contextmanager
def _object_lock(
    store: str | os.PathLike[str], attempts: int, storage_options: Mapping[str, Any] | None
) -> Iterator[Location]:
    """:func:`store_lock` for a store in an object store (see the module docstring)."""
    where = lock_location(store)
    shown = redact(os.fspath(store), storage_options)
    fs = results_filesystem(where, storage_options)
    guarded = where.scheme in CONDITIONAL_CREATE_SCHEMES
    if not guarded:
        warnings.warn(
            f"the lock {where} of output {shown} is advisory: {where.scheme}:// stores are "
            "written without a conditional write here, so two runs started at the same "
            "moment are not kept apart; start one run per output",
            UnguardedLockWarning,
            stacklevel=3,
        )
    record = _owner_record()
    data = json.dumps(record).encode()
    for _ in range(attempts):
        if _create_object(fs, where, data, guarded=guarded, storage_options=storage_options):
            if _read_object_owner(fs, where.path) == record:
                break
            continue  # overwritten by a run that raced an advisory lock: look again
        owner = _read_object_owner(fs, where.path)
        if owner is None:  # released between our attempt and the read: try again
            continue
        if not _is_stale(owner):
            raise _object_refusal(shown, where, owner)
        _break_stale_object(fs, where, owner, guarded)
        time.sleep(0.01)
    else:
        raise _object_refusal(shown, where, _read_object_owner(fs, where.path) or {})
    try:
        yield where
    finally:
        # Only our own lock is removed (never one a stale-breaker put in its place).
        with contextlib.suppress(OSError):
            if _read_object_owner(fs, where.path) == record:
                fs.rm_file(where.path)
