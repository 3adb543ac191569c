"""Time and peak memory of ``evaluate`` over many small pairs: 10^4, 10^5 and 10^6 of 32x32.

    python benchmarks/bench_pairs.py                        # 10^4, 10^5, 10^6 (minutes)
    python benchmarks/bench_pairs.py --sizes 10000 100000   # a quicker look
    python benchmarks/bench_pairs.py --sources zarr numpy   # also in-memory stacks
    python benchmarks/bench_pairs.py --output netcdf        # the results in memory, then NetCDF
    python benchmarks/bench_pairs.py --regions 4x4          # 17 regions: 17x the statistics

Streaming promises memory that does not grow with the number of pairs, apart from
the pair ids themselves. Each size is evaluated in its own process, so its peak RSS
(VmHWM) is its own; the uint8 stacks are generated chunk by chunk (a smooth pattern
plus seeded noise; generated = reference + noise) by another process first:

* ``zarr`` (default): stacks stored in Zarr (chunks of 4096 images, zstd) and read by
  the run, the results streamed into a Zarr store -- the memory that should stay flat;
* ``numpy``: the same stacks loaded in memory first: the inputs themselves (2 KiB per
  pair) count in the peak, shown apart as ``inputs MB``.

Prints, per source and size: seconds, pairs per second, peak RSS, peak RSS less the
process' RSS before ``evaluate`` (``run MB``), that per pair, and the 1-minute load
average before the run (the machine may be shared; no timing here gates anything).

Measured (2 shared cores, load 2.4-3.5, Zarr source and output; peak RSS):

    pairs        before the run loop held one batch     after
    10^5         488 MB                                  485 MB
    10^6         917 MB (122 s)                          849 MB (101 s)

At 10^6 the peak is the store's layout (the names of every pair encoded at once,
~+380 MB over the ~450 MB held before it: the interpreter, the graph, and the pair
names, ~200 B per pair); each batch of 131,072 pairs adds ~150 MB and is freed
before the next one.

Batches capped at 64 MiB of packed statistics (``pipeline.tiling.chunks.BATCH_STATISTICS_BYTES``;
before, 131,072 pairs per batch whatever their statistics weighed), same machine and
data, before and after measured one after the other:

    pairs  regions  pairs per batch     peak RSS           seconds (load before the run)
    10^5   4x4      100,000 -> 4,544    3251 -> 475 MB     96.8 (2.2) -> 54.8 (3.7)
    10^6   all      131,072 -> 73,728    912 -> 864 MB     172.6 (2.4) -> 85.7 (2.5)

(the seconds move with the other users of the machine: the load rose to 4.2 during
the 172.6 s run).

With 4x4 regions a pair's statistics weigh 17 x 108 floats (14.7 kB): one batch of
100,000 held ~1.5 GB of them, twice over with its finalized results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
import zarr

SIDE = 32
CHUNK = 4096
SIDES = ("reference", "generated")


def _rss_mb(field: str) -> float:
    """This process's RSS now (``VmRSS``) or at its peak (``VmHWM``), in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(directory: Path, n: int, seed: int = 0) -> None:
    """Both stacks, ``CHUNK`` images at a time (never whole in memory)."""
    rows = np.arange(SIDE)
    pattern = 128 + 60 * np.sin(rows[:, None] / 5.0) * np.cos(rows[None, :] / 7.0)
    arrays = [
        zarr.create_array(
            directory / f"{side}.zarr",
            shape=(n, SIDE, SIDE),
            chunks=(CHUNK, SIDE, SIDE),
            dtype="uint8",
            overwrite=True,
        )
        for side in SIDES
    ]
    for start in range(0, n, CHUNK):
        rng = np.random.default_rng([seed, start])
        count = min(CHUNK, n - start)
        reference = np.clip(pattern + rng.normal(0, 20, (count, SIDE, SIDE)), 0, 255)
        generated = np.clip(reference + rng.normal(0, 15, reference.shape), 0, 255)
        arrays[0][start : start + count] = reference.astype(np.uint8)
        arrays[1][start : start + count] = generated.astype(np.uint8)


def run_one(directory: Path, source: str, output: str, regions: str) -> dict[str, float]:
    """Evaluate the stored pair in this process; what the parent prints."""
    import pipeline as sp

    inputs: list[object] = [str(directory / f"{side}.zarr") for side in SIDES]
    input_mb = 0.0
    if source == "numpy":
        inputs = [zarr.open_array(str(path), mode="r")[:] for path in inputs]
        input_mb = sum(a.nbytes for a in inputs) / 2**20  # type: ignore[attr-defined]
    suffix = {"zarr": ".zarr", "netcdf": ".nc", "csv": ".csv"}[output]
    out = directory / f"results-{source}{suffix}"
    before = _rss_mb("VmRSS")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    ds = sp.evaluate(inputs[0], inputs[1], output=str(out), regions=regions)
    seconds = time.perf_counter() - start
    ok = int((ds["status"] == "ok").sum())  # chunk by chunk: no list of every status
    peak = _rss_mb("VmHWM")
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink()
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "before_mb": before,
        "input_mb": input_mb,
        "ok": ok,
        "load": load,
    }


def _child(*args: str) -> str:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sources", nargs="+", choices=("zarr", "numpy"), default=["zarr"])
    parser.add_argument("--output", choices=("zarr", "netcdf", "csv"), default="zarr")
    parser.add_argument("--regions", default="all", help="the run's regions setting, e.g. 4x4")
    parser.add_argument("--data", type=Path, help="keep the generated stacks here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        return
    if args.child:
        directory, source, output, regions = args.child
        print(json.dumps(run_one(Path(directory), source, output, regions)))
        return

    root = args.data or Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    header = (
        f"{'source':<7}{'pairs':>10}{'seconds':>10}{'pairs/s':>10}{'peak MB':>10}"
        f"{'run MB':>9}{'B/pair':>9}{'inputs MB':>11}{'load':>6}"
    )
    print(
        f"{SIDE}x{SIDE} uint8 pairs, default settings, regions {args.regions}, "
        f"results to {args.output}; {root}"
    )
    print(header)
    try:
        for n in args.sizes:
            directory = root / f"n{n}"
            directory.mkdir(parents=True, exist_ok=True)
            if not (directory / "generated.zarr").exists():
                _child("--generate", str(directory), str(n))
            for source in args.sources:
                child = ("--child", str(directory), source, args.output, args.regions)
                found = json.loads(_child(*child))
                assert found["ok"] == n, found
                run_mb = found["peak_mb"] - found["before_mb"]
                print(
                    f"{source:<7}{n:>10}{found['seconds']:>10.1f}"
                    f"{n / found['seconds']:>10.0f}{found['peak_mb']:>10.0f}{run_mb:>9.0f}"
                    f"{run_mb * 2**20 / n:>9.0f}{found['input_mb']:>11.0f}"
                    f"{found['load']:>6.1f}",
                    flush=True,
                )
    finally:
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
