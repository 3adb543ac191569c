"""Several models in one run against one run per model, on the same PNG folders.

A GAN evaluation compares several generated folders (checkpoints, models) with the
same references. ``pipeline.evaluate(reference, [gen_a, gen_b, ...])`` decodes each
reference once for all models and starts one run; one run per model decodes the
references again each time. The script makes (or reuses, under ``--data``) a
reference folder of ``--pairs`` 512x512 RGB PNGs with the helpers of
``bench_folders.py`` and ``--models`` generated folders of the same images (the
benchmark's own generated folder, then noise, blur and JPEG degradations of the
references from :func:`pipeline.testing.degrade`), then times, in one process with
the same threaded scheduler:

* **one run**: ``evaluate(reference, [all models], output=...)``;
* **separate runs**: ``evaluate(reference, model, output=...)`` for each model;

and prints both wall times, their ratio, and the process CPU seconds of each. With
four models expect a ratio of about 1.25 (the reference decoding of three runs and
their start-ups saved); about 1.0 would mean that something is done once per model.

    python benchmarks/bench_models.py [--pairs 60] [--models 4] [--size 512] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import numpy as np
from bench_folders import make_pairs
from PIL import Image

import pipeline as sp
from pipeline.testing import degrade

DEGRADATIONS = (("noise", 10.0), ("blur", 12.0), ("jpeg", 15.0), ("contrast", 10.0))


def make_models(root: Path, pairs: int, size: int, models: int) -> tuple[Path, list[Path]]:
    """The reference folder and ``models`` generated folders of the same file names."""
    reference, generated = make_pairs(root / "pairs", pairs, size)
    folders = [generated]
    files = sorted(p.relative_to(reference) for p in reference.rglob("*.png"))
    for k, (kind, strength) in enumerate(DEGRADATIONS[: models - 1]):
        folder = root / f"model-{kind}"
        done = folder / f".complete-{pairs}-{size}"
        folders.append(folder)
        if done.exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        rng = np.random.default_rng(k)
        for name in files:
            image = np.asarray(Image.open(reference / name).convert("RGB"))
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(degrade(image, kind, strength=strength, rng=rng)).save(folder / name)
        done.touch()
    return reference, folders


def timed(run: object) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    run()  # type: ignore[operator]
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--models", type=int, default=4, choices=range(2, 6))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "bench-models")
    args = parser.parse_args()
    reference, models = make_models(args.data, args.pairs, args.size, args.models)
    out = Path(tempfile.mkdtemp(prefix="bench-models-"))
    try:
        # Warm-up (Numba compilation, imports) on two pairs, outside the timings.
        sp.evaluate(np.zeros((2, 64, 64), np.uint8), np.zeros((2, 64, 64), np.uint8))
        one_wall, one_cpu = timed(
            lambda: sp.evaluate(reference, models, output=str(out / "all.zarr"))
        )
        separate_wall = separate_cpu = 0.0
        for k, model in enumerate(models):
            wall, cpu = timed(
                lambda model=model, k=k: sp.evaluate(
                    reference, model, output=str(out / f"model{k}.zarr")
                )
            )
            separate_wall += wall
            separate_cpu += cpu
        check = sp.open_results(str(out / "all.zarr"))
        ok = int((check.status.values == "ok").sum())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(
        f"{len(models)} models x {args.pairs} pairs of {args.size}x{args.size} RGB PNG "
        f"({os.cpu_count()} cores; {ok} ok pairs in the one run)"
    )
    print(f"one run of {len(models)} models: {one_wall:7.2f} s wall, {one_cpu:7.2f} s CPU")
    print(
        f"{len(models)} separate runs:     {separate_wall:7.2f} s wall, {separate_cpu:7.2f} s CPU"
    )
    print(
        f"ratio separate / one run:  {separate_wall / one_wall:.2f}x wall, "
        f"{separate_cpu / one_cpu:.2f}x CPU"
    )


if __name__ == "__main__":
    main()
