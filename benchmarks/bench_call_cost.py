"""Fixed cost of an in-memory call: ``pipeline.ssim`` on small and large images.

Usage::

    python benchmarks/bench_call_cost.py                          # this checkout
    python benchmarks/bench_call_cost.py --against /tmp/old-tree  # A/B, interleaved

Each checkout is timed in its own subprocess (so that both can be imported under
the name ``pipeline``); the parent asks them for one case at a time, alternating
between them round by round, so that both see the same load on shared cores.
Prints, per case, the best and the median wall-clock time of a call over the
rounds and the best CPU time (all threads of the process; less disturbed by other
work on shared cores) and, with ``--against``, the ratios of this checkout to the
other one; then the cost per pixel of 512^2 against 2048^2 (from the best times,
the median times, the median over rounds of each round's own ratio, and the best
CPU times), the figure that says whether a small image pays more per pixel than a
large one. ``--threads 1`` times
the calling thread alone (no pool), where a fixed cost shows most plainly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from _malloc import KEEP_ENV, add_flag

HERE = Path(__file__).resolve().parents[1]

# (name, function, profile, side, channels, calls per timing)
CASES = [
    ("ssim wang2004 16x16", "ssim", "wang2004", 16, 0, 400),
    ("ssim skimage 16x16", "ssim", "skimage", 16, 0, 400),
    ("ssim wang2004 16x16x3", "ssim", "wang2004", 16, 3, 200),
    ("ssim wang2004 64x64", "ssim", "wang2004", 64, 0, 200),
    ("ssim skimage 64x64", "ssim", "skimage", 64, 0, 200),
    ("ms_ssim wang2004 176x176", "ms_ssim", "wang2004", 176, 0, 20),
    ("ssim wang2004 512x512", "ssim", "wang2004", 512, 0, 8),
    ("ssim skimage 512x512", "ssim", "skimage", 512, 0, 8),
    ("ssim wang2004 2048x2048", "ssim", "wang2004", 2048, 0, 1),
    ("ssim skimage 2048x2048", "ssim", "skimage", 2048, 0, 1),
]

# Runs in the subprocess: reads a case index per line, answers seconds per call.
WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import pipeline

cases = json.loads(sys.argv[2])
rng = np.random.default_rng(2004)
pairs = []
for _, function, profile, side, channels, calls in cases:
    shape = (side, side, channels) if channels else (side, side)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    options = {"profile": profile, "channel_axis": -1 if channels else None}
    call = getattr(pipeline, function)
    call(x, y, **options)  # compile / warm
    pairs.append((call, x, y, options, calls))
print("ready", flush=True)
for line in sys.stdin:
    call, x, y, options, calls = pairs[int(line)]
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call(x, y, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(wall / calls, cpu / calls, flush=True)
"""


def start_worker(tree: Path, threads: int | None, keep_memory: bool) -> subprocess.Popen[str]:
    env = dict(os.environ) | (KEEP_ENV if keep_memory else {})
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tree), json.dumps(CASES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,
        env=env,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the worker for {tree} did not start")
    return process


def ask(process: subprocess.Popen[str], case: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of the worker) of one call of ``case``."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{case}\n")
    process.stdin.flush()
    wall, cpu = process.stdout.readline().split()
    return float(wall), float(cpu)


def stamp() -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC, load {load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, help="NUMBA_NUM_THREADS of the workers (default: numba's)"
    )
    add_flag(parser)
    args = parser.parse_args(argv)
    trees = {"this": HERE} | ({"other": args.against.resolve()} if args.against else {})
    workers = {
        name: start_worker(tree, args.threads, args.keep_memory) for name, tree in trees.items()
    }
    times: dict[str, list[list[float]]] = {name: [[] for _ in CASES] for name in trees}
    cpu: dict[str, list[list[float]]] = {name: [[] for _ in CASES] for name in trees}
    threads = args.threads or "numba's default"
    print(f"# started {stamp()}; {args.rounds} rounds, checkouts interleaved, threads: {threads}")
    malloc = "freed memory kept" if args.keep_memory else "the C library's defaults"
    print(f"# workers' malloc: {malloc}")
    for round_ in range(args.rounds):
        for index in range(len(CASES)):
            order = list(workers) if (round_ + index) % 2 == 0 else list(reversed(workers))
            for name in order:
                wall, used = ask(workers[name], index)
                times[name][index].append(wall)
                cpu[name][index].append(used)
    for process in workers.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait()
    print(f"# ended {stamp()}")
    for name, tree in trees.items():
        print(f"# {name}: {tree}")
    print()
    header = "| case | " + " | ".join(f"{n}: wall best / median, CPU best (us)" for n in trees)
    print(header + (" | this / other: wall best, median, CPU best |" if args.against else " |"))
    print("|---" * (len(trees) + 1 + bool(args.against)) + "|")
    for index, case in enumerate(CASES):
        cells = []
        for name in trees:
            runs = times[name][index]
            cells.append(
                f"{min(runs) * 1e6:.1f} / {statistics.median(runs) * 1e6:.1f}, "
                f"{min(cpu[name][index]) * 1e6:.1f}"
            )
        row = f"| {case[0]} | " + " | ".join(cells)
        if args.against:
            this, other = times["this"][index], times["other"][index]
            best = min(this) / min(other)
            median = statistics.median(this) / statistics.median(other)
            used = min(cpu["this"][index]) / min(cpu["other"][index])
            row += f" | {best:.2f}, {median:.2f}, {used:.2f}"
        print(row + " |")
    print()
    print(
        "| cost per pixel, 512^2 / 2048^2 | "
        + " | ".join(f"{n}: wall best, wall median, per round, CPU best" for n in trees)
        + " |"
    )
    print("|---" * (len(trees) + 1) + "|")
    names = [case[0] for case in CASES]
    for profile in ("wang2004", "skimage"):
        small = names.index(f"ssim {profile} 512x512")
        large = names.index(f"ssim {profile} 2048x2048")
        cells = []
        for n in trees:
            best = min(times[n][small]) * 16 / min(times[n][large])
            median = statistics.median(times[n][small]) * 16 / statistics.median(times[n][large])
            # The two sizes of one round ran seconds apart, under much the same load.
            per_round = statistics.median(
                a * 16 / b for a, b in zip(times[n][small], times[n][large], strict=True)
            )
            used = min(cpu[n][small]) * 16 / min(cpu[n][large])
            cells.append(f"{best:.2f}, {median:.2f}, {per_round:.2f}, {used:.2f}")
        print(f"| {profile} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
