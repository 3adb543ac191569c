"""The benchmark that times the kernel's stages still drives the kernel it describes.

``benchmarks/bench_stages.py`` mirrors :func:`pipeline.kernels.cpu.chunk.maps_chunks`
stage by stage in a numba loop of its own and checks, before timing, that the loop's
statistics equal the real entry point's. When the kernel's arguments changed (the float64
deficit map), the script stopped with a TypeError and nothing noticed: the figures in
``benchmarks/README-kernels.md`` and the README come from it. Run on a small pair, the
script must finish, agree with ``maps_chunks`` (else it raises) and print every stage.
Timings are not checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_stage_benchmark_runs_and_agrees_with_the_kernel():
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_stages.py", "--size", "64", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line[:2] == "| "]
    for stage in (
        "vertical pass",
        "horizontal pass",
        "combine (SSIM, cs, l, c, s)",
        "statistics: histogram counts, merge",
        "all stages",
        "check: maps_chunks (packed statistics)",
        "score: all stages",
    ):
        assert stage in rows, (stage, result.stdout)
    assert "FMA datapath" in result.stdout
