"""Largest |pipeline.ssim - skimage| over photographs x degradations, per profile and dtype.

    python3 benchmarks/agreement_skimage.py [--engine reference|auto]

Reference: scikit-image's structural_similarity (same parameters, float64 input).
"""

from __future__ import annotations

import argparse

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
from skimage.metrics import structural_similarity

import pipeline as sp
from pipeline.testing import DEGRADATIONS, degrade, photograph

SKIMAGE_ARGS = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}
DTYPES = ("uint8", "uint16", "float")


def as_dtype(image: np.ndarray, kind: str) -> tuple[np.ndarray, float]:
    if kind == "uint8":
        return image, 255.0
    if kind == "uint16":  # near the top of the range, where float32 moments cancel
        return (image.astype(np.uint16) * 16 + 60000).astype(np.uint16), 65535.0
    return image / 255.0, 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engine", default="reference")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"engine={args.engine}  (max abs difference to scikit-image)")
    print(f"| profile | {' | '.join(DTYPES)} | cases |")
    print(f"|---|{'---|' * len(DTYPES)}---|")
    for profile, skimage_args in SKIMAGE_ARGS.items():
        worst, cases = [], 0
        for kind in DTYPES:
            diff = 0.0
            for name in ("camera", "moon", "coins", "astronaut", "coffee"):
                x, data_range = as_dtype(photograph(name), kind)
                axis = -1 if x.ndim == 3 else None
                for degradation in DEGRADATIONS:
                    y = degrade(x, degradation, rng=rng, data_range=data_range)
                    expected = structural_similarity(
                        x.astype(np.float64) if kind == "float" else x,
                        y.astype(np.float64) if kind == "float" else y,
                        data_range=data_range,
                        channel_axis=axis,
                        **skimage_args,
                    )
                    got = sp.ssim(
                        x,
                        y,
                        data_range=data_range,
                        channel_axis=axis,
                        profile=profile,
                        engine=args.engine,
                    )
                    diff = max(diff, abs(got - expected))
                    cases += 1
            worst.append(f"{diff:.1e}")
        print(f"| `{profile}` | {' | '.join(worst)} | {cases} |")


if __name__ == "__main__":
    main()
