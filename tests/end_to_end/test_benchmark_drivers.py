"""The benchmarks whose figures the READMEs quote still run against the code they describe.

``benchmarks/bench_stages.py`` mirrors :func:`pipeline.kernels.cpu.chunk.maps_chunks`
and the score's path (:func:`pipeline.kernels.cpu.gaussian.gaussian_score_row`) stage by
stage in numba loops of its own and checks, before timing, that the loops' results equal
the real entry points'. When the kernel's arguments changed (the float64 deficit map),
the script stopped with a TypeError and nothing noticed: the figures in
``benchmarks/README-kernels.md`` and the README come from it. Run on a small pair, the
script must finish, agree with the kernel (else it raises), print every stage and find
each sweep's and comparison step's vector loop in its assembly (``--loops``); and
``benchmarks/bench_ssim_ab.py`` must compare this checkout with a copy of itself (the
score, MS-SSIM and the downsampling profile), and
``benchmarks/bench_colour.py --per-task`` find the serial and parallel kernels agreeing, and
``benchmarks/bench_evaluate_ab.py`` time ``evaluate`` of two checkouts and OpenCV in the same
rounds. Timings are not checked.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script> <arguments>`` from the checkout's root; it must succeed."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_stage_benchmark_runs_and_agrees_with_the_kernel():
    result = _run("bench_stages.py", "--size", "64", "--repeat", "1", "--loops")
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines() if line[:2] == "| "]
    for stage in (
        "vertical pass",
        "horizontal pass",
        "combine (SSIM, cs, l, c, s)",
        "statistics: histogram counts, merge",
        "all stages",
        "check: maps_chunks (packed statistics)",
        "score: all stages",
        "load rows (p, m)",
        "combine (deficits) + row sum",
        "check: fused_score (threads=1)",
    ):
        assert stage in rows, (stage, result.stdout)
    assert "FMA datapath" in result.stdout
    assert "GHz measured" in result.stdout
    # The hot-loop table found each routine's vector loop (ymm or zmm) in its assembly. Its
    # columns per iteration depend on the CPU: the float64 comparison steps make 8 where
    # LLVM emits zmm code (AMD Zen 4) and 4 where it prefers 256-bit vectors (Intel's
    # AVX-512 CPUs); the float32 sweeps make at least 8 on both.
    rows = [line.split("|") for line in result.stdout.splitlines()]
    loops = {cells[2].strip(): cells[3:] for cells in rows
             if len(cells) == 13 and cells[1].strip() in ("score", "maps")}  # fmt: skip
    assert len(loops) == 6, result.stdout
    for routine, cells in loops.items():
        step, instructions = int(cells[0]), int(cells[1])
        least = 8 if "sweep" in routine else 4
        assert step >= least and instructions > 10, (routine, cells)


def test_the_ssim_comparison_runs_against_another_checkout(tmp_path):
    # A copy of this checkout's package stands for "another checkout": each child must
    # import the tree it was given (the script checks) and print one row per tree.
    shutil.copytree(
        ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    # The score, MS-SSIM and the profile that downsamples first (384^2: factor 2).
    for call, profile, side in (("ssim", "wang2004", 96), ("ms_ssim", "wang2004", 176),
                                ("ssim", "wang2009", 384)):  # fmt: skip
        result = _run("bench_ssim_ab.py", "--against", str(tmp_path), "--rounds", "1",
                      "--size", str(side), "--call", call, "--profile", profile)  # fmt: skip
        assert f"pipeline.{call}, {side}^2" in result.stdout
        rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line[:2] == "| "]
        trees = [row[0].strip() for row in rows[1:]]
        assert trees == [str(ROOT), str(tmp_path)], result.stdout
        scores = {row[-1].strip() for row in rows[1:]}
        assert len(scores) == 1, result.stdout  # the same code gives the same score


def test_the_colour_benchmark_times_the_per_task_kernels(tmp_path):
    # bench_colour.py --per-task checks that evaluate's serial per-task kernels and the
    # parallel call give the same packed statistics before it times them (the README
    # quotes its ratio); on two tiny pairs it must get that far and print both rows.
    result = _run("bench_colour.py", "--pairs", "2", "--size", "64", "--kernels-only",
                  "--per-task", "--repeat", "1", "--data", str(tmp_path))  # fmt: skip
    rows = [line.split("|") for line in result.stdout.splitlines() if line[:2] == "| "]
    per_task = {cells[1].strip(): cells[2:5] for cells in rows if len(cells) == 6}
    for name in ("colour packed statistics", "grey packed statistics (first channel)"):
        serial, parallel, ratio = per_task[name]
        assert serial.strip().endswith(" s") and parallel.strip().endswith(" s"), result.stdout
        assert float(ratio.strip().rstrip("x")) > 0


def test_the_evaluate_comparison_runs_against_another_checkout(tmp_path):
    # bench_evaluate_ab.py: a copy of this checkout's package stands for another checkout
    # (each child must import the tree it was given); both rows, the OpenCV peer's row and
    # the medians come out, and the checkouts agree on the mean SSIM (the script checks).
    other = tmp_path / "other"
    shutil.copytree(
        ROOT / "pipeline", other / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    data = str(tmp_path / "data")
    result = _run("bench_evaluate_ab.py", "--against", str(other), "--pairs", "2", "--size",
                  "64", "--rounds", "1", "--repeat", "1", "--data", data)  # fmt: skip
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line[:2] == "| "]
    timed = [row for row in rows if row[0].strip() == "1"]
    # OpenCV is a benchmark extra: its row where it is installed, a note where not.
    opencv = importlib.util.find_spec("cv2") is not None
    peers = ["OpenCV float32 colour SSIM"] if opencv else []
    assert [row[1].strip() for row in timed] == [str(ROOT), str(other), *peers], result.stdout
    assert all(row[4].strip() == "yes" for row in timed[:2]), result.stdout  # both have mean maps
    medians = {row[0].strip(): row for row in rows if row[0].strip() in (str(ROOT), "OpenCV")}
    assert medians[str(ROOT)][2].strip() == "1.00x", result.stdout
    if opencv:
        assert medians["OpenCV"][2].strip().endswith("x"), result.stdout
    else:
        assert "OpenCV is not installed" in result.stdout
