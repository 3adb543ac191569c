"""jit_cache.refresh: cached kernels never outlive a change to a module they inline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline import jit_cache

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
from pipeline.jit_cache import refresh
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
    # after dep.py changes, a plain run would still answer 2 * 1 (numba issue #1833).
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


def test_a_package_without_a_writable_cache_directory_is_left_alone(tmp_path: Path) -> None:
    # Where numba cannot cache beside the sources it caches under the user's cache
    # directory, keyed by files that an install rewrites anyway: nothing to do here.
    package = _package(tmp_path, value=1)
    (package / "__pycache__").write_text("not a directory")
    assert not jit_cache.refresh(package)
