"""``pipeline.ssim`` (or ``ms_ssim``), this checkout against others, in alternating processes.

    python3 benchmarks/bench_ssim_ab.py --against DIR [DIR ...] [--rounds 5] [--size 2048]
        [--threads 1] [--profile wang2004] [--dtype uint8] [--offset 0] [--call ssim]

Each ``DIR`` is another checkout's root (``git archive COMMIT | tar -x -C DIR``). Only
the public call is timed, so any tree with ``pipeline.ssim`` can be compared, the tree
of a target's filing included (:file:`bench_kernel_ab.py` times the kernels' entry
points, whose arguments change between trees). Each round runs one child process per
tree, this one first; a child scores a ``--size`` square of the tiled astronaut
photograph's green channel against a copy with uniform noise of +-20 levels (uint8, or
that pair divided by 255 as float32/float64 with ``data_range=1``, plus ``--offset``:
data far from zero against their range), two warm-up calls, then the best wall time of
7. With ``--threads 1`` the child is pinned to one CPU (``os.sched_setaffinity``), so
the kernel's thread pool shares it; with 2, both CPUs. Printed: ns per output pixel per
round and tree, the median of each tree, and the median of the other trees' time over
this one's per round. ``--call ms_ssim`` times ``pipeline.ms_ssim`` instead, and
``--profile wang2009`` the profile that downsamples first (``ssim.m``'s rule); both are
printed per input pixel, as their outputs are fewer. Nothing here gates a test; on a
shared machine the figures move with its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import _checkout

CHILD = """
import json, os, sys, time
tree, size, threads, profile, dtype, offset, name = sys.argv[1:8]
size, threads, offset = int(size), int(threads), float(offset)
if threads == 1:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.path.insert(0, tree)
import numpy as np
import pipeline
from skimage import data

green = data.astronaut()[..., 1]
reps = -(-size // 512)
x = np.tile(green, (reps, reps))[:size, :size].copy()
rng = np.random.default_rng(0)
y = np.clip(x.astype(np.int16) + rng.integers(-20, 21, x.shape), 0, 255).astype(np.uint8)
kwargs = {}
if dtype != "uint8":
    x = (x.astype(dtype) / 255 + offset).astype(dtype)
    y = (y.astype(dtype) / 255 + offset).astype(dtype)
    kwargs = {"data_range": 1.0}
call = getattr(pipeline, name)
for _ in range(2):
    score = call(x, y, profile=profile, **kwargs)
best = float("inf")
for _ in range(7):
    start = time.perf_counter()
    call(x, y, profile=profile, **kwargs)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"module": pipeline.__file__, "seconds": best, "score": float(score)}))
"""


def run(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """One child's best time and score."""
    found = _checkout.child_json(CHILD, str(tree), str(args.size), str(args.threads),
                                 args.profile, args.dtype, str(args.offset), args.call)  # fmt: skip
    if not str(found["module"]).startswith(str(tree)):
        raise SystemExit(f"the child imported {found['module']}, not the tree {tree}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, nargs="+", required=True, help="checkouts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=2048, help="side of the square pair")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--profile", choices=("wang2004", "skimage", "wang2009"), default="wang2004"
    )
    parser.add_argument("--call", choices=("ssim", "ms_ssim"), default="ssim")
    parser.add_argument("--dtype", choices=("uint8", "float32", "float64"), default="uint8")
    parser.add_argument("--offset", type=float, default=0.0, help="added to float pixels")
    args = parser.parse_args(argv)
    if args.offset and args.dtype == "uint8":
        raise SystemExit("--offset applies to float pixels (--dtype float32 or float64)")
    if args.threads == 1 and not hasattr(os, "sched_setaffinity"):
        raise SystemExit("--threads 1 needs os.sched_setaffinity (Linux)")
    trees = [_checkout.REPO, *(tree.resolve() for tree in args.against)]
    # Output pixels of a score of the profile's window (11 taps or 7); input pixels where
    # the call downsamples.
    per_input = args.call == "ms_ssim" or args.profile == "wang2009"
    if per_input:
        pixels = args.size**2
    else:
        pixels = (args.size - 10) ** 2 if args.profile != "skimage" else (args.size - 6) ** 2
    times: dict[Path, list[float]] = {tree: [] for tree in trees}
    scores: dict[Path, float] = {}
    for k in range(args.rounds):
        for tree in trees:
            found = run(tree, args)
            times[tree].append(1e9 * found["seconds"] / pixels)
            scores[tree] = found["score"]
        print(f"round {k + 1} of {args.rounds} done", file=sys.stderr)
    print(
        f"pipeline.{args.call}, {args.size}^2 {args.dtype} (offset {args.offset:g}), profile"
        f" {args.profile}, {args.threads} thread(s); ns per {'input' if per_input else 'output'}"
        " pixel, best of 7 per process"
    )
    print("| tree | per round | median | its time / this tree's (median per round) | score |")
    print("|---|---|---|---|---|")
    for tree in trees:
        per_round = ", ".join(f"{v:.3f}" for v in times[tree])
        ratio = statistics.median(
            other / this for other, this in zip(times[tree], times[trees[0]], strict=True)
        )
        print(
            f"| {tree} | {per_round} | {statistics.median(times[tree]):.3f} | {ratio:.3f} |"
            f" {scores[tree]:.10f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
