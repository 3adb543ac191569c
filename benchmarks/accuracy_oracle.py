"""Mean SSIM against an extended-precision oracle, pairs far from SSIM 1 included.

    python3 benchmarks/accuracy_oracle.py [--size 70x90]

For each profile (``wang2004``: Gaussian, population covariance; ``skimage``: the
uniform window, sample covariance), window size and pair, the difference of the
mean SSIM from ``tests/kernel_cases.exact_ssim`` (every window sum in
``np.longdouble``, deviations about each window's own mean; written from eqs. 6-13
of Wang et al. 2004 alone) for four paths (``tests/kernel_cases.means_of_every_path``):
``pipeline.ssim`` (the score), ``pipeline.ssim(full=True)`` (the maps' own mean),
``pipeline.evaluate``'s per-image mean (region ``all``; the packed statistics of a
whole image) and the same with ``regions="2x2"`` (region ``all`` then comes from
stored maps and their deficits). Rows over the README's 1e-8 bound are marked.

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

sys.path.insert(0, str(_checkout.REPO / "tests"))
from kernel_cases import means_of_every_path

BOUND = 1e-8
TAPS = {"wang2004": (7, 11, 13), "skimage": (7, 9, 11)}


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
    for profile, sizes in TAPS.items():
        for taps in sizes:
            for name, x, y in pairs(shape):  # type: ignore[arg-type]
                exact, means = means_of_every_path(x, y, profile, taps)
                errors = [mean - exact for mean in means]
                marks = [f"{e:+.1e}" + (" **over**" if abs(e) > BOUND else "") for e in errors]
                over += sum(abs(e) > BOUND for e in errors)
                print(f"| {profile} | {taps} | {name} | " + " | ".join(marks) + " |")
    print(f"\n{over} results more than {BOUND:g} from the oracle")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
