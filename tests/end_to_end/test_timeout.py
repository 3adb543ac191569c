"""A test that hangs fails by itself, with the threads' stacks, and the run goes on.

pyproject.toml sets pytest-timeout's ``timeout`` for the suite, so that a hang (a
cluster that never answers, a lock never released) costs one failed test, not the
whole CI run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGS = """
import time


def test_hangs():
    time.sleep(120)


def test_after_it():
    assert True
"""


def test_the_suite_has_a_timeout_per_test():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert 300 <= int(options["ini_options"]["timeout"]) <= 1800


def test_a_hanging_test_fails_and_the_next_one_runs(tmp_path):
    (tmp_path / "test_hang.py").write_text(HANGS)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(tmp_path),
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=3",
        "-n",
        "0",
        "-q",
        str(tmp_path / "test_hang.py"),
    ]
    # Not a worker of this run's pytest-xdist (its variables would say so to the child).
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=100, cwd=tmp_path, env=env
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed, 1 passed" in out.stdout, out.stdout
    assert "Timeout" in out.stdout, out.stdout
