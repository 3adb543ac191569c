"""``evaluate`` of in-memory colour pairs: this checkout against others and OpenCV, alternating.

    python benchmarks/bench_evaluate_ab.py --against DIR [--against DIR2] [--pairs 64]
                                           [--size 512] [--rounds 3] [--repeat 5]

The pairs of ``bench_colour.py`` (``--pairs`` photographs and their damage,
``--size`` square RGB uint8, PNG, decoded once into two stacks saved for the
children). Each round runs one fresh process per checkout (this one first), each
importing its own ``pipeline`` (checked), warming it up on two pairs, then timing
``pipeline.evaluate(x, y, channel_axis=-1)`` best of ``--repeat``:

* **same outputs**: with ``mean_maps=False``, what a checkout from before the mean
  maps (``DIR`` at the filing of a target, say) computes by default: SSIM, l, c, s
  sums, M2, extremes, histogram, PSNR;
* **default**: as configured by default (this checkout's ``mean_maps="auto"`` adds the
  mean maps at this size); a checkout without mean maps repeats its one figure.

Then a process times the usual hand-written OpenCV float32 colour SSIM
(``bench_kernels.opencv_ssim`` per pair) with freed memory kept (``_malloc``), so
every round has its peer (where OpenCV, the ``bench`` extra, is installed; else the
script says so and compares the checkouts only). Printed: each child's figures, then
the medians and the ratios "other / this" and "OpenCV / this". The children's mean SSIM must agree
within 1e-6 (the same pairs; deficit-form sums moved later digits).

Nothing here gates a test; on a shared machine the figures move with its load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
from pathlib import Path

import _checkout
import numpy as np
from _malloc import KEEP_ENV
from bench_colour import load_stacks

_EVALUATE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import pipeline as sp
assert sp.__file__.startswith(sys.argv[1]), sp.__file__
data = np.load(sys.argv[2])
x, y = data["x"], data["y"]
repeat = int(sys.argv[3])
try:
    sp.evaluate(x[:2], y[:2], channel_axis=-1, mean_maps=False)
    same = {"mean_maps": False}
except (TypeError, ValueError):  # a checkout from before the mean maps
    same = {}
sp.evaluate(x[:2], y[:2], channel_axis=-1)
out = {"mean_maps": bool(same)}
for name, options in (("same", same), ("default", {})):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = sp.evaluate(x, y, channel_axis=-1, **options)
        best = min(best, time.perf_counter() - start)
    out[name] = best
    out["ssim"] = float(np.asarray(result["ssim"]).mean())
print(json.dumps(out))
"""

_OPENCV = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from bench_kernels import opencv_ssim
data = np.load(sys.argv[2])
x, y = data["x"], data["y"]
opencv_ssim(x[0], y[0])
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    for i in range(len(x)):
        opencv_ssim(x[i], y[i])
    best = min(best, time.perf_counter() - start)
print(json.dumps({"opencv": best}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, action="append", default=[])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "ssim-bench-folders" / "png"
    )
    args = parser.parse_args()
    x, y = load_stacks(args.pairs, args.size, args.data)
    trees = [_checkout.REPO, *(path.resolve() for path in args.against)]
    benchmarks = Path(__file__).resolve().parent
    opencv_installed = importlib.util.find_spec("cv2") is not None
    if not opencv_installed:
        print("# OpenCV is not installed (python3 -m pip install '.[bench]'): no OpenCV rows")
    with tempfile.TemporaryDirectory() as folder:
        stacks = Path(folder) / "stacks.npz"
        np.savez(stacks, x=x, y=y)
        runs: dict[str, list[dict[str, float]]] = {str(tree): [] for tree in trees}
        runs["opencv"] = []
        print(f"# {x.shape} uint8 pairs; load {os.getloadavg()[0]:.2f} at the start")
        print("| round | checkout | same outputs, s | default, s | mean maps | mean SSIM | load |")
        print("|---|---|---|---|---|---|---|")
        for round_ in range(1, args.rounds + 1):
            for tree in trees:
                load = os.getloadavg()[0]
                result = _checkout.child_json(_EVALUATE, str(tree), str(stacks), str(args.repeat))
                runs[str(tree)].append(result)
                print(
                    f"| {round_} | {tree} | {result['same']:.3f} | {result['default']:.3f} | "
                    f"{'yes' if result['mean_maps'] else 'none'} | {result['ssim']:.10f} | "
                    f"{load:.2f} |",
                    flush=True,
                )
            if opencv_installed:
                env = {**os.environ, **KEEP_ENV}
                peer = _checkout.child_json(
                    _OPENCV, str(benchmarks), str(stacks), str(args.repeat), env=env
                )
                runs["opencv"].append(peer)
                print(f"| {round_} | OpenCV float32 colour SSIM | {peer['opencv']:.3f} | | | | |")
    scores = [run["ssim"] for tree in trees for run in runs[str(tree)]]
    if max(scores) - min(scores) > 1e-6:
        raise SystemExit(f"the checkouts disagree on the mean SSIM: {min(scores)} .. {max(scores)}")
    ours = runs[str(trees[0])]
    same = statistics.median(run["same"] for run in ours)
    default = statistics.median(run["default"] for run in ours)
    print("\n| checkout | median same outputs, s | / this | median default, s | / this |")
    print("|---|---|---|---|---|")
    for tree in trees:
        theirs = runs[str(tree)]
        a = statistics.median(run["same"] for run in theirs)
        b = statistics.median(run["default"] for run in theirs)
        print(f"| {tree} | {a:.3f} | {a / same:.2f}x | {b:.3f} | {b / default:.2f}x |")
    if not runs["opencv"]:
        return
    opencv = statistics.median(run["opencv"] for run in runs["opencv"])
    ratios = f"{opencv / same:.2f}x | {opencv:.3f} | {opencv / default:.2f}x"
    print(f"| OpenCV | {opencv:.3f} | {ratios} |")


if __name__ == "__main__":
    main()
