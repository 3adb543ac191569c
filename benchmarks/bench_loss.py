"""SSIM as a training loss: forward + backward time and peak memory per step, against peers.

    python benchmarks/bench_loss.py                     # both sizes, CPU (and GPU when present)
    python benchmarks/bench_loss.py --repeat 5          # more timed steps (best of them counts)
    python benchmarks/bench_loss.py --sizes 8,3,256,256 # one size

One step is ``loss(output, target)`` then ``loss.backward()`` with ``output``
requiring grad, float32, for ``pipeline.nn.SSIMLoss`` (fused numba kernels) and
each installed peer: pytorch-msssim (``1 - ssim``), kornia
(``kornia.losses.ssim_loss``, 'valid' padding), torchmetrics
(``structural_similarity_index_measure``) and piq (``piq.ssim`` with
``downsample=False``, so that every library scores the full-size images with an
11x11 Gaussian window, sigma 1.5). On a CUDA machine the same rows run on the
GPU, plus fused-ssim where it imports.

*Time*: in this process, the libraries take turns step by step (round-robin) so
that the drift of a shared machine's cores falls on all alike; each library's
figure is its best step after a warm-up step (which also compiles the numba
kernels, or loads them from numba's cache). The ratio column is
``peer time / pipeline time``, measured in this one run.

*Peak memory* (CPU): each library runs one step in a subprocess of its own, and
the figure is that process's peak resident set size during the step (``VmHWM``,
reset just before it through ``/proc/self/clear_refs``, Linux only) minus its RSS
just before the step (after imports, data and a small warm-up step). RSS is
chosen because ``tracemalloc`` does not see torch's allocations (they bypass
Python's allocator) and torch's profiler reports per-operator allocations, not
what the process holds at its peak, and sees nothing numba allocates. The delta
therefore counts everything the step allocates: autograd's saved tensors,
temporaries, our kernels' per-thread buffers and saved maps. One subprocess per library
runs the sizes in turn; memory a smaller size freed may be reused by the next, so a later
figure can be a little low (by at most the earlier step's peak). On the GPU the figure is
``torch.cuda.max_memory_allocated`` above the inputs (CuPy's pool, which our GPU
kernels use, is counted by ``cupy.get_default_memory_pool().used_bytes`` only).

Figures are wall-clock on whatever machine runs this (shared machines are noisy);
nothing gates on them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
from _malloc import add_flag, apply_flag

LIBRARIES = ("pipeline", "pytorch-msssim", "kornia", "torchmetrics", "piq", "fused-ssim")
SIZES = ((8, 3, 256, 256), (2, 3, 1024, 1024))


def make_loss(name: str, device: str) -> Callable[[Any, Any], Any] | None:
    """``loss(output, target)`` of one library, or None where it does not import."""
    try:
        if name == "pipeline":
            from pipeline.nn import SSIMLoss

            return SSIMLoss(data_range=1.0)
        if name == "pytorch-msssim":
            from pytorch_msssim import ssim

            return lambda out, tgt: 1 - ssim(out, tgt, data_range=1.0)
        if name == "kornia":
            import kornia

            return lambda out, tgt: kornia.losses.ssim_loss(out, tgt, 11, 1.0, padding="valid")
        if name == "torchmetrics":
            from torchmetrics.functional.image import structural_similarity_index_measure

            return lambda out, tgt: (
                1 - structural_similarity_index_measure(out, tgt, data_range=1.0)
            )
        if name == "piq":
            import piq

            return lambda out, tgt: 1 - piq.ssim(out, tgt, data_range=1.0, downsample=False)
        if name == "fused-ssim" and device == "cuda":
            from fused_ssim import fused_ssim

            return lambda out, tgt: 1 - fused_ssim(out, tgt, padding="valid")
    except ImportError:
        return None
    return None


def make_data(shape: tuple[int, ...], device: str) -> tuple[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=generator)
    output = (target + 0.1 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return output.to(device).requires_grad_(), target.to(device)


def step(loss: Callable[[Any, Any], Any], output: Any, target: Any, device: str) -> float:
    import torch

    output.grad = None
    start = time.perf_counter()
    loss(output, target).backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Make the peak RSS (VmHWM) the current RSS: Linux's ``clear_refs`` value 5."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def memory_child(name: str, shapes: list[tuple[int, ...]]) -> None:
    """One CPU step of one library per shape in this (sub)process; prints peak RSS deltas."""
    loss = make_loss(name, "cpu")
    assert loss is not None
    small_out, small_tgt = make_data((1, 1, 64, 64), "cpu")
    step(loss, small_out, small_tgt, "cpu")  # imports, compilation, first-call allocations
    deltas = []
    for shape in shapes:
        output, target = make_data(shape, "cpu")
        reset_peak_rss()
        before = _status_kb("VmRSS")
        step(loss, output, target, "cpu")
        deltas.append(max(0, _status_kb("VmHWM") - before) * 1024)
        del output, target
    print(json.dumps({"peak_delta": deltas}))


def peak_memory_cpu(name: str, shapes: list[tuple[int, ...]]) -> list[float | None]:
    """MB above each step's starting RSS, from a subprocess of its own (one per library)."""
    spec = ";".join(",".join(map(str, shape)) for shape in shapes)
    command = [sys.executable, __file__, "--memory-child", name, spec]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  ({name}: memory run failed: {done.stderr.strip().splitlines()[-1:]})")
        return [None] * len(shapes)
    return [d / 2**20 for d in json.loads(done.stdout.strip().splitlines()[-1])["peak_delta"]]


def peak_memory_cuda(loss: Callable[[Any, Any], Any], output: Any, target: Any) -> float:
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step(loss, output, target, "cuda")
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def run_device(device: str, sizes: list[tuple[int, ...]], repeat: int) -> None:
    losses = {name: make_loss(name, device) for name in LIBRARIES}
    missing = [name for name, loss in losses.items() if loss is None]
    present = {name: loss for name, loss in losses.items() if loss is not None}
    if missing:
        print(f"{device}: not available here: {', '.join(missing)}")
    memory: dict[str, list[float | None]] = {name: [] for name in present}
    if device == "cpu":
        memory = {name: peak_memory_cpu(name, sizes) for name in present}
    for index, shape in enumerate(sizes):
        output, target = make_data(shape, device)
        best = dict.fromkeys(present, float("inf"))
        for loss in present.values():
            step(loss, output, target, device)  # warm-up
        for _ in range(repeat):
            for name, loss in present.items():
                best[name] = min(best[name], step(loss, output, target, device))
        if device == "cuda":
            for name, loss in present.items():
                memory[name].append(peak_memory_cuda(loss, output, target))
        ours = best["pipeline"]
        print(f"\n{device} float32 {shape}: forward + backward per step (best of {repeat})")
        print(f"  {'library':<16}{'time s':>10}{'x pipeline':>12}{'peak MB':>10}")
        for name in present:
            mb = memory[name][index]
            mb_text = f"{mb:10.0f}" if mb is not None else f"{'-':>10}"
            print(f"  {name:<16}{best[name]:10.3f}{best[name] / ours:12.1f}{mb_text}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed steps per library")
    parser.add_argument(
        "--sizes", nargs="*", default=None, help="shapes N,C,H,W (default: both standard sizes)"
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("LIBRARY", "SHAPE"), help="internal")
    add_flag(parser)
    args = parser.parse_args(argv)
    if args.memory_child:
        name, spec = args.memory_child
        memory_child(name, [tuple(int(n) for n in part.split(",")) for part in spec.split(";")])
        return
    # The timings only: each peak-memory child starts with the C library's defaults.
    print(apply_flag(args.keep_memory))
    import torch

    sizes = [tuple(int(n) for n in s.split(",")) for s in args.sizes] if args.sizes else SIZES
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    run_device("cpu", list(sizes), args.repeat)
    if torch.cuda.is_available():
        run_device("cuda", list(sizes), args.repeat)


if __name__ == "__main__":
    main()
