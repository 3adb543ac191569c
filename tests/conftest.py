"""Shared fixtures: seeded generators, the loopback S3 server, and the GPU probe for `gpu` tests."""

from __future__ import annotations

import background_runs
import numpy as np
import pytest

# The loopback S3 server and a bucket per test, for every test module that names them.
from s3_server import s3_bucket, s3_server  # noqa: F401

from pipeline.kernels.backend import gpu_available


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20040413)  # Wang et al., IEEE TIP, April 2004


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # An importable CuPy is not a GPU: probe the device once, skip `gpu` tests if none answers.
    # The marker itself, not a keyword: the folder tests/kernels/gpu/ is a keyword of its tests.
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu_items and not gpu_available():
        skip = pytest.mark.skip(reason="no CUDA device answered the probe")
        for item in gpu_items:
            item.add_marker(skip)
    # The tests that wait for a long subprocess check run last: their programs, queued when
    # collection finishes, run beside every other test (tests/background_runs.py). Under
    # pytest-xdist the workers are the parallelism: such a test runs its program itself,
    # and goes first, so that the longest tests do not end the session on one worker.
    waiting = [item for item in items if background_runs.starter_of(item.nodeid) is not None]
    if waiting:
        long = set(waiting)
        rest = [item for item in items if item not in long]
        items[:] = waiting + rest if background_runs.IN_WORKER else rest + waiting


def pytest_collection_finish(session: pytest.Session) -> None:
    # Long subprocess checks of the selected tests are queued now, in test order, and run
    # beside the others (tests/background_runs.py); each test waits for its own.
    if session.config.option.collectonly or background_runs.IN_WORKER:
        return
    for item in session.items:
        begin = background_runs.starter_of(item.nodeid)
        if begin is not None:
            begin()


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    background_runs.pump()  # the next queued check starts as soon as a core is free


def pytest_unconfigure(config: pytest.Config) -> None:
    background_runs.stop_all()
