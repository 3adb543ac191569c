"""CPU SSIM throughput and memory: this project against public peers, one table per run.

Every peer is measured in the same process and run as this project, on the
same image pair, and reported as a ratio (peer time / our time). A peer that
is not installed is printed as ``skipped (not installed)``. The calls of one case are
interleaved round by round (the cores' speed drifts within seconds on a shared machine),
best of ``--repeat`` for fast calls and of 3 for slow ones. Memory is the peak
RSS of one call (``VmHWM`` after resetting it), each implementation in a fresh
subprocess, minus the RSS after its imports and the loaded input pair.

    python benchmarks/bench_kernels.py                 # the full table
    python benchmarks/bench_kernels.py --sizes 1024 --scaling 512,1024 --no-memory   # quick

Peers (the ``bench`` extra): scikit-image ``structural_similarity``, a
hand-written OpenCV float32 GaussianBlur SSIM (below, the common formulation),
pytorch-msssim ``ssim`` on the CPU with 2 torch threads; for MS-SSIM (five scales,
``pipeline.ms_ssim``), pytorch-msssim ``ms_ssim`` the same way (on these sides, divisible
by 16, its pyramid is ``msssim.m``'s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
from _malloc import add_flag, apply_flag

K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0


@dataclass
class Row:
    case: str
    implementation: str
    seconds: float | None
    score: float | None = None
    note: str = ""


def make_pair(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A photograph tiled to ``side`` x ``side`` and a noisy, shifted copy (uint8)."""
    from skimage import data

    camera = data.camera()
    reps = -(-side // camera.shape[0])
    x = np.tile(camera, (reps, reps))[:side, :side].copy()
    rng = np.random.default_rng(2004)
    noise = rng.normal(0, 12, x.shape)
    y = np.clip(np.roll(x, 1, axis=1) + noise, 0, 255).astype(np.uint8)
    return x, y


def best_time(
    function: Callable[[np.ndarray, np.ndarray], float], x: np.ndarray, y: np.ndarray, repeat: int
) -> tuple[float, float]:
    """Best wall-clock time of ``repeat`` calls ``function(x, y)``, and the last score."""
    best = float("inf")
    score = float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        score = function(x, y)
        best = min(best, time.perf_counter() - start)
    return best, score


# ---------------------------------------------------------------------------
# Implementations


def ours(profile: str) -> Callable[[np.ndarray, np.ndarray], float]:
    import pipeline

    def run(x: np.ndarray, y: np.ndarray) -> float:
        return float(pipeline.ssim(x, y, profile=profile))

    return run


def skimage_wang2004(x: np.ndarray, y: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            x,
            y,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=DATA_RANGE,
        )
    )


def skimage_defaults(x: np.ndarray, y: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(x, y, data_range=DATA_RANGE))


def opencv_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM as it is commonly hand-written with OpenCV: float32 GaussianBlur moments."""
    import cv2

    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    x32 = x.astype(np.float32)
    y32 = y.astype(np.float32)

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5)

    mu_x = blur(x32)
    mu_y = blur(y32)
    mu_x_sq = mu_x * mu_x
    mu_y_sq = mu_y * mu_y
    mu_xy = mu_x * mu_y
    sigma_x_sq = blur(x32 * x32) - mu_x_sq
    sigma_y_sq = blur(y32 * y32) - mu_y_sq
    sigma_xy = blur(x32 * y32) - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * sigma_xy + c2)) / (
        (mu_x_sq + mu_y_sq + c1) * (sigma_x_sq + sigma_y_sq + c2)
    )
    # The valid region, as in every other implementation here.
    return float(ssim_map[5:-5, 5:-5].mean(dtype=np.float64))


def _pytorch_msssim(name: str, x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-msssim's ``ssim`` or ``ms_ssim`` of a grey pair on the CPU, 2 torch threads."""
    import pytorch_msssim
    import torch

    torch.set_num_threads(2)
    x_t = torch.from_numpy(x).float()[None, None]
    y_t = torch.from_numpy(y).float()[None, None]
    with torch.no_grad():
        score = getattr(pytorch_msssim, name)(x_t, y_t, data_range=DATA_RANGE, size_average=True)
    return float(score)


def pytorch_msssim_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return _pytorch_msssim("ssim", x, y)


def ours_msssim(x: np.ndarray, y: np.ndarray) -> float:
    import pipeline

    return float(pipeline.ms_ssim(x, y))


def pytorch_msssim_ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return _pytorch_msssim("ms_ssim", x, y)


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------
# Memory: one call in a fresh interpreter


_MEMORY_SCRIPT = """
import json, resource, sys
sys.path.insert(0, {bench_dir!r})
import numpy as np
import bench_kernels as bench
name, pair_file = sys.argv[1], sys.argv[2]
function = {{"ours": bench.ours("wang2004"), "skimage": bench.skimage_wang2004,
             "opencv": bench.opencv_ssim, "pytorch-msssim": bench.pytorch_msssim_ssim}}[name]
small_x, small_y = bench.make_pair(64)
function(small_x, small_y)  # imports and compilation before the baseline
pair = np.load(pair_file)  # the inputs, with no temporaries that would raise the high-water mark
x, y = pair[0], pair[1]
def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
try:
    # Reset the high-water mark to the current RSS (Linux >= 4.0), so that the
    # peak of imports and numba compilation does not hide the call's own peak.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    baseline = status_kib("VmRSS")
    function(x, y)
    peak = status_kib("VmHWM")
except OSError:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    function(x, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"delta_mb": (peak - baseline) / 1024}}))
"""


def peak_rss_mb(name: str, pair_file: str) -> float:
    """Peak RSS of one call above the RSS after imports and inputs (VmHWM - VmRSS, MiB)."""
    script = _MEMORY_SCRIPT.format(bench_dir=os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", script, name, pair_file],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["delta_mb"])


# ---------------------------------------------------------------------------
# The table

# (name, module that must be importable or None, function, calls to time)
Entry = tuple[str, str | None, Callable[[np.ndarray, np.ndarray], float], int]


def interleaved_rows(
    case: str, entries: list[Entry], x: np.ndarray, y: np.ndarray, warm: np.ndarray
) -> list[Row]:
    """Best time of each implementation, the calls interleaved round by round.

    On a shared machine the speed of the cores drifts within seconds; timing one
    implementation's calls back to back and then the next's would let a slow spell fall
    on one of them only. Here round ``r`` calls every implementation once (those with
    fewer planned calls drop out), so each one's best call comes from the same spells.
    """
    timings: dict[str, list[float]] = {}
    scores: dict[str, float] = {}
    ready = []
    for name, module, function, repeat in entries:
        if module is not None and not installed(module):
            continue
        function(warm, warm)  # imports, compilation and first-call set-up outside the timing
        ready.append((name, function, repeat))
        timings[name] = []
    for round_ in range(max((repeat for _, _, repeat in ready), default=0)):
        for name, function, repeat in ready:
            if round_ < repeat:
                start = time.perf_counter()
                scores[name] = function(x, y)
                timings[name].append(time.perf_counter() - start)
    rows = []
    for name, *_ in entries:
        if name in timings:
            rows.append(Row(case, name, min(timings[name]), scores[name]))
        else:
            rows.append(Row(case, name, None, note="skipped (not installed)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,4096", help="square sides for the peer table")
    parser.add_argument("--scaling", default="512,2048,8192", help="sides for our throughput")
    parser.add_argument("--memory-side", type=int, default=4096)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--repeat", type=int, default=7, help="repeats of fast calls")
    add_flag(parser)
    args = parser.parse_args(argv)
    print(apply_flag(args.keep_memory))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    scaling = [int(s) for s in args.scaling.split(",") if s]

    import numba

    ours_wang = ours("wang2004")
    ours_uniform = ours("skimage")
    warm_x, warm_y = make_pair(64)
    ours_wang(warm_x, warm_y)  # compile (or load the cache) outside the timings
    ours_uniform(warm_x, warm_y)

    slow = min(3, args.repeat)  # calls of a second or more
    peers_wang: list[Entry] = [
        ("scikit-image structural_similarity (wang2004 params)", "skimage", skimage_wang2004, slow),
        ("OpenCV float32 GaussianBlur SSIM (hand-written)", "cv2", opencv_ssim, args.repeat),
        ("pytorch-msssim ssim, CPU, 2 torch threads", "pytorch_msssim", pytorch_msssim_ssim, slow),
    ]
    uniform_peer: Entry = (
        "scikit-image structural_similarity defaults",
        "skimage",
        skimage_defaults,
        slow,
    )
    msssim_peer: Entry = (
        "pytorch-msssim ms_ssim, CPU, 2 torch threads",
        "pytorch_msssim",
        pytorch_msssim_ms_ssim,
        slow,
    )
    # MS-SSIM needs sides of at least 161 (the window at the fifth scale).
    warm_ms = make_pair(176)[0]
    tables: list[tuple[str, list[Row]]] = []
    for side in sizes:
        x, y = make_pair(side)
        for case, our_function, peers in (
            (f"{side}x{side} wang2004 (Gaussian 11, sigma 1.5)", ours_wang, peers_wang),
            (
                f"{side}x{side} skimage profile (uniform 7x7, sample cov.)",
                ours_uniform,
                [uniform_peer],
            ),
        ):
            ours_entry = ("ssim-pipeline (fused, numba)", None, our_function, args.repeat)
            tables.append((case, interleaved_rows(case, [ours_entry, *peers], x, y, warm_x)))
        case = f"{side}x{side} MS-SSIM (5 scales, wang2004)"
        ours_entry = ("ssim-pipeline ms_ssim (fused, numba)", None, ours_msssim, args.repeat)
        tables.append((case, interleaved_rows(case, [ours_entry, msssim_peer], x, y, warm_ms)))

    print(
        f"# SSIM on the CPU: {os.cpu_count()} cores, numba {numba.__version__} "
        f"({numba.get_num_threads()} threads); calls interleaved round by round, best of "
        f"{args.repeat} for fast calls and of {slow} for slow ones"
    )
    print()
    print("| case | implementation | time (s) | Mpix/s | ours faster by | score |")
    print("|---|---|---|---|---|---|")
    for case, rows in tables:
        side = int(case.split("x")[0])
        mpix = side * side / 1e6
        our_seconds = rows[0].seconds
        for row in rows:
            if row.seconds is None:
                print(f"| {case} | {row.implementation} | {row.note} | | | |")
                continue
            ratio = "1.0x (this project)" if row is rows[0] else f"{row.seconds / our_seconds:.1f}x"
            print(
                f"| {case} | {row.implementation} | {row.seconds:.3f} | {mpix / row.seconds:.1f} "
                f"| {ratio} | {row.score:.6f} |"
            )

    print()
    print(
        "| scaling (ssim-pipeline, uint8) | wang2004 time (s) | Mpix/s "
        "| skimage profile (uniform 7x7) time (s) | Mpix/s |"
    )
    print("|---|---|---|---|---|")
    per_pixel: dict[int, list[float]] = {}
    for side in scaling:
        x, y = make_pair(side)
        # Small calls are repeated inside one timing, so that a timer tick or a
        # single slow call does not decide their per-pixel figure.
        inner = max(1, (1024 * 1024) // (side * side))
        cells = []
        for function in (ours_wang, ours_uniform):

            def repeated(
                a: np.ndarray, b: np.ndarray, function=function, inner: int = inner
            ) -> float:
                score = float("nan")
                for _ in range(inner):
                    score = function(a, b)
                return score

            seconds = best_time(repeated, x, y, args.repeat)[0] / inner
            cells.append(f"{seconds:.4f} | {side * side / 1e6 / seconds:.1f}")
            per_pixel.setdefault(side, []).append(seconds / (side * side))
        print(f"| {side}x{side} | {' | '.join(cells)} |")
    largest = max(scaling, default=0)
    for side in scaling:
        if side != largest:
            # A small image should not cost more per pixel than a large one.
            ratios = [a / b for a, b in zip(per_pixel[side], per_pixel[largest], strict=True)]
            print(
                f"| cost per pixel, {side}^2 / {largest}^2 | {ratios[0]:.2f} | "
                f"| {ratios[1]:.2f} | |"
            )

    if not args.no_memory:
        side = args.memory_side
        print()
        print(
            f"| peak RSS above baseline, one {side}x{side} uint8 pair (fresh process) | MB "
            "| vs ours |"
        )
        print("|---|---|---|")
        with tempfile.TemporaryDirectory() as folder:
            pair_file = os.path.join(folder, "pair.npy")
            np.save(pair_file, np.stack(make_pair(side)))
            our_mb = peak_rss_mb("ours", pair_file)
            print(f"| ssim-pipeline | {our_mb:.0f} | 1.0x |")
            for name, module in (
                ("skimage", "skimage"),
                ("opencv", "cv2"),
                ("pytorch-msssim", "pytorch_msssim"),
            ):
                if not installed(module):
                    print(f"| {name} | skipped (not installed) | |")
                    continue
                peer_mb = peak_rss_mb(name, pair_file)
                print(f"| {name} | {peer_mb:.0f} | {peer_mb / max(our_mb, 1.0):.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
