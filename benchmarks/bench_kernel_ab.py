"""One thread's kernel time per pixel, this checkout against another, in alternating processes.

    python3 benchmarks/bench_kernel_ab.py --against DIR [--rounds 3] [--size 1024]

``DIR`` is another checkout's root (``git archive COMMIT | tar -x -C DIR``). Each round
runs one child process per tree, this one first, then the other; each child times,
with ``time.thread_time`` and ``threads=1`` (best of 5 after a warm-up call), on a
``--size`` square crop of the tiled astronaut photograph (uint8, and its float32 copy)
against a noisy copy:

* Gaussian 11x11 (wang2004): ``fused_score`` of uint8 and float32 pixels (what
  ``pipeline.ssim`` computes for a score), ``fused_packed_stats`` (what ``evaluate``
  computes per image), ``fused_maps(deficit=True)`` (the stored maps of a run with
  regions) and ``fused_colour_packed_stats`` (RGB, per channel-pixel);
* uniform 7x7 (skimage): ``fused_score`` of uint8 and float32 pixels and
  ``fused_packed_stats``.

Printed: ns per pixel per round and tree, and the median over rounds of new / old.
Nothing here gates a test; on a shared machine the figures move with its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import _checkout

CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import pipeline
from pipeline.kernels.cpu.colour import fused_colour_packed_stats
from pipeline.kernels.cpu.fused import fused_maps, fused_packed_stats, fused_score
from pipeline.kernels.windows import window_weights
from pipeline.testing import photograph

side = int(sys.argv[2])
rng = np.random.default_rng(0)
reps = -(-side // 512)
rgb = np.ascontiguousarray(np.tile(photograph("astronaut"), (reps, reps, 1))[:side, :side])
noisy = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
x, y = rgb[..., 0].copy(), noisy[..., 0].copy()
xf, yf = x.astype(np.float32), y.astype(np.float32)
gauss = dict(weights=window_weights("gaussian", 11, 1.5), uniform=False, c1=6.5025,
             c2=58.5225, threads=1)
box = dict(weights=window_weights("uniform", 7, 1.5), uniform=True, c1=6.5025, c2=58.5225,
           cov_norm=49 / 48, threads=1)
cases = {
    "gaussian score, uint8": (1, lambda: fused_score(x, y, **gauss)),
    "gaussian score, float32": (1, lambda: fused_score(xf, yf, **gauss)),
    "gaussian packed statistics": (1, lambda: fused_packed_stats(x, y, bins=100, **gauss)),
    "gaussian maps + deficit map": (1, lambda: fused_maps(x, y, deficit=True, **gauss)),
    "gaussian colour packed (per channel-pixel)": (
        3, lambda: fused_colour_packed_stats(rgb, noisy, bins=100, **gauss)),
    "uniform 7x7 score, uint8": (1, lambda: fused_score(x, y, **box)),
    "uniform 7x7 score, float32": (1, lambda: fused_score(xf, yf, **box)),
    "uniform 7x7 packed statistics": (1, lambda: fused_packed_stats(x, y, bins=100, **box)),
}
out = {}
for name, (channels, call) in cases.items():
    call()
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        call()
        best = min(best, time.thread_time() - start)
    out[name] = 1e9 * best / (channels * side * side)
print(json.dumps({"module": pipeline.__file__, "ns": out}))
"""


def run(tree: Path, side: int) -> dict[str, float]:
    found = _checkout.child_json(CHILD, str(tree), str(side))
    if not found["module"].startswith(str(tree)):
        raise SystemExit(f"the child imported {found['module']}, not the tree {tree}")
    return found["ns"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", type=Path, required=True, help="another checkout's root")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024, help="side of the square crop")
    args = parser.parse_args(argv)
    trees = {"this": _checkout.REPO, "other": args.against.resolve()}
    rows: dict[str, dict[str, list[float]]] = {}
    for k in range(args.rounds):
        for label, tree in trees.items():
            for name, ns in run(tree, args.size).items():
                rows.setdefault(name, {}).setdefault(label, []).append(ns)
        print(f"round {k + 1} of {args.rounds} done", file=sys.stderr)
    print(
        f"{args.size}^2, one thread, ns per pixel; this = {trees['this']}, other = {trees['other']}"
    )
    print("| kernel | this (per round) | other (per round) | this / other, median |")
    print("|---|---|---|---|")
    for name, by in rows.items():
        ratio = statistics.median(a / b for a, b in zip(by["this"], by["other"], strict=True))
        this = ", ".join(f"{v:.2f}" for v in by["this"])
        other = ", ".join(f"{v:.2f}" for v in by["other"])
        print(f"| {name} | {this} | {other} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
