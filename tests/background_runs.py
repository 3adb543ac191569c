"""Long subprocess checks started ahead of their test, beside the other tests, then waited for.

A few tests run a separate program for most of a minute on one core (the type checker
over ``pipeline``, a notebook in a Jupyter kernel, nvcc builds) while the test process
itself mostly uses one core. ``tests/conftest.py`` moves such tests to the end of the
session and queues their programs as soon as collection has selected them
(:func:`start`), in test order; queued programs are started one at a time on each
core the test process leaves free, checked after every test (:func:`pump`). The test
then takes the finished result (:func:`result`) and asserts on it as before: a
program still queued is started then, and a test run alone runs its program then.
Same command, same checks; only when it runs changes. Under pytest-xdist nothing is
queued early: each such test runs first on its worker and starts its program itself.
What a program prints goes to temporary files, never to a pipe that could fill up while
nobody reads it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

# A pytest-xdist worker: every worker collects every test, so none queues early (each
# would start every program); the workers themselves run side by side instead.
IN_WORKER = "PYTEST_XDIST_WORKER" in os.environ

# Programs run at once: one per core beyond the one the test process uses.
AT_ONCE = max(1, (os.cpu_count() or 1) - 1)


@dataclass
class _Run:
    command: list[str]
    kwargs: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None

    def spawn(self) -> None:
        self.stdout = tempfile.TemporaryFile()
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            **self.kwargs,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# In the order queued; a run leaves when its test takes the result.
_RUNS: dict[str, _Run] = {}


def start(key: str, command: list[str], **kwargs: Any) -> None:
    """Queue ``command`` (``subprocess.Popen`` keyword arguments ``kwargs``) under ``key``."""
    if key not in _RUNS:
        _RUNS[key] = _Run(command, kwargs)
    pump()


def pump() -> None:
    """Start queued programs while fewer than :data:`AT_ONCE` are running."""
    running = sum(run.running() for run in _RUNS.values())
    for run in _RUNS.values():
        if running >= AT_ONCE:
            return
        if run.process is None:
            run.spawn()
            running += 1


def result(
    key: str, command: list[str], *, timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """The finished run of ``command`` under ``key``: the one queued early, or one run now.

    ``timeout`` counts from this call (a run started early has had its head start).

    Raises
    ------
    subprocess.TimeoutExpired
        The program did not finish in time (it is killed).
    """
    run = _RUNS.pop(key, None) or _Run(command, kwargs)
    if run.process is None:
        run.spawn()
    assert run.process is not None and run.stdout is not None and run.stderr is not None
    try:
        code = run.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
        raise
    finally:
        out, err = _read(run.stdout), _read(run.stderr)
        pump()
    return subprocess.CompletedProcess(run.process.args, code, out, err)


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    text = file.read().decode(errors="replace")
    file.close()
    return text


def stop_all() -> None:
    """Kill and reap every run nobody asked for (the session ended before its test)."""
    while _RUNS:
        _, run = _RUNS.popitem()
        if run.process is None:
            continue
        if run.process.poll() is None:
            run.process.kill()
        run.process.wait()
        for file in (run.stdout, run.stderr):
            if file is not None:
                file.close()


# Early starters, by the test node id's ending: what conftest queues once collected.
STARTERS: dict[str, Callable[[], None]] = {}


def starter(nodeid_suffix: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a function that queues the run of the test whose node id ends ``nodeid_suffix``."""

    def register(function: Callable[[], None]) -> Callable[[], None]:
        STARTERS[nodeid_suffix] = function
        return function

    return register


def starter_of(nodeid: str) -> Callable[[], None] | None:
    """The registered starter of the test ``nodeid``, if any."""
    for suffix, begin in STARTERS.items():
        if nodeid.endswith(suffix):
            return begin
    return None
