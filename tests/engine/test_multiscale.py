"""pipeline.engine.multiscale: MS-SSIM of every image of a stack (or of one volume) in evaluate.

Chunk-exact: the chunked result equals the in-memory float64 reference
(``engine="reference"``, :func:`pipeline.ms_ssim`) within 1e-9 for any chunking,
including odd chunk sizes and chunks not aligned to the downsampling factors; its
settings are checked before any pixel is read, with the in-memory messages.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_cases import ADVERSARIAL, adversarial_pair

import pipeline as sp
from pipeline.testing import smooth_volume_pair, unreadable_stack

TOLERANCE = 1e-9


def _pair(rng: np.random.Generator, shape: tuple[int, ...], noise: float = 30):
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.clip(x + rng.normal(0, noise, shape), 0, 255).astype(np.uint8)
    return x, y


@pytest.mark.parametrize(
    "chunks",
    [(2, 171, 183), (1, 23, 37), (2, 50, 19), (1, 64, 64), (1, 81, 5)],
)
def test_ms_ssim_equals_the_in_memory_reference(chunks):
    rng = np.random.default_rng(8)
    x, y = _pair(rng, (2, 171, 183))
    ds = sp.evaluate(x, y, ms_ssim=True, engine="reference", chunks=chunks)
    expected = [sp.ms_ssim(x[i], y[i], engine="reference") for i in range(2)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)
    assert ds["ms_ssim"].dims == ("image",)


@given(
    data=st.data(),
    height=st.integers(41, 60),
    width=st.integers(41, 60),
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ms_ssim_any_chunking_three_scales(data, height, width):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, y = _pair(rng, (2, height, width))
    chunks = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(3, height)),
        data.draw(st.integers(3, width)),
    )
    weights = (0.2, 0.3, 0.5)
    ds = sp.evaluate(
        x, y, ms_ssim=True, ms_weights=weights, engine="reference", chunks=chunks, win_size=11
    )
    expected = [sp.ms_ssim(x[i], y[i], weights=weights, engine="reference") for i in range(2)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("color_mode", ["channels", "luma"])
def test_ms_ssim_colour(color_mode):
    rng = np.random.default_rng(3)
    x, y = _pair(rng, (1, 165, 170, 3))
    ds = sp.evaluate(
        x,
        y,
        ms_ssim=True,
        channel_axis=-1,
        color_mode=color_mode,
        engine="reference",
        chunks=(1, 45, 77),
    )
    expected = sp.ms_ssim(x[0], y[0], channel_axis=-1, color_mode=color_mode, engine="reference")
    assert ds["ms_ssim"].values[0] == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("color_mode", "engine"), [("channels", "auto"), ("luma", "auto"), ("channels", "reference")]
)
def test_whole_images_build_their_pyramids_in_memory_and_tiles_do_not(
    monkeypatch, color_mode, engine
):
    # Images that are one chunk in space take one task per chunk of images (the
    # in-memory pyramid); any other chunking the tiled pyramid. Both give pipeline.ms_ssim's
    # number to the order of float64 sums, on real photographs in colour (astronaut and
    # coffee, cropped to one shape) against JPEG-compressed copies.
    from pipeline.engine import multiscale as engine_multiscale
    from pipeline.testing import degrade, photograph

    x = np.stack([photograph(name)[:200, :240] for name in ("astronaut", "coffee")])
    y = np.stack([degrade(image, "jpeg", strength=20) for image in x])
    calls = []
    original = engine_multiscale._whole_images
    monkeypatch.setattr(
        engine_multiscale,
        "_whole_images",
        lambda *args: calls.append(args[0].chunks) or original(*args),
    )
    kwargs = {"ms_ssim": True, "channel_axis": -1, "color_mode": color_mode, "engine": engine}
    whole = sp.evaluate(x, y, chunks=(1, 200, 240), **kwargs)["ms_ssim"].values
    assert len(calls) == 1
    tiled = sp.evaluate(x, y, chunks=(1, 64, 100), **kwargs)["ms_ssim"].values
    assert len(calls) == 1
    expected = [
        sp.ms_ssim(a, b, channel_axis=-1, color_mode=color_mode, engine=engine)
        for a, b in zip(x, y, strict=True)
    ]
    np.testing.assert_allclose(whole, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tiled, expected, rtol=0, atol=1e-12)


def test_ms_ssim_default_engine_within_float32_tolerance():
    rng = np.random.default_rng(4)
    x, y = _pair(rng, (1, 176, 176))
    ds = sp.evaluate(x, y, ms_ssim=True, chunks=(1, 64, 48))
    assert ds["ms_ssim"].values[0] == pytest.approx(
        sp.ms_ssim(x[0], y[0], engine="reference"), abs=1e-5
    )


def test_ms_ssim_streams_into_zarr_with_provenance(tmp_path):
    rng = np.random.default_rng(5)
    x, y = _pair(rng, (3, 45, 50))
    weights = (0.5, 0.5)
    ds = sp.evaluate(
        x,
        y,
        ms_ssim=True,
        ms_weights=weights,
        engine="reference",
        chunks=(1, 21, 17),
        batch_images=2,
        output=str(tmp_path / "out.zarr"),
    )
    expected = [sp.ms_ssim(x[i], y[i], weights=weights, engine="reference") for i in range(3)]
    np.testing.assert_allclose(ds["ms_ssim"].values, expected, rtol=0, atol=TOLERANCE)
    assert ds.attrs["ms_ssim_scales"] == 2
    assert list(ds.attrs["ms_ssim_weights"]) == [0.5, 0.5]
    assert "symmetric" in ds.attrs["ms_ssim_downsampling"]
    assert "ms_ssim" not in sp.evaluate(x, y, engine="reference")


def test_ms_ssim_too_small_fails_before_compute_with_the_in_memory_message():
    with pytest.raises(ValueError) as in_memory:
        sp.ms_ssim(np.zeros((150, 200), np.uint8), np.zeros((150, 200), np.uint8))
    stack = unreadable_stack((2, 150, 200))
    with pytest.raises(ValueError, match=r"needs every spatial side >= 161") as streamed:
        sp.evaluate(stack, stack, ms_ssim=True)
    assert str(streamed.value) == str(in_memory.value)


def test_ms_ssim_refuses_wang2009():
    stack = unreadable_stack((1, 200, 200))
    with pytest.raises(ValueError, match=r"ms_ssim does not take profile 'wang2009'"):
        sp.evaluate(stack, stack, ms_ssim=True, profile="wang2009")


def test_volume_ms_ssim_equals_the_in_memory_reference():
    rng = np.random.default_rng(15)
    x, y = smooth_volume_pair(rng, (23, 26, 24))
    weights = (0.4, 0.6)
    ds = sp.evaluate(
        x,
        y,
        volume=True,
        data_range=1.0,
        ms_ssim=True,
        ms_weights=weights,
        engine="reference",
        chunks=(9, 7, 11),
    )
    expected = sp.ms_ssim(x, y, data_range=1.0, weights=weights, engine="reference")
    assert float(ds["ms_ssim"].values[0]) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_ms_ssim_default_engine_takes_the_in_memory_means(kind):
    # On the fused engine each block's mean comes from the kernel's deficit sums, and
    # scales whose valid map has at most PRECISE_PIXELS pixels are computed in float64,
    # as in the in-memory ms_ssim (itself within 1e-9 of an extended-precision oracle on
    # these pairs): the two agree to the order of float64 sums. Summing the float32
    # maps instead was 3.9e-9 off on flat 255 vs 254 (the last scale's map is 2.9e-8
    # off on every pixel), 6e-9 on salt and pepper.
    x, y, data_range = adversarial_pair(np.random.default_rng(6), kind, (176, 176))
    ds = sp.evaluate(x[None], y[None], ms_ssim=True, chunks=(1, 64, 48), data_range=data_range)
    expected = sp.ms_ssim(x, y, data_range=data_range)
    assert abs(ds["ms_ssim"].values[0] - expected) <= 1e-12


def test_ms_ssim_blocks_agree_where_data_leave_their_range():
    # The score path's column means are one float32 number, except in the windows
    # that hold a mean far outside the data range (pipeline/kernels/cpu/gaussian.py,
    # two parts there); that choice is each window's own, so blocks of any layout
    # give the in-memory numbers. A step of 1000 data ranges at column 100 of
    # 176 puts windows of both kinds in blocks 48 columns wide, and in different
    # column tiles than in memory.
    rng = np.random.default_rng(7)
    step = np.where(np.arange(176) >= 100, 1000.0, 0.0)
    x = step[None, :] + rng.normal(0.5, 0.1, (176, 176))
    y = x + rng.normal(0, 0.05, x.shape)
    ds = sp.evaluate(x[None], y[None], ms_ssim=True, chunks=(1, 64, 48), data_range=1.0)
    expected = sp.ms_ssim(x, y, data_range=1.0)
    assert abs(ds["ms_ssim"].values[0] - expected) <= 1e-12
