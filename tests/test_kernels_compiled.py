"""A run compiles only the kernels it uses, once each: the cost of a first run.

Every compiled kernel is a few seconds of a cold start (an empty numba cache),
so these tests count, in a fresh process, the signatures the package's numba
kernels hold after a given workload. A kernel loaded from the cache brings the
routines it calls inside it, so only the entry points (the kernels called from
Python) show in a warm process; the cold test (``slow``: it compiles) sees
every routine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline

ROOT = Path(pipeline.__file__).resolve().parent.parent

WORKLOAD = """
import json
import sys

import numpy as np
from numba.core.registry import CPUDispatcher

import pipeline
from pipeline.kernels.fused import fused_maps
from pipeline.kernels.windows import window_weights


def compiled():
    # Signatures per kernel (by defining module), and per entry point.
    kernels = {}
    entry = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("pipeline"):
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value.signatures:
                defined = f"{value.py_func.__module__}.{value.py_func.__qualname__}"
                kernels[defined] = len(value.signatures)
                if name == "pipeline.kernels.fused":  # it holds only the kernels it launches
                    entry[defined] = len(value.signatures)
    return {"kernels": kernels, "entry": entry}


rng = np.random.default_rng(12)
x = rng.integers(0, 256, (160, 170), dtype=np.uint8)
y = rng.integers(0, 256, (160, 170), dtype=np.uint8)
params = dict(weights=window_weights("gaussian", 11, 1.5), uniform=False, c1=6.5, c2=58.5)
fused_maps(x, y, threads=1, **params)  # writable arrays on the calling thread
read_only = x.copy()
read_only.flags.writeable = False
fused_maps(read_only, y, threads=2, **params)  # a read-only array over two threads
maps = compiled()
pipeline.evaluate(x[None], y[None], scheduler="synchronous")  # region "all": packed statistics
print(json.dumps([maps, compiled()]))
"""

# The Gaussian map path: its entry point and the routines it calls, nothing else
# (no uniform window, no statistics, no parallel twin), one signature each.
GAUSSIAN_MAPS = {
    "pipeline.kernels.fused_chunk._maps_chunks": 1,
    "pipeline.kernels.fused_gaussian._gaussian_row": 1,
    "pipeline.kernels.fused_gaussian._horizontal_pass": 1,
    "pipeline.kernels.fused_gaussian._load_row": 1,
    "pipeline.kernels.fused_gaussian._vertical_pass": 1,
    "pipeline.kernels.fused_combine._combine_row": 1,
}
ENTRY = "pipeline.kernels.fused_chunk._maps_chunks"


def _compiled_after_workload(env: dict[str, str] | None = None) -> tuple[dict, dict]:
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
        env=env,
    )
    maps, after_evaluate = json.loads(done.stdout.strip().splitlines()[-1])
    return maps, after_evaluate


def test_one_entry_point_one_signature_per_output() -> None:
    maps, after_evaluate = _compiled_after_workload()
    # Read-only or writable input, one thread or two: the same single kernel.
    assert maps["entry"] == {ENTRY: 1}
    # evaluate's packed statistics (region "all") are a second output of it.
    assert after_evaluate["entry"] == {ENTRY: 2}


@pytest.mark.slow
def test_a_cold_run_compiles_only_the_routines_it_uses(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache: all compiles
    maps, after_evaluate = _compiled_after_workload(env)
    assert maps["kernels"] == GAUSSIAN_MAPS
    kernels = {
        name: count
        for name, count in after_evaluate["kernels"].items()
        if name.startswith("pipeline.kernels")
    }
    # The packed statistics reuse every routine of the map path; the uniform
    # window's running sums stay uncompiled.
    assert kernels == {**GAUSSIAN_MAPS, ENTRY: 2}
