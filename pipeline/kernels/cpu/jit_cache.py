"""Keep numba's on-disk cache of this package's kernels in step with their sources.

The compiled kernels are cached (``cache=True``) next to their modules, in
``__pycache__``. numba checks a cached kernel against its *own* source file only:
a kernel that calls compiled functions of another module (``fused_chunk`` calls
``reductions``, which calls ``histogram``) has their code inlined into its cache
entry, and keeps running the old code after only that other module changed, which
is what a ``git pull`` or an edit of a working tree does. So, once per process,
:func:`refresh` fingerprints the contents of every module of the package that uses
numba and, when the fingerprint differs from the one recorded beside the cache,
removes the package's cache files; the kernels then compile afresh on first use
(up to a minute or so) and are cached again.

Importing the package does none of this: ``import pipeline`` calls
:func:`refresh_before_first_compile`, which only registers a listener for
numba's ``numba:compiler_lock`` event. numba broadcasts that event when a
dispatcher is about to compile or to load a cached kernel, before it reads the
cache, so :func:`refresh` runs once, on the process's first kernel call.

Only a cache inside the package (a source checkout or an editable install, where
``__pycache__`` is writable) is handled. An installed, read-only package is
cached by numba under the user's cache directory instead, and a new version
installs every file anew, which numba already sees as changed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

from numba.core import event

__all__ = ["refresh", "refresh_before_first_compile"]

STAMP_NAME = "numba-sources.sha256"
# The whole package: modules using numba live in several stages.
_PACKAGE = Path(__file__).resolve().parents[2]


def sources_fingerprint(package: Path = _PACKAGE) -> str:
    """SHA-256 over the path and contents of every module under ``package`` that uses numba."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        data = path.read_bytes()
        if b"numba" in data:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def refresh(package: Path = _PACKAGE) -> bool:
    """Remove the package's cached kernels if any numba module changed since they were made.

    Returns True when cache files were removed (or a first fingerprint recorded),
    False when the cache is current or not kept inside the package.
    """
    cache_dir = package / "__pycache__"
    try:
        cache_dir.mkdir(exist_ok=True)
    except OSError:
        return False
    if not os.access(cache_dir, os.W_OK):
        return False
    stamp = cache_dir / STAMP_NAME
    fingerprint = sources_fingerprint(package)
    try:
        if stamp.read_text() == fingerprint:
            return False
    except OSError:
        pass
    for pycache in package.rglob("__pycache__"):
        for cached in [*pycache.glob("*.nbi"), *pycache.glob("*.nbc")]:
            cached.unlink(missing_ok=True)
    # Written whole, then renamed: a process starting meanwhile sees the old stamp or the new.
    try:
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".stamp-")
        with os.fdopen(fd, "w") as out:
            out.write(fingerprint)
        os.replace(tmp, stamp)
    except OSError:
        pass
    return True


class _RefreshOnce(event.Listener):
    """Runs :func:`refresh` on the first ``numba:compiler_lock`` event it hears."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.done = False
        self._lock = threading.Lock()

    def on_start(self, event: event.Event) -> None:
        if self.done:
            return
        # A thread that compiles meanwhile waits here until the stale files are gone.
        with self._lock:
            if self.done:
                return
            try:
                refresh(self.package)
            except OSError:
                # Keeping the cache fresh is housekeeping: an unreadable module
                # must not stop the kernel from compiling.
                pass
            self.done = True

    def on_end(self, event: event.Event) -> None:
        pass


_LISTENERS: dict[Path, _RefreshOnce] = {}
_LISTENERS_LOCK = threading.Lock()


def refresh_before_first_compile(package: Path = _PACKAGE) -> None:
    """Run :func:`refresh` on ``package`` just before numba first compiles or loads a kernel.

    Touches no file now: it registers a listener for numba's
    ``numba:compiler_lock`` event, which numba broadcasts whenever a
    dispatcher is about to compile a signature or load it from the cache.
    The first such event of the process (whatever the kernel) runs the
    refresh; later ones return at once. Calling it again for the same package
    does nothing.
    """
    package = Path(package).resolve()
    with _LISTENERS_LOCK:
        if package in _LISTENERS:
            return
        # Never unregistered: removing a listener while numba broadcasts an
        # event would skip the next listener in its list.
        _LISTENERS[package] = _RefreshOnce(package)
        event.register("numba:compiler_lock", _LISTENERS[package])
