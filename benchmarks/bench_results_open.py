"""Peak memory of opening a large results store, and of summarizing and reporting it.

Builds a store of ``--pairs`` pairs (default 1,000,000; region ``all``, 100 bins) with
the real writer (:class:`pipeline.results.stores.ZarrSink`, one commit batch at a
time), then runs each step in a fresh subprocess of every tree given with ``--tree``
(default: this checkout only; another one, e.g. an older commit extracted with
``git archive <commit> pipeline | tar -x -C /tmp/old``, as ``--tree old=/tmp/old``)
and prints the peak resident memory (``VmHWM``), the memory after the imports and
the time of each step::

    python benchmarks/bench_results_open.py --tree old=/tmp/old --tree new=.

Steps: ``open`` (:func:`pipeline.open_results`, Dask-backed), ``open-report`` (the
report's opener), ``summary`` (``summarize`` of the opened store), ``report-inputs``
(the report's one pass over the pairs) and ``report`` (the whole report, figures and
page; the pairs name no files, so no map is recomputed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import _checkout

ROOT = Path(__file__).resolve().parents[1]

# Each step's code, run in a fresh interpreter with the tree on PYTHONPATH. The
# imports come first (measured as the baseline), then the step. Older trees name
# the report's opener and scan differently: both are tried.
_IMPORTS = """
try:
    from pipeline.results.stores import as_results as report_open
    from pipeline.results.summary import scan_results as report_scan
except ImportError:  # the tree before the report's opener moved into results
    from pipeline.report.inputs import _open_results as report_open
    from pipeline.report.inputs import _scan as report_scan
from pipeline.report.build import write_report
from pipeline.results.stores import open_results
from pipeline.results.summary import summarize
"""
_STEPS = {
    "open": "ds = open_results(STORE)",
    "open-report": "ds = report_open(STORE)",
    "summary": "summary = summarize(open_results(STORE))",
    "report-inputs": "data = report_scan(report_open(STORE), 6)",
    "report": "write_report(STORE, OUT, worst=6)",
}
_CHILD = """
import json, resource, sys, time, psutil
STORE, OUT = sys.argv[1], sys.argv[2]
{imports}
baseline = psutil.Process().memory_info().rss
start = time.perf_counter()
{step}
seconds = time.perf_counter() - start
# VmHWM, this process's own peak: Linux's ru_maxrss also holds the peak of the
# process that started it (kept across exec), here the one that built the store.
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) * 1024
print(json.dumps({{"baseline": baseline, "peak": peak, "seconds": seconds}}))
"""


def build_store(path: Path, pairs: int, batch_images: int) -> None:
    """A finished store of ``pairs`` pairs written batch by batch, as the engine writes it."""
    import numpy as np

    from pipeline.results.schema import (
        COUNT,
        FLOAT_STATISTICS,
        SSIM_HIST,
        template_dataset,
    )
    from pipeline.results.stores import ZarrSink

    bins = 100
    names = np.asarray([f"set{k // 1000:04d}/img{k:07d}.png" for k in range(pairs)], dtype=object)
    attrs = {
        "profile": "wang2004",
        "ssim_window": "gaussian",
        "ssim_win_size": 11,
        "ssim_sigma": 1.5,
        "ssim_k1": 0.01,
        "ssim_k2": 0.03,
        "ssim_covariance": "population",
        "data_range": 255.0,
        "data_range_source": "dtype",
        "color_mode": "grey",
        "package_version": "bench",
        "config_fingerprint": "bench",
        "source_fingerprint": "bench",
        "created": "bench",
    }
    template = template_dataset(
        image=names,
        reference=["/data/reference/" + n for n in names],
        generated=["/data/generated/" + n for n in names],
        regions=["all"],
        bins=bins,
        batch_images=batch_images,
        attrs=attrs,
    )
    rng = np.random.default_rng(0)
    sink = ZarrSink(path, template, batch_images=batch_images)
    try:
        for start in range(0, pairs, batch_images):
            n = min(batch_images, pairs - start)
            score = rng.uniform(0.2, 1.0, (n, 1))
            statistics = {name: score for name in FLOAT_STATISTICS}
            statistics[COUNT] = np.full((n, 1), 484, dtype=np.int64)
            hist = np.zeros((n, 1, bins), dtype=np.int64)
            centre = ((score[:, 0] + 1) / 2 * bins).astype(int)
            for offset in range(-5, 5):
                where = np.clip(centre + offset, 0, bins - 1)
                hist[np.arange(n), 0, where] += rng.integers(0, 90, n)
            statistics[SSIM_HIST] = hist
            status = np.full(n, "ok", dtype=object)
            status[rng.uniform(size=n) < 0.005] = "generated x.png: corrupt"
            sink.write(start, start + n, statistics, status)
    finally:
        sink.close()


def measure(tree: Path, step: str, store: Path) -> dict[str, float]:
    code = _CHILD.format(imports=_IMPORTS, step=_STEPS[step])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as out:
        # Run in ``out``, not this checkout: ``python -c`` puts the working folder first.
        return _checkout.child_json(code, str(store), out, env=env, cwd=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--batch-images", type=int, default=10_000)
    parser.add_argument("--store", type=Path, default=None, help="kept and reused if given")
    parser.add_argument(
        "--tree", action="append", default=[], help="LABEL=PATH of a tree holding pipeline/"
    )
    parser.add_argument("--steps", default=",".join(_STEPS))
    args = parser.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.tree] or [("this", str(ROOT))]
    with tempfile.TemporaryDirectory() as scratch:
        store = args.store or Path(scratch) / "results.zarr"
        if not store.exists():
            start = time.perf_counter()
            build_store(store, args.pairs, args.batch_images)
            print(f"built {args.pairs:,} pairs in {time.perf_counter() - start:.0f} s: {store}")
        mib = 2**20
        print(f"{'tree':8}{'step':16}{'after imports':>15}{'peak RSS':>11}{'step':>9}")
        for label, tree in trees:
            for step in args.steps.split(","):
                r = measure(Path(tree), step, store)
                print(
                    f"{label:8}{step:16}{r['baseline'] / mib:>11.0f} MiB"
                    f"{r['peak'] / mib:>7.0f} MiB{r['seconds']:>8.1f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
