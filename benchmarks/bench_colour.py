"""Colour pairs in memory: ``evaluate`` against OpenCV's colour SSIM, and statistics against score.

    python benchmarks/bench_colour.py [--pairs 64] [--size 512] [--repeat 5] [--data DIR]
                                      [--kernels-only] [--against COLOUR_PY] [--profile NAME]
                                      [--per-task]

64 pairs of 512x512 RGB uint8 (the photographs and damage of
``bench_folders.make_pairs``, PNG, decoded once into two ``(64, 512, 512, 3)``
arrays before any timing), default profile (wang2004: Gaussian 11x11, sigma 1.5).
Two tables, each timed interleaved round by round in this one process (best of
``--repeat``), so that a neighbour's load on a shared machine moves both sides:

* **end to end, wall, all threads**: ``pipeline.evaluate`` of the two in-memory
  stacks (as configured by default, i.e. with the mean maps that ``auto`` turns on
  at this size, and with ``mean_maps=False``), ``pipeline.ssim(channel_axis=-1)``
  pair by pair, and the usual hand-written OpenCV float32 colour SSIM (GaussianBlur
  of the 3-channel moments, the valid region's mean over pixels and channels; on
  OpenCV's own threads) pair by pair. Printed as pairs per second and as
  "ours faster by" (OpenCV time / ours).
* **kernel, one thread, CPU time per channel-pixel** (``time.thread_time``):
  ``fused_score`` of each channel plane (the score, ``pipeline.ssim``'s kernel)
  against ``fused_colour_packed_stats`` (what ``evaluate`` computes per pair: the
  channel-averaged SSIM, luminance, contrast and structure sums, Chan M2, extremes,
  100-bin histogram), without and with the mean-map sums. The ratio is "what
  evaluate computes" over "the score". ``--kernels-only`` skips the first table;
  ``--profile`` picks the kernel table's window and constants (``skimage``: the
  uniform 7x7 window, sample covariance).
  ``--against`` names the ``colour.py`` of another checkout (say ``git archive`` of
  an older commit, unpacked): its ``fused_colour_packed_stats`` joins the table, timed in
  the same rounds, after a check that it gives the same packed statistics and map sums.
* with ``--per-task``, **the per-task kernels, wall, all threads**: what ``evaluate`` runs
  in each Dask task (the serial kernel, ``threads=1``, one pair per pool thread, as many
  threads as cores) against the in-memory parallel call (``threads`` = the cores, the
  pairs one after another), for the colour statistics and for the first channel's grey
  statistics, after a check that both give the same packed statistics (to 1e-12).

Nothing here gates a test; figures on a shared machine move with its load (printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
from _malloc import add_flag, apply_flag
from bench_folders import make_pairs
from bench_kernels import opencv_ssim
from PIL import Image

import pipeline as sp
from pipeline.kernels.cpu.colour import fused_colour_packed_stats
from pipeline.kernels.cpu.fused import fused_packed_stats, fused_score
from pipeline.metrics.profiles import resolve_params

DATA_RANGE = 255.0
BINS = 100


def load_stacks(pairs: int, size: int, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark pairs as two ``(pairs, size, size, 3)`` uint8 arrays."""
    ref, gen = make_pairs(data, pairs, size, fmt="png")
    names = sorted(p.relative_to(ref) for p in ref.rglob("*.png"))[:pairs]

    def read(folder: Path) -> np.ndarray:
        return np.stack([np.asarray(Image.open(folder / name).convert("RGB")) for name in names])

    return read(ref), read(gen)


def opencv_colour(x: np.ndarray, y: np.ndarray) -> float:
    """Colour SSIM hand-written with OpenCV: its GaussianBlur takes the three channels at once."""
    return opencv_ssim(x, y)


def interleaved(
    calls: dict[str, Callable[[], object]], repeat: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Best time of each call over ``repeat`` rounds, the order reversed every other round."""
    best = dict.fromkeys(calls, float("inf"))
    names = list(calls)
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = clock()
            calls[name]()
            best[name] = min(best[name], clock() - start)
    return best


def load_kernel(path: Path) -> Callable[..., np.ndarray]:
    """``fused_colour_packed_stats`` of another checkout's ``colour.py``, as its own module.

    It imports this checkout's other kernel modules. A copy in a fresh folder is
    loaded (compiled anew, a few seconds): numba's cache beside the file may hold
    entries of the same functions loaded under another module name, which fail to load.
    """
    name = "bench_colour_against"
    copy = Path(tempfile.mkdtemp(prefix="bench-colour-")) / "colour_against.py"
    shutil.copyfile(path, copy)
    spec = importlib.util.spec_from_file_location(name, copy)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"--against: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    kernel: Callable[..., np.ndarray] = module.fused_colour_packed_stats
    return kernel


def end_to_end(x: np.ndarray, y: np.ndarray, repeat: int) -> None:
    """The first table: ``evaluate``, ``pipeline.ssim`` and OpenCV, wall time, all threads."""
    n = x.shape[0]

    def opencv_all() -> None:
        for i in range(n):
            opencv_colour(x[i], y[i])

    def ours_score_all() -> None:
        for i in range(n):
            sp.ssim(x[i], y[i], channel_axis=-1)

    # One warm-up of each (numba compilation from the cache, Dask start-up).
    ends = {
        "evaluate (default: mean maps auto)": lambda: sp.evaluate(x, y, channel_axis=-1),
        "evaluate, mean_maps=False": lambda: sp.evaluate(x, y, channel_axis=-1, mean_maps=False),
        "pipeline.ssim(channel_axis=-1), pair by pair": ours_score_all,
        "OpenCV float32 colour SSIM, pair by pair": opencv_all,
    }
    for call in ends.values():
        call()
    scores = (
        float(sp.evaluate(x, y, channel_axis=-1, mean_maps=False).ssim.sel(region="all").mean()),
        float(np.mean([opencv_colour(x[i], y[i]) for i in range(n)])),
    )
    print(f"mean SSIM over the pairs: evaluate {scores[0]:.6f}, OpenCV {scores[1]:.6f}")
    walls = interleaved(ends, repeat, time.perf_counter)
    peer = walls["OpenCV float32 colour SSIM, pair by pair"]
    print(f"\nend to end, wall, best of {repeat} (load {os.getloadavg()[0]:.2f})")
    print(f"| {'call':46s} | seconds | pairs/s | OpenCV time / this |")
    print(f"|{'-' * 48}|---------|---------|--------------------|")
    for name, seconds in walls.items():
        print(f"| {name:46s} | {seconds:7.3f} | {n / seconds:7.1f} | {peer / seconds:17.2f}x |")


def per_task(x: np.ndarray, y: np.ndarray, repeat: int, kernel: dict[str, Any]) -> None:
    """The third table: ``evaluate``'s serial per-task kernels against the parallel call."""
    cores = os.cpu_count() or 1
    grey = (np.ascontiguousarray(x[..., 0]), np.ascontiguousarray(y[..., 0]))
    cases = {
        "colour packed statistics": (fused_colour_packed_stats, x, y),
        "grey packed statistics (first channel)": (fused_packed_stats, *grey),
    }
    print(f"\nper-task kernels, wall, best of {repeat}: {x.shape[0]} pairs, {cores} threads")
    head = "| serial, a pair per thread | parallel, pair by pair | serial / parallel |"
    print(f"| {'kernel':40s} {head}")
    print(f"|{'-' * 42}|---------------------------|------------------------|-------------------|")
    with ThreadPoolExecutor(cores) as pool:
        for name, (function, xs, ys) in cases.items():

            def serial(function=function, xs=xs, ys=ys) -> list[np.ndarray]:
                def one(i: int) -> np.ndarray:
                    return function(xs[i], ys[i], threads=1, **kernel)

                return list(pool.map(one, range(xs.shape[0])))

            def parallel(function=function, xs=xs, ys=ys) -> list[np.ndarray]:
                return [function(xs[i], ys[i], threads=cores, **kernel) for i in range(xs.shape[0])]

            same = all(
                np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
                for a, b in zip(serial(), parallel(), strict=True)
            )
            if not same:
                raise AssertionError(f"{name}: the serial and parallel kernels disagree")
            walls = interleaved({"serial": serial, "parallel": parallel}, repeat, time.perf_counter)
            print(
                f"| {name:40s} | {walls['serial']:23.3f} s | {walls['parallel']:20.3f} s |"
                f" {walls['serial'] / walls['parallel']:16.2f}x |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "ssim-bench-folders" / "png"
    )
    parser.add_argument("--kernels-only", action="store_true", help="skip the end-to-end table")
    parser.add_argument(
        "--against", type=Path, help="another checkout's pipeline/kernels/cpu/colour.py"
    )
    parser.add_argument(
        "--profile", default="wang2004", help="the kernel table's profile (default wang2004)"
    )
    parser.add_argument(
        "--per-task",
        action="store_true",
        help="also time evaluate's serial per-task kernels against the parallel call",
    )
    add_flag(parser)
    args = parser.parse_args(argv)
    print(apply_flag(args.keep_memory))

    x, y = load_stacks(args.pairs, args.size, args.data)
    n = x.shape[0]
    shape = "x".join(map(str, x.shape[1:]))
    print(f"{n} pairs of {shape} uint8, load {os.getloadavg()[0]:.2f}")

    if not args.kernels_only:
        end_to_end(x, y, args.repeat)

    constants = resolve_params(args.profile)[1].kernel_args(DATA_RANGE, 2)
    g = np.asarray(constants["weights"])
    depth = g.shape[0] - 1
    planes = [
        (np.ascontiguousarray(x[0, :, :, c]), np.ascontiguousarray(y[0, :, :, c]))
        for c in range(x.shape[3])
    ]
    valid = (x.shape[1] - depth) * (x.shape[2] - depth) * x.shape[3]
    map_sums = np.zeros((4, x.shape[1] - depth, x.shape[2] - depth))
    kernel = {
        "uniform": constants["window"] == "uniform",
        "c1": constants["c1"],
        "c2": constants["c2"],
        "cov_norm": constants["cov_norm"],
        "threads": 1,
    }

    def score() -> None:
        for a, b in planes:
            fused_score(a, b, weights=g, **kernel)

    kernels = {
        "score: fused_score per channel": score,
        "evaluate's kernel: colour packed statistics": lambda: fused_colour_packed_stats(
            x[0], y[0], weights=g, bins=BINS, **kernel
        ),
        "the same with the mean-map sums": lambda: fused_colour_packed_stats(
            x[0], y[0], weights=g, bins=BINS, map_sums=map_sums, **kernel
        ),
    }
    if args.against is not None:
        other = load_kernel(args.against)
        ours = fused_colour_packed_stats(x[0], y[0], weights=g, bins=BINS, **kernel)
        theirs = other(x[0], y[0], weights=g, bins=BINS, **kernel)
        sums = [np.zeros_like(map_sums) for _ in range(2)]
        fused_colour_packed_stats(x[0], y[0], weights=g, bins=BINS, map_sums=sums[0], **kernel)
        other(x[0], y[0], weights=g, bins=BINS, map_sums=sums[1], **kernel)
        same = np.array_equal(ours, theirs) and np.array_equal(*sums)
        print(f"--against {args.against}: same packed statistics and map sums: {same}")
        kernels["--against: colour packed statistics"] = lambda: other(
            x[0], y[0], weights=g, bins=BINS, **kernel
        )
        kernels["--against: with the mean-map sums"] = lambda: other(
            x[0], y[0], weights=g, bins=BINS, map_sums=map_sums, **kernel
        )
    for call in kernels.values():
        call()
    cpu = interleaved(kernels, 3 * args.repeat, time.thread_time)
    base = cpu["score: fused_score per channel"]
    load = os.getloadavg()[0]
    print(
        f"\nkernel ({args.profile}), one thread, CPU time, best of {3 * args.repeat} "
        f"(load {load:.2f})"
    )
    print(f"| {'kernel':46s} | ns per channel-pixel | / score |")
    print(f"|{'-' * 48}|----------------------|---------|")
    for name, seconds in cpu.items():
        print(f"| {name:46s} | {1e9 * seconds / valid:20.2f} | {seconds / base:6.2f}x |")
    if args.per_task:
        shared = {k: v for k, v in kernel.items() if k != "threads"}
        per_task(x, y, args.repeat, {"weights": g, "bins": BINS, **shared})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
