"""Long subprocess checks started when the session's tests are collected, waited for by their test.

A few tests run a separate program for most of a minute on one core (the type checker
over ``pipeline``, a notebook in a Jupyter kernel) while the test process itself mostly
uses one core. ``tests/conftest.py`` starts each such program as soon as collection
has selected its test (:func:`start`); the test then takes the finished result
(:func:`result`) and asserts on it as before, so the program runs beside the tests
collected ahead of it instead of after them. A test run alone (or one whose program
was not started) runs its program when it asks for the result: same command, same
checks. What the program prints goes to temporary files, never to a pipe that could
fill up while nobody reads it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any


@dataclass
class _Run:
    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]


_RUNS: dict[str, _Run] = {}


def _lower_priority() -> None:
    os.nice(10)


def _spawn(
    command: list[str], **kwargs: Any
) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
    stdout = tempfile.TemporaryFile()
    stderr = tempfile.TemporaryFile()
    # Niced: the test process, which runs every other test meanwhile, comes first.
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_lower_priority if hasattr(os, "nice") else None,
        **kwargs,
    )
    return process, stdout, stderr


def start(key: str, command: list[str], **kwargs: Any) -> None:
    """Start ``command`` (``subprocess.Popen`` keyword arguments ``kwargs``) under ``key``."""
    if key in _RUNS:
        return
    process, stdout, stderr = _spawn(command, **kwargs)
    _RUNS[key] = _Run(process, stdout, stderr)


def result(
    key: str, command: list[str], *, timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """The finished run of ``command`` under ``key``: the one started early, or one run now.

    ``timeout`` counts from this call (a run started early has had its head start).

    Raises
    ------
    subprocess.TimeoutExpired
        The program did not finish in time (it is killed).
    """
    run = _RUNS.pop(key, None)
    if run is None:
        process, stdout, stderr = _spawn(command, **kwargs)
        run = _Run(process, stdout, stderr)
    try:
        code = run.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
        raise
    finally:
        out, err = _read(run.stdout), _read(run.stderr)
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
        if run.process.poll() is None:
            run.process.kill()
        run.process.wait()
        run.stdout.close()
        run.stderr.close()


# Early starters, by the test node id's ending: what conftest starts once collected.
STARTERS: dict[str, Callable[[], None]] = {}


def starter(nodeid_suffix: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a function that starts the run of the test whose node id ends ``nodeid_suffix``."""

    def register(function: Callable[[], None]) -> Callable[[], None]:
        STARTERS[nodeid_suffix] = function
        return function

    return register
