"""pipeline.engine.family: the ``wang2009`` profile's downsampling applied in evaluate().

Chunk-exact: the chunked result equals the in-memory float64 reference
(``engine="reference"``) within 1e-9 for any chunking, including chunks not aligned
to the downsampling factor, and a label mask given at full resolution is read at the
kept samples. The volumes and MS-SSIM that :func:`~pipeline.engine.family.prepare_family`
also sets up are tested in test_volumes.py and test_multiscale.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pipeline as sp

TOLERANCE = 1e-9
SKIMAGE_KWARGS: dict[str, dict[str, Any]] = {
    "wang2004": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False},
    "skimage": {},
}


def _pair(rng: np.random.Generator, shape: tuple[int, ...], noise: float = 30):
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
    return x, y


@pytest.mark.parametrize(
    ("shape", "factor", "chunks"),
    [
        ((1, 200, 230), 1, (1, 61, 47)),
        ((2, 390, 401), 2, (1, 390, 401)),
        ((2, 390, 401), 2, (2, 97, 61)),
        ((1, 640, 653), 3, (1, 640, 653)),
        ((1, 640, 653), 3, (1, 100, 131)),
        ((1, 640, 653), 3, (1, 23, 299)),
    ],
    ids=str,
)
def test_wang2009_equals_the_in_memory_reference(shape, factor, chunks):
    rng = np.random.default_rng(factor)
    x, y = _pair(rng, shape)
    ds = sp.evaluate(x, y, profile="wang2009", engine="reference", chunks=chunks)
    assert ds.attrs["downsample_factor"] == factor
    for i in range(shape[0]):
        score, maps = sp.ssim(x[i], y[i], profile="wang2009", engine="reference", full=True)
        assert float(ds["ssim"].values[i, 0]) == pytest.approx(score, abs=TOLERANCE)
        assert int(ds["count"].values[i, 0]) == maps["ssim"].size


def test_wang2009_labels_are_read_at_the_kept_samples():
    rng = np.random.default_rng(21)
    x, y = _pair(rng, (1, 390, 400))
    labels = np.zeros((390, 400), np.uint8)
    labels[:, 201:] = 1  # column 201 is dropped by the factor-2 sampling; 202 is kept
    ds = sp.evaluate(
        x,
        y,
        profile="wang2009",
        regions="labels",
        labels=labels,
        engine="reference",
        chunks=(1, 101, 77),
    )
    _, maps = sp.ssim(x[0], y[0], profile="wang2009", engine="reference", full=True)
    reduced = labels[::2, ::2][5:-5, 5:-5]
    selected = maps["ssim"][reduced == 1]
    assert int(ds["count"].sel(region="label1").values[0]) == selected.size
    assert float(ds["ssim"].sel(region="label1").values[0]) == pytest.approx(
        selected.mean(), abs=TOLERANCE
    )
