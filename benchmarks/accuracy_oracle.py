"""Mean SSIM against an extended-precision oracle, pairs far from SSIM 1 included.

    python3 benchmarks/accuracy_oracle.py [--size 70x90]

For each profile (``wang2004``: Gaussian, population covariance; ``skimage``: the
uniform window, sample covariance), window size and pair, the difference of the
mean SSIM from ``tests/kernel_cases.exact_ssim`` (every window sum in
``np.longdouble``, deviations about each window's own mean; written from eqs. 6-13
of Wang et al. 2004 alone) for three paths: ``pipeline.ssim`` (the score),
``pipeline.ssim(full=True)`` (the maps' own mean), ``pipeline.evaluate``'s
per-image mean (region ``all``; the packed statistics of a whole image) and the
same with ``regions="2x2"`` (region ``all`` then comes from stored maps and their
deficits). Rows over the README's 1e-8 bound are marked.

The pairs are uint8 and made here: flat against flat far apart (SSIM near 0, where
the float32 deficit ``1 - SSIM`` near 1 carries up to 3e-8 of rounding on every
pixel alike), an edge against a flat image, noise against noise or flat.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import _checkout
import numpy as np

import pipeline as sp
from pipeline.kernels import window_weights

sys.path.insert(0, str(_checkout.REPO / "tests"))
from kernel_cases import exact_ssim

BOUND = 1e-8
DATA_RANGE = 255.0
C1, C2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
WINDOWS = {"wang2004": ("gaussian", (7, 11, 13)), "skimage": ("uniform", (7, 9, 11))}


def pairs(shape: tuple[int, int]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    flat = {value: np.full(shape, value, np.uint8) for value in (0, 10, 128, 200, 255)}
    edge = flat[0].copy()
    edge[:, shape[1] // 2 :] = 255
    noise = rng.integers(0, 256, shape).astype(np.uint8)
    yield "flat 255 vs flat 0", flat[255], flat[0]
    yield "flat 200 vs flat 10", flat[200], flat[10]
    yield "flat 255 vs flat 128", flat[255], flat[128]
    yield "edge 0/255 vs flat 0", edge, flat[0]
    yield "edge 0/255 vs flat 255", edge, flat[255]
    yield "noise vs noise", noise, rng.integers(0, 256, shape).astype(np.uint8)
    yield "noise vs flat 0", noise, flat[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="70x90", help="rows x columns of each image")
    args = parser.parse_args(argv)
    shape = tuple(int(n) for n in args.size.split("x"))
    assert len(shape) == 2
    print("| profile | taps | pair | ssim | ssim(full=True) | evaluate | evaluate, regions |")
    print("|---|---|---|---|---|---|---|")
    over = 0
    for profile, (window, sizes) in WINDOWS.items():
        for taps in sizes:
            norm = taps * taps / (taps * taps - 1) if profile == "skimage" else 1.0
            weights = window_weights(window, taps, 1.5)
            for name, x, y in pairs(shape):  # type: ignore[arg-type]
                exact = exact_ssim(x, y, weights=weights, c1=C1, c2=C2, cov_norm=norm).mean()
                options = {"data_range": DATA_RANGE, "profile": profile, "win_size": taps}
                score = sp.ssim(x, y, **options)
                full, _ = sp.ssim(x, y, full=True, **options)
                results = sp.evaluate(x[None], y[None], **options)
                mean = float(results.ssim.sel(region="all").values[0])
                results = sp.evaluate(x[None], y[None], regions="2x2", **options)
                region_mean = float(results.ssim.sel(region="all").values[0])
                errors = [score - exact, full - exact, mean - exact, region_mean - exact]
                marks = [f"{e:+.1e}" + (" **over**" if abs(e) > BOUND else "") for e in errors]
                over += sum(abs(e) > BOUND for e in errors)
                print(f"| {profile} | {taps} | {name} | " + " | ".join(marks) + " |")
    print(f"\n{over} results more than {BOUND:g} from the oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
