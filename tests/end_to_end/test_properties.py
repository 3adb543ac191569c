"""Properties of the public API that hold for every input (hypothesis, seeded, small shapes)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_counts import record

import pipeline as sp

PROPERTY = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def image_pairs(draw, channels: bool = False, max_images: int = 1):
    n = draw(st.integers(1, max_images))
    h, w = draw(st.integers(11, 24)), draw(st.integers(11, 24))
    shape = (n, h, w, 3) if channels else (n, h, w)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = draw(st.sampled_from([0, 5, 40, 255]))
    y = np.clip(x.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return x, y


@PROPERTY
@given(image_pairs())
def test_identity_symmetry_bounds(pair):
    x, y = pair[0][0], pair[1][0]
    assert sp.ssim(x, x) == 1.0
    s_xy, s_yx = sp.ssim(x, y, engine="reference"), sp.ssim(y, x, engine="reference")
    assert abs(s_xy - s_yx) < 1e-12
    assert -1.0 <= s_xy <= 1.0
    record("properties", "identity/symmetry/bounds")


@PROPERTY
@given(image_pairs(max_images=3), st.data())
def test_chunk_invariance(pair, data):
    x, y = pair
    _, h, w = x.shape
    chunks = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(5, h)),
        data.draw(st.integers(5, w)),
    )
    ds = sp.evaluate(x, y, chunks=chunks, engine="reference")
    for i in range(x.shape[0]):
        expected = sp.ssim(x[i], y[i], engine="reference")
        assert abs(ds["ssim"].values[i, 0] - expected) < 1e-9
    record("properties", "chunk invariance")


@PROPERTY
@given(image_pairs())
def test_dtype_invariance(pair):
    x, y = pair[0][0], pair[1][0]
    as_int = sp.ssim(x, y, engine="reference")
    as_float = sp.ssim(
        x.astype(np.float64), y.astype(np.float64), data_range=255, engine="reference"
    )
    assert abs(as_int - as_float) < 1e-12
    record("properties", "dtype invariance")


@PROPERTY
@given(image_pairs(channels=True))
def test_colour_is_the_mean_of_channels(pair):
    x, y = pair[0][0], pair[1][0]
    colour = sp.ssim(x, y, channel_axis=-1, engine="reference")
    per_channel = [sp.ssim(x[..., c], y[..., c], engine="reference") for c in range(3)]
    assert abs(colour - np.mean(per_channel)) < 1e-12
    ds = sp.evaluate(x[None], y[None], channel_axis=-1, engine="reference")
    assert abs(ds["ssim"].values[0, 0] - colour) < 1e-9
    record("properties", "colour = mean of channels")


@PROPERTY
@given(image_pairs(max_images=2), st.integers(1, 4), st.integers(1, 4))
def test_grid_regions_partition_the_whole_image(pair, rows, cols):
    x, y = pair
    ds = sp.evaluate(x, y, regions=f"{rows}x{cols}", engine="reference")
    count = ds["count"].values
    assert (count[:, 1:].sum(axis=1) == count[:, 0]).all()
    ssim = np.nan_to_num(ds["ssim"].values)  # empty tiles: NaN with count 0
    weighted = (ssim[:, 1:] * count[:, 1:]).sum(axis=1) / count[:, 0]
    np.testing.assert_allclose(weighted, ds["ssim"].values[:, 0], rtol=0, atol=1e-9)
    assert (ds["ssim_hist"].values.sum(axis=2) == count).all()
    low = ds["ssim_min"].values
    assert np.where(count[:, 1:] > 0, low[:, 1:] >= low[:, :1], True).all()
    record("properties", "regions partition all")
