"""Streaming ``evaluate`` of one stored Zarr pair: this checkout against others, alternating.

    python benchmarks/bench_streaming_ab.py --data /tmp/pair --against /tmp/old --rounds 3
    python benchmarks/bench_streaming_ab.py --data /tmp/pair --size 4000   # make a small pair

Each run is a fresh process that imports one checkout's ``pipeline`` (``--against``
may be given several times), warms it up on a tiny pair, then times
``pipeline.evaluate("reference.zarr", "generated.zarr")`` with default settings
(threaded scheduler) once, and reports megapixels per second, process CPU seconds and
peak RSS. The checkouts take turns round by round, so that the cores' drift on a
shared machine falls on each alike; the table ends with the median of each and the
ratio of this checkout's median to each other's. A missing pair is generated first
(:func:`bench_memory.generate`: zstd, chunk by chunk, never whole in memory).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import _checkout
from bench_memory import generate

_RUN = """
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import pipeline as sp
assert sp.__file__.startswith(sys.argv[1]), sp.__file__


def peak_rss_mb():
    # VmHWM: this process's own peak. Linux's ru_maxrss also holds the peak of the
    # process that started it (kept across exec): a parent that generated the pair
    # would put its own peak into every child's figure.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


x = np.zeros((64, 64), np.uint8)
sp.evaluate(x, x)
data = sys.argv[2]
pixels = float(sys.argv[3])
cpu = time.process_time()
start = time.perf_counter()
sp.evaluate(os.path.join(data, "reference.zarr"), os.path.join(data, "generated.zarr"))
wall = time.perf_counter() - start
print(json.dumps({
    "mpix_s": pixels / 1e6 / wall, "wall": wall, "cpu": time.process_time() - cpu,
    "rss_mb": peak_rss_mb(),
}))
"""


def run_once(tree: Path, data: Path, pixels: int) -> dict[str, float]:
    """One timed streaming ``evaluate`` of ``data`` by ``tree``'s ``pipeline``, in a new process."""
    return _checkout.child_json(_RUN, str(tree), str(data), str(pixels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of the stored pair")
    parser.add_argument("--size", type=int, default=20_000, help="side of a pair to generate")
    parser.add_argument("--chunk", type=int, default=1000, help="Zarr chunk side of it")
    parser.add_argument("--against", type=Path, action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "reference.zarr").exists():
        args.data.mkdir(parents=True, exist_ok=True)
        generate(args.data, args.size, args.chunk)
    import zarr

    shape = zarr.open_array(args.data / "reference.zarr", mode="r").shape
    pixels = int(shape[-2]) * int(shape[-1]) * (int(shape[0]) if len(shape) == 3 else 1)
    trees = [_checkout.REPO, *(path.resolve() for path in args.against)]
    runs: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    print(f"# {shape} pair at {args.data}; load {os.getloadavg()[0]:.2f} at the start")
    print("| round | checkout | Mpix/s | wall s | CPU s | peak RSS MB | load |")
    print("|---|---|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for tree in trees:
            load = os.getloadavg()[0]
            result = run_once(tree, args.data, pixels)
            runs[tree].append(result)
            print(
                f"| {round_} | {tree} | {result['mpix_s']:.1f} | {result['wall']:.2f} | "
                f"{result['cpu']:.2f} | {result['rss_mb']:.0f} | {load:.2f} |",
                flush=True,
            )
    ours = statistics.median(r["mpix_s"] for r in runs[trees[0]])
    print("\n| checkout | median Mpix/s | median peak RSS MB | this / it |")
    print("|---|---|---|---|")
    for tree in trees:
        median = statistics.median(r["mpix_s"] for r in runs[tree])
        rss = statistics.median(r["rss_mb"] for r in runs[tree])
        print(f"| {tree} | {median:.1f} | {rss:.0f} | {ours / median:.2f}x |")


if __name__ == "__main__":
    main()
