"""Keep numba's on-disk cache of this package's kernels in step with their sources.

The compiled kernels are cached (``cache=True``) next to their modules, in
``__pycache__``. numba checks a cached kernel against its *own* source file only
(numba issue #1833): a kernel that calls compiled functions of another module
(``fused_chunk`` calls ``reductions``, which calls ``histogram``) has their code
inlined into its cache entry, and keeps running the old code after only that
other module changed, which is what a ``git pull`` or an edit of a working tree
does. So, once per process, :func:`refresh` fingerprints the contents of every
module of the package that uses numba and, when the fingerprint differs from the
one recorded beside the cache, removes the package's cache files; the kernels
then compile afresh on first use (up to a minute or so) and are cached again.

Only a cache inside the package (a source checkout or an editable install, where
``__pycache__`` is writable) is handled. An installed, read-only package is
cached by numba under the user's cache directory instead, and a new version
installs every file anew, which numba already sees as changed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["refresh"]

STAMP_NAME = "numba-sources.sha256"
_PACKAGE = Path(__file__).resolve().parent


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
