"""GPU SSIM throughput: this project against cuCIM on the same device, one table per run.

    python benchmarks/bench_gpu.py [--sizes 2048,4096,8192] [--repeat 10]

Both sides get the same uint8 pair already on the device and the wang2004
parameters (Gaussian 11x11, sigma 1.5, population covariance, data_range 255);
times are wall-clock with a device synchronisation, best of ``--repeat`` after a
warm-up call. cuCIM not installed, or no CUDA device: printed as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import numpy as np


def make_pair(side: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    camera = data.camera()
    reps = -(-side // camera.shape[0])
    x = np.tile(camera, (reps, reps))[:side, :side].copy()
    rng = np.random.default_rng(2004)
    y = np.clip(np.roll(x, 1, axis=1) + rng.normal(0, 12, x.shape), 0, 255).astype(np.uint8)
    return x, y


def device_time(function: Callable[[], float], repeat: int) -> tuple[float, float]:
    import cupy

    score = function()  # warm-up: kernel compilation, memory pool
    cupy.cuda.Device().synchronize()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        score = function()
        cupy.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - start)
    return best, score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,4096,8192")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--evaluate", type=int, default=0, help="also time evaluate() on N 2048^2 images"
    )
    args = parser.parse_args(argv)

    import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)

    from pipeline.kernels.backend import gpu_available

    print("| case | implementation | time (ms) | Mpix/s | ours faster by | score |")
    print("|---|---|---|---|---|---|")
    if not gpu_available():
        print("| all | ssim-pipeline (CuPy) | skipped (no CUDA device answered) | | | |")
        return 0
    import cupy

    import pipeline

    have_cucim = importlib.util.find_spec("cucim") is not None
    for side in (int(s) for s in args.sizes.split(",") if s):
        x_host, y_host = make_pair(side)
        x, y = cupy.asarray(x_host), cupy.asarray(y_host)
        case = f"{side}x{side} wang2004, uint8"
        mpix = side * side / 1e6
        ours_s, ours_score = device_time(lambda x=x, y=y: float(pipeline.ssim(x, y)), args.repeat)
        print(
            f"| {case} | ssim-pipeline (CuPy) | {ours_s * 1e3:.2f} | {mpix / ours_s:.0f} "
            f"| 1.0x (this project) | {ours_score:.6f} |"
        )
        from pipeline.kernels import window_weights
        from pipeline.kernels.gpu.maps import gpu_maps

        def cupyx_ssim(x=x, y=y) -> float:
            maps = gpu_maps(
                x,
                y,
                weights=window_weights("gaussian", 11, 1.5),
                uniform=False,
                c1=(0.01 * 255) ** 2,
                c2=(0.03 * 255) ** 2,
                components=False,
                implementation="cupyx",
            )
            return float(maps["ssim"].mean(dtype=cupy.float64))

        alt_s, alt_score = device_time(cupyx_ssim, args.repeat)
        print(
            f"| {case} | ssim-pipeline, cupyx filter path | {alt_s * 1e3:.2f} "
            f"| {mpix / alt_s:.0f} | {alt_s / ours_s:.1f}x | {alt_score:.6f} |"
        )
        if not have_cucim:
            print(f"| {case} | cuCIM structural_similarity | skipped (not installed) | | | |")
            continue
        try:
            from cucim.skimage.metrics import structural_similarity
        except Exception as error:  # a broken install is reported, not fatal
            print(f"| {case} | cuCIM structural_similarity | skipped ({error}) | | | |")
            continue

        def cucim_ssim(x=x, y=y) -> float:
            return float(
                structural_similarity(
                    x,
                    y,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=255,
                )
            )

        peer_s, peer_score = device_time(cucim_ssim, args.repeat)
        print(
            f"| {case} | cuCIM structural_similarity | {peer_s * 1e3:.2f} | {mpix / peer_s:.0f} "
            f"| {peer_s / ours_s:.1f}x | {peer_score:.6f} |"
        )
    if args.evaluate:
        evaluate_rows(args.evaluate)
    return 0


def evaluate_rows(images: int) -> None:
    """``pipeline.evaluate`` of an in-memory uint8 stack, device gpu against cpu, same run."""
    import pipeline

    x1, y1 = make_pair(2048)
    x = np.stack([np.roll(x1, i, axis=0) for i in range(images)])
    y = np.stack([np.roll(y1, i, axis=0) for i in range(images)])
    mpix = x.size / 1e6
    times, scores = {}, {}
    for device in ("gpu", "cpu"):
        pipeline.evaluate(x[:2], y[:2], device=device)  # warm-up (compilation)
        start = time.perf_counter()
        ds = pipeline.evaluate(x, y, device=device)
        times[device] = time.perf_counter() - start
        scores[device] = float(ds.ssim.sel(region="all").mean())
    for device, label in (("gpu", f"{times['cpu'] / times['gpu']:.1f}x"), ("cpu", "(peer)")):
        print(
            f"| evaluate {images}x2048x2048 uint8 | device={device} | {times[device] * 1e3:.0f} "
            f"| {mpix / times[device]:.0f} | {label} | {scores[device]:.6f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
