"""jit_cache.refresh: cached kernels never outlive a change to a module they inline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline.kernels.cpu import jit_cache

DEP = """
import numba

@numba.njit(cache=True)
def value():
    return {value}
"""

MAIN = """
import numba

from kernels.dep import value

@numba.njit(cache=True)
def twice():
    return 2 * value()
"""

RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from pipeline.kernels.cpu.jit_cache import refresh
if {refresh}:
    refresh(Path({root!r}) / "kernels")
from kernels.main import twice
print(twice())
"""


def _package(root: Path, value: int) -> Path:
    package = root / "kernels"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "dep.py").write_text(DEP.format(value=value))
    (package / "main.py").write_text(MAIN)
    return package


def _twice(root: Path, *, refresh: bool) -> int:
    code = textwrap.dedent(RUN.format(root=str(root), refresh=refresh))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return int(done.stdout.strip())


def test_a_changed_callee_module_recompiles_its_callers(tmp_path: Path) -> None:
    # numba keys main.twice's cache entry on main.py alone, with dep.value inlined:
    # after dep.py changes, a plain run would still answer 2 * 1.
    package = _package(tmp_path, value=1)
    assert _twice(tmp_path, refresh=True) == 2
    assert list((package / "__pycache__").glob("main.twice-*.nbi"))  # it was cached
    (package / "dep.py").write_text(DEP.format(value=21))
    assert _twice(tmp_path, refresh=True) == 42
    assert _twice(tmp_path, refresh=True) == 42  # and cached again from the new sources


def test_only_numba_modules_count(tmp_path: Path) -> None:
    package = _package(tmp_path, value=1)
    (package / "cli.py").write_text("print('no kernels here')\n")
    assert jit_cache.refresh(package)  # first fingerprint recorded
    cached = package / "__pycache__" / "main.twice-8.py311.nbi"
    cached.write_bytes(b"x")
    assert not jit_cache.refresh(package)
    (package / "cli.py").write_text("print('still no kernels')\n")
    assert not jit_cache.refresh(package)
    assert cached.exists()  # an edit elsewhere keeps the compiled kernels
    (package / "dep.py").write_text(DEP.format(value=2))
    assert jit_cache.refresh(package)
    assert not cached.exists()
    assert not jit_cache.refresh(package)


def test_modules_kernels_reach_without_naming_numba_count(tmp_path: Path) -> None:
    # A kernel compiled through a helper of another module never names numba, and
    # the constants it freezes (a layout's field indices) may live in a plain
    # module: both are in the fingerprint, and so is a lazy import inside a kernel
    # module. A module that no kernel module imports is not.
    package = _package(tmp_path, value=1)
    (package / "layout.py").write_text("FIELD = 1\n")
    (package / "lazy.py").write_text("SCALE = 2\n")
    (package / "helper.py").write_text(
        "from kernels.layout import FIELD\n\n\n@jit()\ndef get(row):\n    return row[FIELD]\n\n\n"
        "def scale():\n    from kernels import lazy\n\n    return lazy.SCALE\n"
    )
    (package / "other.py").write_text("FIELD = 3\n")
    assert jit_cache.refresh(package)
    for name, text in (("layout.py", "FIELD = 2\n"), ("lazy.py", "SCALE = 3\n")):
        (package / name).write_text(text)
        assert jit_cache.refresh(package), name
    (package / "other.py").write_text("FIELD = 4\n")
    assert not jit_cache.refresh(package)


def test_a_package_without_a_writable_cache_directory_is_left_alone(tmp_path: Path) -> None:
    # Where numba cannot cache beside the sources it caches under the user's cache
    # directory, keyed by files that an install rewrites anyway: nothing to do here.
    package = _package(tmp_path, value=1)
    (package / "__pycache__").write_text("not a directory")
    assert not jit_cache.refresh(package)


LAZY_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from pipeline.kernels.cpu.jit_cache import refresh_before_first_compile
refresh_before_first_compile(Path({root!r}) / "kernels")
from kernels.main import twice
print(twice())
"""


def test_the_refresh_runs_before_the_first_kernel_loads_its_cache(tmp_path: Path) -> None:
    # Registered before main.twice's first call, the refresh must run before numba
    # reads that kernel's cache entry, or the stale 2 * 1 would come back.
    package = _package(tmp_path, value=1)
    code = textwrap.dedent(LAZY_RUN.format(root=str(tmp_path)))
    run = [sys.executable, "-c", code]
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip() == "2"
    (package / "dep.py").write_text(DEP.format(value=21))
    assert subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip() == "42"


AUDIT = """
import os
import sys

import numba

cache = {cache!r}
touched = []


def audit(name, args):
    # Any open (read or write), removal or rename of a cache file or of the stamp.
    if name in ("open", "os.remove", "os.rename", "os.replace") and args:
        path = os.fspath(args[0]) if isinstance(args[0], (str, os.PathLike)) else ""
        if path.startswith(cache) and path.endswith((".nbi", ".nbc", {stamp!r})):
            touched.append(path)


sys.addaudithook(audit)
import pipeline  # noqa: E402
print(len(touched))
numba.njit(lambda: 1)()  # the process's first compilation
print(len(touched))
"""


def test_import_pipeline_leaves_the_kernel_cache_alone() -> None:
    # Importing the package reads, writes and removes no cache file nor the stamp;
    # the first compilation of the process is what runs the refresh.
    package = jit_cache._PACKAGE
    code = AUDIT.format(cache=str(package), stamp=jit_cache.STAMP_NAME)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=package.parent,
    )
    at_import, after_compile = (int(line) for line in done.stdout.split())
    assert at_import == 0
    assert after_compile > 0
