"""Scaling: the same evaluation on 1 and 2 Dask worker processes (LocalCluster).

Each configuration gets its own cluster; a warm-up run loads the compiled kernels in
the workers, then the best of ``--repeat`` timed runs is reported (cluster start-up is
not counted: it is paid once per job, not per image). The embedded threaded scheduler
is measured in the same run for reference. Writes nothing but a temporary Zarr pair.

    python benchmarks/bench_scaling.py [--images 32] [--side 512] [--workers 1 2]

Prints a Markdown table: throughput in Mpix/s and the speed-up against 1 worker.
Never gates CI on a wall-clock number.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

import pipeline as sp
from pipeline.engine.schedulers import ClusterSettings, open_scheduler


def make_pair(root: Path, images: int, side: int) -> tuple[str, str]:
    """A seeded uint8 Zarr pair (one image per chunk), as a real stack would be stored."""
    rng = np.random.default_rng(20040413)
    x = rng.integers(0, 256, (images, side, side), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    paths = []
    for name, values in (("reference", x), ("generated", y)):
        path = root / f"{name}.zarr"
        target = zarr.create_array(
            str(path), shape=values.shape, chunks=(1, side, side), dtype=values.dtype
        )
        target[:] = values
        paths.append(str(path))
    return paths[0], paths[1]


def best_time(pair: tuple[str, str], repeat: int, **settings: object) -> float:
    sp.evaluate(*pair, **settings)  # warm-up: imports and compiled kernels in every worker
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sp.evaluate(*pair, **settings)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-images", type=int, default=8)
    args = parser.parse_args()

    megapixels = args.images * args.side**2 / 1e6
    run = {"regions": "2x2", "batch_images": args.batch_images}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pair = make_pair(Path(tmp), args.images, args.side)
        for workers in args.workers:
            settings = ClusterSettings(
                scheduler="local", workers=workers, threads_per_worker=1, dashboard_address=None
            )
            # The session's Client is Dask's default; "default" computes on it.
            with open_scheduler(settings):
                seconds = best_time(pair, args.repeat, scheduler="default", **run)
            rows.append(
                (f"LocalCluster, {workers} worker process(es) x 1 thread", workers, seconds)
            )
        seconds = best_time(pair, args.repeat, scheduler="threads", **run)
        rows.append((f"embedded threads ({os.cpu_count()} threads), for reference", None, seconds))

    base = next(seconds for _, workers, seconds in rows if workers == min(args.workers))
    print(
        f"{args.images} pairs of {args.side}x{args.side} uint8 ({megapixels:.1f} Mpix per side), "
        f"regions 2x2, batches of {args.batch_images}; {os.cpu_count()} cores, "
        f"{platform.python_version()}, best of {args.repeat}\n"
    )
    print("| scheduler | seconds | Mpix/s | speed-up vs 1 worker |")
    print("|---|---|---|---|")
    for label, _, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {megapixels / seconds:.1f} | {base / seconds:.2f} |")


if __name__ == "__main__":
    main()
