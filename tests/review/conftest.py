"""Shared fixtures of the ``ds.review`` tests: damaged photographs and their results.

Four 64x64 crops of the camera photograph, each damaged twice (noise, blur), scored
by :func:`pipeline.evaluate` with 2x2 regions; ``store`` is the noisy side written to
a Zarr store with its SSIM and component maps saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import pipeline
from pipeline.testing import degrade, photograph

N_IMAGES = 4
SIDE = 64


def _stack(strengths: tuple[float, ...], kind: str) -> tuple[np.ndarray, np.ndarray]:
    camera = photograph("camera")
    crops = [camera[64 * k : 64 * k + SIDE, 100 : 100 + SIDE] for k in range(N_IMAGES)]
    reference = np.stack(crops)
    rng = np.random.default_rng(7)
    generated = np.stack(
        [degrade(c, kind, strength=s, rng=rng) for c, s in zip(crops, strengths, strict=True)]
    )
    return reference, generated


@pytest.fixture(scope="module")
def stacks() -> dict[str, np.ndarray]:
    reference, noisy = _stack((4.0, 30.0, 12.0, 60.0), "noise")
    _, blurred = _stack((8.0, 20.0, 5.0, 12.0), "blur")
    return {"reference": reference, "a": noisy, "b": blurred}


@pytest.fixture(scope="module")
def results(stacks) -> tuple[xr.Dataset, xr.Dataset]:
    ds_a = pipeline.evaluate(stacks["reference"], stacks["a"], regions="2x2")
    ds_b = pipeline.evaluate(stacks["reference"], stacks["b"], regions="2x2")
    return ds_a, ds_b


@pytest.fixture(scope="module")
def store(stacks, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("accessor") / "results.zarr"
    pipeline.evaluate(
        stacks["reference"],
        stacks["a"],
        regions="2x2",
        output=str(path),
        save_maps=True,
        maps=("ssim", "luminance", "contrast", "structure"),
    )
    return path
