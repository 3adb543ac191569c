"""End-to-end folder evaluation against the decode-only ceiling of the same files.

500 pairs of 512x512 RGB PNG (or JPEG, quality 90, with ``--format jpeg``) are made
from the photographs scikit-image bundles (random crops, resized), the generated
side degraded as GAN outputs are (noise, blur, colour cast, JPEG artefacts
re-saved). They are cached in ``--data`` (one folder per format) between runs. In
one process and with the same threaded scheduler and worker count, the script times

* **decode only**: the very decode tasks of the run (same chunks, same batches,
  both sides) computed without SSIM;
* **end to end**: ``pipeline.evaluate(reference_dir, generated_dir, output=...)``
  -- pairing (headers), decoding, SSIM, reductions and Zarr commits;

and prints the ratio of throughputs (targets: end to end >= 80 % of decode only for
PNG, >= 45 % for JPEG, which decodes several times faster),
then the tasks per pair of the planned graphs and the process's peak RSS.
Each run also records the process CPU seconds (all threads) and the 1-minute load
average before it: on a shared machine other jobs stretch the wall clock of one run
and not the other, while the CPU seconds show how much work each run did.

    python benchmarks/bench_folders.py [--pairs 500] [--size 512] [--data DIR] [--repeat 2]
                                       [--device gpu] [--format jpeg]

``--device gpu`` runs evaluate's SSIM on the GPU (CuPy) while the CPU workers decode.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import dask
import numpy as np
from PIL import Image

import pipeline as sp
from pipeline.engine.run import plan_run
from pipeline.inputs.opening import open_pair

JPEG_QUALITY = 90
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


FORMATS = {"png": ("PNG", ".png", {}), "jpeg": ("JPEG", ".jpg", {"quality": JPEG_QUALITY})}
# End to end over decode only, per cent: JPEG decodes several times faster than PNG, so
# SSIM's share of the run is larger.
TARGETS = {"png": 80, "jpeg": 45}


def make_pairs(
    root: Path, pairs: int, size: int, seed: int = 0, fmt: str = "png"
) -> tuple[Path, Path]:
    """Write (or reuse) ``pairs`` reference/generated image pairs under ``root``.

    ``fmt`` is ``"png"`` (lossless) or ``"jpeg"`` (quality ``JPEG_QUALITY``, both sides).

    The pairs are made in parallel over the machine's cores (resizing the photographs
    dominates: ~150 s for 500 pairs on one core), each from its own seeded generator,
    so the files do not depend on the number of cores.
    """
    ref, gen = root / "reference", root / "generated"
    done = root / f"complete-v2-{pairs}-{size}-{seed}-{fmt}"
    if done.exists():
        return ref, gen
    shutil.rmtree(root, ignore_errors=True)
    ref.mkdir(parents=True)
    gen.mkdir(parents=True)
    jobs = [(root, size, seed, k, fmt) for k in range(pairs)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        for _ in pool.map(_make_pair, jobs, chunksize=max(1, pairs // (8 * (os.cpu_count() or 1)))):
            pass
    done.touch()
    return ref, gen


_PHOTOS: list[np.ndarray] = []


def _make_pair(job: tuple[Path, int, int, int, str]) -> None:
    """Pair ``k``: a random crop of a bundled photograph, resized, and a degraded copy."""
    import skimage.data
    from scipy.ndimage import gaussian_filter
    from skimage.transform import resize

    root, size, seed, k, fmt = job
    if not _PHOTOS:
        _PHOTOS.extend(np.asarray(getattr(skimage.data, name)()) for name in PHOTOS)
    rng = np.random.default_rng([seed, k])
    photo = _PHOTOS[k % len(_PHOTOS)]
    h, w = photo.shape[:2]
    crop = int(min(h, w) * rng.uniform(0.5, 1.0))
    top, left = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    real = resize(photo[top : top + crop, left : left + crop], (size, size), preserve_range=True)
    real = np.clip(np.rint(real), 0, 255).astype(np.uint8)
    kind = k % 4
    fake = real.astype(np.float64)
    if kind == 0:
        fake += rng.normal(0, 10, fake.shape)
    elif kind == 1:
        fake = gaussian_filter(fake, (1.2, 1.2, 0))
    elif kind == 2:
        fake = fake * 0.95 + np.array([12.0, 0.0, -8.0])
    fake_u8 = np.clip(np.rint(fake), 0, 255).astype(np.uint8)
    if kind == 3:  # strong JPEG artefacts, then stored in the benchmark's format
        buffer = io.BytesIO()
        Image.fromarray(fake_u8).save(buffer, format="JPEG", quality=20)
        buffer.seek(0)
        fake_u8 = np.asarray(Image.open(buffer).convert("RGB"))
    pil_format, suffix, options = FORMATS[fmt]
    name = f"{k // 100:02d}/img{k:05d}{suffix}"
    for folder, image in ((root / "reference", real), (root / "generated", fake_u8)):
        (folder / name).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / name, format=pil_format, **options)


def decode_only(ref: Path, gen: Path) -> tuple[float, float]:
    """Wall and CPU seconds to compute the run's own decode tasks, batch by batch, no SSIM."""
    config = sp.RunConfig()
    plan = plan_run(config, open_pair(ref, gen))
    start, cpu = time.perf_counter(), time.process_time()
    for group in plan.pair.groups:
        x, y, status = group.reference, group.generated, group.read_status
        assert status is not None
        group_plan = plan_run(config, group)
        for a, b in group_plan.batches:
            # A 1-pixel slice of each decoded block: the decode tasks run, nothing else.
            dask.compute(x[a:b, :1, :1, :1], y[a:b, :1, :1, :1], status[a:b], scheduler="threads")
    return time.perf_counter() - start, time.process_time() - cpu


def tasks_per_pair(ref: Path, gen: Path) -> tuple[float, float]:
    """Tasks per pair of the run's planned graphs, as built and after ``dask.optimize``."""
    config = sp.RunConfig()
    pair = open_pair(ref, gen)
    built = optimized = 0
    for group in pair.groups:
        statistics = plan_run(config, group).statistics
        built += len(dict(statistics.__dask_graph__()))
        (lean,) = dask.optimize(statistics)
        optimized += len(dict(lean.__dask_graph__()))
    return built / pair.n_images, optimized / pair.n_images


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB; NaN where /proc is absent."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def end_to_end(ref: Path, gen: Path, out: Path, device: str = "cpu") -> tuple[float, float]:
    """Wall and CPU seconds of ``pipeline.evaluate`` on the two folders, into a Zarr store."""
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    ds = sp.evaluate(ref, gen, output=str(out), device=device)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert (ds.status.values == "ok").all()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where evaluate's SSIM runs (decoding is on the CPU workers either way)",
    )
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="png",
        help=f"file format of the generated pairs (jpeg: quality {JPEG_QUALITY})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="cache folder of the pairs (default: ssim-bench-folders[-jpeg] in the temp folder)",
    )
    args = parser.parse_args()
    default_name = "ssim-bench-folders" + ("" if args.format == "png" else f"-{args.format}")
    data = args.data if args.data is not None else Path(tempfile.gettempdir()) / default_name
    ref, gen = make_pairs(data, args.pairs, args.size, fmt=args.format)
    out = Path(tempfile.mkdtemp()) / "results.zarr"
    # Warm-up: compile the kernels and fill the page cache with the files.
    small = sp.evaluate(
        np.zeros((1, 64, 64, 3), np.uint8),
        np.zeros((1, 64, 64, 3), np.uint8),
        channel_axis=-1,
        device=args.device,
    )
    del small
    decode_only(ref, gen)
    kernel = sp.RunConfig().engine
    rows = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        decode = decode_only(ref, gen)
        rows.append((load, *decode, *end_to_end(ref, gen, out, args.device)))
    print(
        f"{args.pairs} pairs of {args.size}x{args.size} RGB {FORMATS[args.format][0]}"
        + (f" (quality {JPEG_QUALITY})" if args.format == "jpeg" else "")
        + f", {os.cpu_count()} cores, "
        f"threaded scheduler (dask default workers), engine={kernel!r}, device={args.device!r}; "
        f"{args.repeat} runs"
    )
    print("| run | load before | decode only s (CPU s) | end to end s (CPU s) | ratio |")
    print("|---|---|---|---|---|")
    for k, (load, decode_s, decode_cpu, e2e_s, e2e_cpu) in enumerate(rows, 1):
        print(
            f"| {k} | {load:.2f} | {decode_s:.2f} ({decode_cpu:.2f}) | {e2e_s:.2f} ({e2e_cpu:.2f})"
            f" | {100 * decode_s / e2e_s:.0f} % |"
        )
    decode_s, decode_cpu = min(r[1] for r in rows), min(r[2] for r in rows)
    e2e_s, e2e_cpu = min(r[3] for r in rows), min(r[4] for r in rows)
    mpix = 2 * args.pairs * args.size * args.size / 1e6
    print(f"\nbest of {args.repeat}:")
    print("| run | seconds | pairs/s | Mpixel/s (both sides) | process CPU s |")
    print("|---|---|---|---|---|")
    for label, seconds, cpu in (
        ("decode only", decode_s, decode_cpu),
        ("end to end (evaluate)", e2e_s, e2e_cpu),
    ):
        print(
            f"| {label} | {seconds:.2f} | {args.pairs / seconds:.1f} | {mpix / seconds:.1f}"
            f" | {cpu:.2f} |"
        )
    target = TARGETS[args.format]
    print(
        f"end-to-end throughput = {100 * decode_s / e2e_s:.0f} % of decode only"
        f" (target >= {target} %)"
    )
    print(f"CPU seconds: decode only = {100 * decode_cpu / e2e_cpu:.0f} % of end to end")
    built, optimized = tasks_per_pair(ref, gen)
    print(f"graph: {built:.2f} tasks per pair as built, {optimized:.2f} after dask.optimize")
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
