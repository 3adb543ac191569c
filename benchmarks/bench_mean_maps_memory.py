"""Peak RSS of one ``evaluate`` run with ``mean_maps`` off or on, each in its own process.

    python benchmarks/bench_mean_maps_memory.py make --size 1024     # 8 pairs, Zarr stack
    python benchmarks/bench_mean_maps_memory.py run stack off --size 1024
    python benchmarks/bench_mean_maps_memory.py run stack on --size 1024
    python benchmarks/bench_mean_maps_memory.py run folder on        # the bench_mean_maps pairs

``stack``: 8 pairs of ``size x size`` uint8 grey images in two Zarr arrays (Zarr's default
codec, chunks ``(1, 1024, 1024)``), made under ``--data``; ``folder``: the 64 pairs of
512x512 RGB PNG that ``bench_mean_maps.py --pairs 64`` writes. Each run prints its wall
clock, its peak RSS (``ru_maxrss``) and the RSS after the warm-up (imports, compiled kernels).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np

PAIRS = 8


def make(data: Path, size: int) -> None:
    import zarr

    rng = np.random.default_rng(0)
    base = (np.add.outer(np.arange(size), np.arange(size)) // 37 % 200).astype(np.uint8)
    for side in ("reference", "generated"):
        chunks = (1, min(size, 1024), min(size, 1024))
        a = zarr.create_array(
            data / f"{side}.zarr", shape=(PAIRS, size, size), chunks=chunks, dtype="uint8"
        )
        for i in range(PAIRS):
            noise = rng.integers(0, 40, (size, size), dtype=np.uint8)
            a[i] = base + noise if side == "generated" else base + noise // 2


def run(case: str, on: bool, data: Path) -> None:
    import pipeline as sp

    for shape, axis in (((1, 64, 64, 3), -1), ((1, 64, 64), None)):
        warm = np.zeros(shape, np.uint8)
        sp.evaluate(warm, warm, channel_axis=axis, mean_maps=True)  # compile the kernels
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Path(tempfile.mkdtemp()) / "results.zarr"
    load = os.getloadavg()[0]
    start = time.perf_counter()
    if case == "folder":
        folder = Path(tempfile.gettempdir()) / "ssim-bench-mean-maps-64"
        ref, gen = folder / "reference", folder / "generated"
    else:
        ref, gen = data / "reference.zarr", data / "generated.zarr"
    ds = sp.evaluate(str(ref), str(gen), output=str(out), mean_maps=on)
    wall = time.perf_counter() - start
    assert ("mean_ssim_map" in ds) == on
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{case} mean_maps={on}: wall {wall:.2f} s, peak RSS {peak / 1024:.0f} MB "
        f"(after warm-up {base / 1024:.0f} MB), {ds.sizes['image']} pairs, load {load:.2f}"
    )
    shutil.rmtree(out.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["make", "run"])
    parser.add_argument("case", nargs="?", choices=["stack", "folder"], default="stack")
    parser.add_argument("setting", nargs="?", choices=["off", "on"], default="on")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / f"ssim-bench-mean-maps-stack-{args.size}"
    if args.action == "make":
        data.mkdir(parents=True, exist_ok=True)
        make(data, args.size)
    else:
        run(args.case, args.setting == "on", data)


if __name__ == "__main__":
    main()
