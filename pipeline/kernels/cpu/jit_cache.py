"""Keep numba's on-disk cache of this package's kernels in step with their sources.

The compiled kernels are cached (``cache=True``) next to their modules, in
``__pycache__``. numba checks a cached kernel against its *own* source file only:
a kernel that calls compiled functions of another module (``chunk`` calls
``partials``, which calls ``histogram``) or reads its constants (the field indices
of ``pipeline.kernels.statistics``) has their code and values inlined into its
cache entry, and keeps running the old code after only that other module changed,
which is what a ``git pull`` or an edit of a working tree does. So, once per
process, :func:`refresh` fingerprints the contents of every module of the package
that kernels depend on (:func:`sources_fingerprint`) and, when the fingerprint
differs from the one recorded beside the cache,
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

import ast
import hashlib
import os
import tempfile
import threading
from pathlib import Path

from numba.core import event

__all__ = ["refresh", "refresh_before_first_compile"]

STAMP_NAME = "numba-sources.sha256"
# The whole package: modules that mention numba live in several stages.
_PACKAGE = Path(__file__).resolve().parents[2]


def sources_fingerprint(package: Path = _PACKAGE) -> str:
    """SHA-256 over the path and contents of every module under ``package`` kernels depend on.

    Those are the modules that mention numba, the modules that compile kernels
    (``jit(`` in their text, numba's decorators or a helper that wraps them), and
    every module of the package those import, directly or not: a compiled kernel
    inlines the functions it calls and freezes the module-level constants it
    reads (a layout's field indices, say), wherever they are defined.
    """
    modules = {path: path.read_bytes() for path in sorted(package.rglob("*.py"))}
    counted = {path for path, data in modules.items() if b"numba" in data}
    pending = [path for path, data in modules.items() if b"jit(" in data]
    reached = set(pending)
    while pending:
        for imported in _package_imports(pending.pop(), modules, package):
            if imported not in reached:
                reached.add(imported)
                pending.append(imported)
    digest = hashlib.sha256()
    for path in sorted(counted | reached):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(modules[path]).digest())
    return digest.hexdigest()


def _package_imports(path: Path, modules: dict[Path, bytes], package: Path) -> set[Path]:
    """The modules of ``package`` that the module at ``path`` imports (anywhere in it)."""
    try:
        tree = ast.parse(modules[path])
    except (SyntaxError, ValueError):
        return set()
    here = path.relative_to(package).with_suffix("").parts
    names: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: from the module's own package (its folder), up level - 1.
                base = (package.name, *here[: len(here) - node.level])
            else:
                base = ()
            module = (*base, *(node.module.split(".") if node.module else ()))
            names.append(module)
            names.extend((*module, alias.name) for alias in node.names)
    found = set()
    for name in names:
        if not name or name[0] != package.name:
            continue
        for candidate in (
            package.joinpath(*name[1:]).with_suffix(".py") if len(name) > 1 else None,
            package.joinpath(*name[1:], "__init__.py"),
        ):
            if candidate is not None and candidate in modules:
                found.add(candidate)
    return found


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


# Imported before numba (the package's import hook then ran while this module was half
# initialised and left the registration to it): register now. Otherwise the hook has
# registered already and this returns at once.
refresh_before_first_compile()
