"""The cost of mean maps: the folder benchmark's end-to-end run with ``mean_maps`` off and on.

The pairs of :mod:`bench_folders` (512x512 RGB PNG by default, cached in ``--data``)
are evaluated into a Zarr store in one process, alternately with ``mean_maps=False``
and ``mean_maps=True``, ``--repeat`` times each; the script prints each run's wall
and process CPU seconds and the best of each setting.

    python benchmarks/bench_mean_maps.py [--pairs 60] [--size 512] [--repeat 2] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
from bench_folders import make_pairs

import pipeline as sp


def run(ref: Path, gen: Path, out: Path, mean_maps: bool) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    ds = sp.evaluate(ref, gen, output=str(out), mean_maps=mean_maps)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert (ds.status.values == "ok").all()
    assert ("mean_ssim_map" in ds) == mean_maps
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / f"ssim-bench-mean-maps-{args.pairs}"
    ref, gen = make_pairs(data, args.pairs, args.size)
    out = Path(tempfile.mkdtemp()) / "results.zarr"
    warm = np.zeros((1, 64, 64, 3), np.uint8)
    sp.evaluate(warm, warm, channel_axis=-1, mean_maps=True)  # compile the kernels
    rows = []
    for _ in range(args.repeat):
        for setting in (False, True):
            load = os.getloadavg()[0]
            rows.append((setting, load, *run(ref, gen, out, setting)))
    print(f"{args.pairs} pairs of {args.size}x{args.size} RGB PNG, {os.cpu_count()} cores")
    print("| mean_maps | load before | wall s | process CPU s |")
    print("|---|---|---|---|")
    for setting, load, wall, cpu in rows:
        print(f"| {setting} | {load:.2f} | {wall:.2f} | {cpu:.2f} |")
    best = {s: min(r[2] for r in rows if r[0] == s) for s in (False, True)}
    cpu = {s: min(r[3] for r in rows if r[0] == s) for s in (False, True)}
    median = {s: float(np.median([r[2] for r in rows if r[0] == s])) for s in (False, True)}
    median_cpu = {s: float(np.median([r[3] for r in rows if r[0] == s])) for s in (False, True)}
    print(
        f"median wall: off {median[False]:.2f} s, on {median[True]:.2f} s "
        f"({100 * (median[True] / median[False] - 1):+.0f} %); median CPU: off "
        f"{median_cpu[False]:.2f} s, on {median_cpu[True]:.2f} s "
        f"({100 * (median_cpu[True] / median_cpu[False] - 1):+.0f} %)"
    )
    print(
        f"best wall: off {best[False]:.2f} s, on {best[True]:.2f} s "
        f"({100 * (best[True] / best[False] - 1):+.0f} %); best CPU: off {cpu[False]:.2f} s, "
        f"on {cpu[True]:.2f} s ({100 * (cpu[True] / cpu[False] - 1):+.0f} %)"
    )
    shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
