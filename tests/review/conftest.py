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


# -- several models ------------------------------------------------------------

#: Three models of eight camera crops, ranked by construction: ``mild`` (noise sigma 8
#: everywhere), ``patchy`` (sigma 40, but the top-left quadrant exact: it wins region
#: r0c0), ``heavy`` (sigma 25 everywhere). By SSIM mild > patchy > heavy; by PSNR
#: mild > heavy > patchy (three quarters at sigma 40 cost more squared error).
MODEL_NAMES = ("mild", "patchy", "heavy")
N_MODEL_IMAGES = 8


def model_stacks() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    camera = photograph("camera")
    reference = np.stack([camera[56 * k : 56 * k + SIDE, 100 : 100 + SIDE] for k in range(8)])
    rng = np.random.default_rng(11)

    def noisy(strength: float) -> np.ndarray:
        return np.stack([degrade(c, "noise", strength=strength, rng=rng) for c in reference])

    mild, heavy, patchy = noisy(8.0), noisy(25.0), noisy(40.0)
    patchy[:, : SIDE // 2, : SIDE // 2] = reference[:, : SIDE // 2, : SIDE // 2]
    return reference, {"mild": mild, "patchy": patchy, "heavy": heavy}


def stack_models(runs: list[xr.Dataset], names: tuple[str, ...]) -> xr.Dataset:
    """Single runs along a ``model`` dimension, as a multi-model evaluation writes them."""
    import json

    import pandas as pd

    ds = xr.concat(
        runs,
        dim=pd.Index(names, name="model"),
        coords="different",
        compat="equals",
        combine_attrs="override",
    )
    # Object strings, as every other text coordinate of the results; ``generated`` per
    # model even where the runs name their slots alike.
    generated = np.stack([np.asarray(run["generated"].values, dtype=object) for run in runs])
    ds = ds.assign_coords(
        model=np.asarray(names, dtype=object), generated=(("model", "image"), generated)
    )
    return ds.assign_attrs(models=json.dumps(list(names)))


@pytest.fixture(scope="session")
def model_arrays() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The reference stack and each model's generated stack (:func:`model_stacks`)."""
    return model_stacks()


@pytest.fixture(scope="session")
def model_runs() -> list[xr.Dataset]:
    """Each model's own single run (``pipeline.evaluate`` once per model, 2x2 regions)."""
    reference, generated = model_stacks()
    return [pipeline.evaluate(reference, generated[name], regions="2x2") for name in MODEL_NAMES]


@pytest.fixture(scope="session")
def multi(model_runs) -> xr.Dataset:
    """The three runs concatenated along ``model``."""
    return stack_models(model_runs, MODEL_NAMES)
