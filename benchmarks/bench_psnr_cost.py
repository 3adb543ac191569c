"""What MSE and PSNR cost: the same runs with and without the squared-error sums, one process.

MSE and PSNR come from the same pass over the pixels as SSIM: each block adds the sums
of its own pixels' squared differences to its packed statistics
(:func:`pipeline.reductions.squared_error.add_squared_error`, called by the block
function of :func:`pipeline.engine.graphs.statistics_graphs`). To measure what that
costs, this script runs ``pipeline.evaluate`` on the same inputs twice over, once as
the package does and once with that call replaced by one that returns the block's
statistics unchanged (a monkeypatch of ``pipeline.engine.graphs.add_squared_error``,
here only: no setting turns MSE off), and prints the ratio of the wall times.

Two cases, each warmed up first (imports, Numba compilation), then ``--repeat`` rounds
in which both variants run, their order alternating from round to round so that a
drift of the machine's load hits both alike:

* **folder**: ``--pairs`` 512x512 RGB PNG pairs (photograph crops and degraded copies,
  ``bench_folders.make_pairs``), region ``all``, embedded threaded scheduler;
* **streaming**: one ``--side`` x ``--side`` grey pair in two Zarr arrays chunked
  1024x1024 (a photograph upscaled, and a noisy copy), region ``all``.

Each variant's figures are the medians of its rounds, wall and process CPU seconds;
``ratio`` is with / without (1.05 = the squared-error sums add 5 %). On a machine
shared with other jobs the wall times of single rounds vary by tens of percent, so
one more run of the package as it is times each squared-error call with its own
thread's CPU clock: ``SE share`` is the part of the process's CPU time spent in
those sums, a figure that other processes hardly move. The SSIM values of both variants are checked
equal and the variant without the sums checked to have no PSNR, so the switch is known
to have taken. The benchmark reports; it never gates anything on a wall-clock number.

    python benchmarks/bench_psnr_cost.py [--pairs 64] [--side 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
import zarr
from bench_folders import make_pairs

import pipeline as sp
import pipeline.engine.graphs as graphs
from pipeline.testing import degrade, photograph


@contextlib.contextmanager
def without_squared_error() -> Iterator[None]:
    """Blocks keep their SSIM statistics only: MSE and PSNR come out NaN (measurement only)."""
    real = graphs.add_squared_error

    def unchanged(packed: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        return packed

    graphs.add_squared_error = unchanged  # type: ignore[assignment]
    try:
        yield
    finally:
        graphs.add_squared_error = real


def make_zarr_pair(root: Path, side: int) -> tuple[str, str]:
    """A grey photograph upscaled to ``side`` x ``side`` and a noisy copy, chunked 1024x1024."""
    from skimage.transform import resize

    x = resize(photograph("camera"), (side, side), order=1, preserve_range=True)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    y = degrade(x, "noise", rng=np.random.default_rng(0))
    paths = []
    for name, values in (("reference", x), ("generated", y)):
        path = root / f"{name}.zarr"
        target = zarr.create_array(
            str(path), shape=values.shape, chunks=(1024, 1024), dtype=values.dtype
        )
        target[:] = values
        paths.append(str(path))
    return paths[0], paths[1]


def rounds(
    run: Callable[[], Any], repeat: int
) -> tuple[dict[bool, list[tuple[float, float]]], Any]:
    """``(wall, process CPU)`` seconds of ``run`` with (True) and without (False) the sums.

    Interleaved, the order alternating per round; also the last results of each variant.
    """
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    found: dict[bool, Any] = {}
    for k in range(repeat):
        order = (True, False) if k % 2 == 0 else (False, True)
        for keep in order:
            with contextlib.nullcontext() if keep else without_squared_error():
                start, cpu = time.perf_counter(), time.process_time()
                found[keep] = run()
                times[keep].append((time.perf_counter() - start, time.process_time() - cpu))
    return times, found


def squared_error_share(run: Callable[[], Any]) -> float:
    """The share of the process's CPU time spent in the squared-error sums, in one run.

    Each call is timed with its own thread's CPU clock, so other processes on the
    machine do not enter this figure (they do enter the wall times).
    """
    real = graphs.add_squared_error
    spent: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> np.ndarray:
        start = time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.thread_time() - start)

    graphs.add_squared_error = timed  # type: ignore[assignment]
    try:
        cpu = time.process_time()
        run()
        cpu = time.process_time() - cpu
    finally:
        graphs.add_squared_error = real
    return sum(spent) / cpu


def check(with_sums: Any, without_sums: Any) -> None:
    """Same SSIM; PSNR only where the sums ran (the switch took)."""
    np.testing.assert_array_equal(with_sums.ssim.values, without_sums.ssim.values)
    assert np.isfinite(with_sums.psnr.values).all()
    assert np.isnan(without_sums.psnr.values).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "bench-psnr-cost"
    )
    args = parser.parse_args()
    reference, generated = make_pairs(args.data / "pairs", args.pairs, args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_zarr_pair(Path(tmp), args.side)
        cases: list[tuple[str, Callable[[], Any], float]] = [
            (
                f"folder: {args.pairs} x {args.size}x{args.size} RGB PNG",
                lambda: sp.evaluate(reference, generated).load(),
                args.pairs * args.size**2 / 1e6,
            ),
            (
                f"streaming: Zarr {args.side}x{args.side} grey, 1024^2 chunks",
                lambda: sp.evaluate(*stream).load(),
                args.side**2 / 1e6,
            ),
        ]
        for name, run, megapixels in cases:
            run()  # warm-up: imports and compiled kernels
            with without_squared_error():
                run()
            times, found = rounds(run, args.repeat)
            check(found[True], found[False])
            rows.append((name, megapixels, times, squared_error_share(run)))
    print(
        f"{'case':44s} {'wall with':>9s} {'without':>8s} {'ratio':>6s} "
        f"{'CPU with':>9s} {'without':>8s} {'ratio':>6s} {'SE share':>8s}"
    )
    for name, megapixels, times, share in rows:
        wall = [statistics.median(t[0] for t in times[keep]) for keep in (True, False)]
        cpu = [statistics.median(t[1] for t in times[keep]) for keep in (True, False)]
        print(
            f"{name:44s} {wall[0]:9.2f} {wall[1]:8.2f} {wall[0] / wall[1]:6.3f} "
            f"{cpu[0]:9.2f} {cpu[1]:8.2f} {cpu[0] / cpu[1]:6.3f} {share:8.1%}"
        )
        each = ", ".join(
            f"{a[0]:.2f}/{b[0]:.2f}" for a, b in zip(times[True], times[False], strict=True)
        )
        print(f"    wall per round (with/without): {each}; {megapixels / wall[0]:.1f} Mpix/s with")


if __name__ == "__main__":
    main()
