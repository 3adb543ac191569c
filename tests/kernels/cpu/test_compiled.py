"""A run compiles only the kernels it uses, once each: the cost of a first run.

Every compiled kernel is a few seconds of a cold start (an empty numba cache),
so these tests count, in a fresh process, the signatures the package's numba
kernels hold after a given workload. A kernel loaded from the cache brings the
routines it calls inside it, so only the entry points (the kernels called from
Python) show in a warm process; the cold test (``slow``: it compiles) sees
every routine.

A cross-cutting file of the CPU kernels: its tests state what a workload
compiles across several modules (pipeline.kernels.cpu.chunk, .gaussian,
.combine, .histogram, .partials), not the behaviour of any one of them.
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
from pipeline.kernels.cpu.fused import fused_maps
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
                if name == "pipeline.kernels.cpu.fused":  # it holds only the kernels it launches
                    entry[defined] = len(value.signatures)
    return {"kernels": kernels, "entry": entry}


rng = np.random.default_rng(12)
x = rng.integers(0, 256, (160, 170), dtype=np.uint8)
y = rng.integers(0, 256, (160, 170), dtype=np.uint8)
params = dict(weights=window_weights("gaussian", 11, 1.5), uniform=False, c1=6.5, c2=58.5)
fused_maps(x, y, threads=1, **params)  # writable arrays on the calling thread
# A read-only array over two threads, large enough (~5 ms of work) that the pool thread,
# started and compiled by this first launch, joins it before the caller has taken
# every chunk.
big = rng.integers(0, 256, (700, 710), dtype=np.uint8)
read_only = big.copy()
read_only.flags.writeable = False
fused_maps(read_only, big, threads=2, **params)
maps = compiled()
pipeline.evaluate(x[None], y[None], scheduler="synchronous")  # region "all": packed statistics
print(json.dumps([maps, compiled()]))
"""

# The Gaussian map path of an odd window of up to 11 taps: its entry point and the
# routines it calls (var(x - y) beside the five moments), nothing else: no uniform
# window, no five-moment path of other windows, no statistics, no parallel twin; one
# signature each.
GAUSSIAN_MAPS = {
    "pipeline.kernels.cpu.chunk.maps_chunks": 1,
    "pipeline.kernels.cpu.gaussian.gaussian_row_m": 1,
    "pipeline.kernels.cpu.gaussian.load_row": 1,
    "pipeline.kernels.cpu.gaussian._sweep_rows": 1,
    "pipeline.kernels.cpu.gaussian._ring_row": 1,
    "pipeline.kernels.cpu.gaussian._sweep_weights": 1,
    "pipeline.kernels.cpu.gaussian._vertical_sweep_m": 1,
    "pipeline.kernels.cpu.gaussian._horizontal_sweep_m": 1,
    "pipeline.kernels.cpu.gaussian._outer_weights": 1,
    "pipeline.kernels.cpu.combine.combine_row_m": 1,
    "pipeline.kernels.cpu.combine._quotients": 1,
    "pipeline.kernels.cpu.combine._largest_variance_bits": 1,
    # The chunk counter every launch's kernel takes its chunks from, one thread or more.
    "pipeline.kernels.cpu.launch.take_chunk": 1,
}
ENTRY = "pipeline.kernels.cpu.chunk.maps_chunks"
# A launch over two threads: the pool's compiled counters (pipeline.kernels.cpu.launch).
POOL = {
    "pipeline.kernels.cpu.launch._add": 1,
    "pipeline.kernels.cpu.launch._leave_and_wait": 1,
    "pipeline.kernels.cpu.launch._wait_while_equal": 1,
}
# What the packed statistics add to it: the row reduction each output row goes
# through (two passes, then extremes and histogram counts), one signature each.
PACKED_ROWS = {
    "pipeline.kernels.cpu.histogram._bin_of": 1,
    "pipeline.kernels.cpu.histogram._count": 1,
    "pipeline.kernels.cpu.histogram._indices": 1,
    "pipeline.kernels.cpu.histogram.add_extremes_and_counts": 1,
    "pipeline.kernels.cpu.partials._segment_m2": 1,
    "pipeline.kernels.cpu.partials._segment_sums": 1,
    "pipeline.kernels.cpu.partials.add_row_partial": 1,
}
# The mean maps of a run: each block's four valid maps added into float64 sums (in
# the packed statistics' pass), and the pixels at the window centres (their backdrop).
MEAN_MAPS = {
    "pipeline.kernels.cpu.chunk.add_map_row": 1,
    "pipeline.kernels.cpu.partials._add_centre_rows": 1,
}
# The PSNR of a run: squared-error sums of the pixels.
PSNR_SUMS = {
    "pipeline.kernels.cpu.squared_error._run_sum": 1,
    "pipeline.kernels.cpu.squared_error._sums_rows": 1,
    # uint8 pairs: exact int32 sums of squared differences.
    "pipeline.kernels.cpu.squared_error._small_int_piece": 1,
    "pipeline.kernels.cpu.squared_error._small_int_sum": 1,
}


# The statistics of a region run on float32 maps: region "all" through
# block_statistics and through add_row_partial (what the fused kernels call per
# map row), then a grid's sub-regions, whose runs start anywhere in a row.
STATISTICS_WORKLOAD = """
import json
import sys

import numpy as np
from numba.core.registry import CPUDispatcher

from pipeline.kernels.cpu import histogram, partials
from pipeline.kernels.statistics import empty_statistics
from pipeline.reductions import statistics as reductions

rng = np.random.default_rng(3)
names = ("ssim", "luminance", "contrast", "structure")
maps = {name: rng.uniform(-1, 1, (2, 6, 150)).astype(np.float32) for name in names}
# Stored maps come with the fused kernel's deficits 1 - ssim (KernelSpec.maps(deficit=True)).
maps["deficit"] = (1 - maps["ssim"]).astype(np.float32)
reductions.block_statistics(maps, None, 1, 10)
row = empty_statistics(1, 1, 10)[0, 0]
deficit = maps["deficit"][0, 0]  # the kernels' 1 - ssim row
rows = [maps[name][0, 0] for name in names]
partials.add_row_partial(rows[0], deficit, *rows[1:], 100, row)
tiles = np.broadcast_to(np.arange(150) // 75, (2, 6, 150))  # runs of 75: the vectorised passes
reductions.block_statistics(maps, tiles, 3, 10)
signatures = {}
for module in (histogram, partials):
    for value in vars(module).values():
        if isinstance(value, CPUDispatcher) and value.signatures:
            name = f"{value.py_func.__module__}.{value.py_func.__qualname__}"
            signatures[name] = [str(signature) for signature in value.signatures]
print(json.dumps(signatures))
"""


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


def test_statistics_kernels_compile_once_per_run(tmp_path: Path) -> None:
    # An empty cache, so that every routine compiles and shows its signatures.
    # A whole row passed as bounds (0, n) would type its 0 as a literal and
    # compile the statistics chain twice over: once for whole rows, once for
    # the region runs that start anywhere.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", STATISTICS_WORKLOAD],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=ROOT,
        env=env,
    )
    signatures = json.loads(done.stdout.strip().splitlines()[-1])
    assert {name: len(found) for name, found in signatures.items()} == {
        "pipeline.kernels.cpu.histogram._bin_of": 1,
        "pipeline.kernels.cpu.histogram._count": 1,
        "pipeline.kernels.cpu.histogram._indices": 1,
        "pipeline.kernels.cpu.histogram.add_extremes_and_counts": 1,
        "pipeline.kernels.cpu.partials._add_segment": 1,
        "pipeline.kernels.cpu.partials._segment_m2": 1,
        "pipeline.kernels.cpu.partials._segment_sums": 1,
        "pipeline.kernels.cpu.partials.add_row_partial": 1,
        "pipeline.kernels.cpu.partials.region_statistics": 1,
        "pipeline.kernels.cpu.partials.whole_image_statistics": 1,
    }, signatures
    assert not any("Literal" in str(found) for found in signatures.values())


@pytest.mark.slow
def test_a_cold_run_compiles_only_the_routines_it_uses(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache: all compiles
    maps, after_evaluate = _compiled_after_workload(env)
    assert maps["kernels"] == {**GAUSSIAN_MAPS, **POOL}
    kernels = {
        name: count
        for name, count in after_evaluate["kernels"].items()
        if name.startswith("pipeline.kernels")
    }
    # A default evaluate (Gaussian window, region "all", mean maps, PSNR): the packed
    # statistics reuse every routine of the map path and add the row reduction; the
    # mean maps add their row accumulation, the PSNR its squared-error sums.
    assert kernels == {**GAUSSIAN_MAPS, ENTRY: 2, **POOL, **PACKED_ROWS, **MEAN_MAPS, **PSNR_SUMS}
    # What it does not use stays uncompiled: the uniform window's running sums, the
    # reductions of stored maps (whole image, regions), the colour and loss kernels.
    unused = (
        "pipeline.kernels.cpu.uniform.",
        "pipeline.kernels.cpu.colour.",
        "pipeline.kernels.cpu.loss.",
        "whole_image_statistics",
        "region_statistics",
    )
    assert not [name for name in kernels if any(part in name for part in unused)]
