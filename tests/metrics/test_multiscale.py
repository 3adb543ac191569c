"""MS-SSIM: pinned pytorch-msssim values, the odd-size rule, properties and errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_cases import ADVERSARIAL, adversarial_pair

import pipeline as sp
from pipeline.kernels.multiscale import (
    MSSSIM_WEIGHTS,
    combine_scales,
    downsample_scale,
)
from pipeline.kernels.windows import window_weights

REFS_DIR = Path(__file__).resolve().parents[1] / "reference_values"
# Provenance (versions, date, command) is in the JSON; recompute with
# `python tests/reference_values/make_msssim_refs.py` (needs torch + pytorch-msssim).
REFS = json.loads((REFS_DIR / "msssim_refs.json").read_text())


def _load_cases() -> Any:
    spec = importlib.util.spec_from_file_location("msssim_cases", REFS_DIR / "msssim_cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = _load_cases()


def _pair(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    x, y = CASES.build_case(case)
    # Guard: the inputs rebuilt here are those the pinned numbers were computed on.
    assert list(x.shape) == case["shape"]
    assert y.mean() == pytest.approx(case["y_mean"], rel=1e-12)
    return x, y


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("case", REFS["cases"], ids=lambda c: c["name"])
def test_matches_pytorch_msssim(case: dict[str, Any], engine: str) -> None:
    x, y = _pair(case)
    got = sp.ms_ssim(x, y, data_range=255.0, channel_axis=case.get("channel_axis"), engine=engine)
    tolerance = 1e-10 if engine == "reference" else 1e-5
    assert abs(got - case["pytorch_msssim"]) < tolerance


@pytest.mark.parametrize("case", REFS["cases"], ids=lambda c: c["name"])
def test_pytorch_default_float32_window_within_2e5(case: dict[str, Any]) -> None:
    # pytorch-msssim builds its default window in float32 (taps sum to 1 - 3.1e-8);
    # E[x^2] - mu^2 on [0, 255] data amplifies that to at most ~1.3e-5 here.
    x, y = _pair(case)
    got = sp.ms_ssim(x, y, data_range=255.0, channel_axis=case.get("channel_axis"))
    assert abs(got - case["pytorch_msssim_default_window"]) < 2e-5


@pytest.mark.parametrize("case", REFS["odd_cases"], ids=lambda c: c["name"])
def test_odd_sides_follow_msssim_m_not_pytorch_zero_padding(case: dict[str, Any]) -> None:
    x, y = _pair(case)
    got = sp.ms_ssim(
        x, y, data_range=255.0, channel_axis=case.get("channel_axis"), engine="reference"
    )
    assert abs(got - case["msssim_m_rule"]) < 1e-10
    # pytorch-msssim's avg_pool2d(padding=1) averages in zeros: a measurably different score.
    assert abs(got - case["pytorch_msssim"]) > 5e-6


def test_negative_cs_is_clamped_to_zero_not_nan() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (176, 176))
    score = sp.ms_ssim(x, 255.0 - x, data_range=255.0)
    assert score == 0.0
    assert combine_scales([-0.5, 0.9], 0.8, (0.2, 0.3, 0.5)) == 0.0
    assert combine_scales([0.5], -0.1, (1.0, 0.0)) == 0.5  # zero weight: 0**0 = 1


def test_identity_is_one_and_symmetric_and_bounded() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (180, 200), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255).astype(np.uint8)
    assert sp.ms_ssim(x, x) == 1.0
    forward, backward = sp.ms_ssim(x, y), sp.ms_ssim(y, x)
    assert forward == pytest.approx(backward, abs=1e-15)
    assert 0.0 <= forward < 1.0


def test_uint8_and_float_agree() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (176, 176), dtype=np.uint8)
    y = rng.integers(0, 256, (176, 176), dtype=np.uint8)
    assert sp.ms_ssim(x, y) == pytest.approx(
        sp.ms_ssim(x.astype(np.float32), y.astype(np.float32), data_range=255), abs=1e-12
    )


def test_single_scale_is_plain_ssim() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (64, 64))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    # ms_ssim averages the kernel's float32 map; ssim's score sums the kernel's
    # float64 deficits 1 - ssim: apart by at most the map's rounding, 2^-25 a pixel.
    assert sp.ms_ssim(x, y, data_range=1.0, weights=[1.0]) == pytest.approx(
        sp.ssim(x, y, data_range=1.0), abs=2.0**-25
    )


def test_colour_is_mean_of_channels() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (3, 161, 170))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    per_channel = [sp.ms_ssim(x[c], y[c], data_range=1.0) for c in range(3)]
    got = sp.ms_ssim(x, y, data_range=1.0, channel_axis=0)
    assert got == pytest.approx(np.mean(per_channel), abs=1e-15)


def test_luma_mode() -> None:
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (170, 170, 3))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)
    luma = np.array([0.299, 0.587, 0.114])
    got = sp.ms_ssim(x, y, data_range=1.0, channel_axis=-1, color_mode="luma")
    assert got == pytest.approx(sp.ms_ssim(x @ luma, y @ luma, data_range=1.0), abs=1e-14)


def test_volume_three_scales() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (29, 30, 31))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    got = sp.ms_ssim(x, y, data_range=1.0, weights=[0.3, 0.3, 0.4], win_size=7)
    assert 0.0 < got < 1.0
    assert sp.ms_ssim(x, x, data_range=1.0, weights=[0.3, 0.3, 0.4], win_size=7) == 1.0


def test_too_small_error_suggests_fewer_scales() -> None:
    x = np.zeros((128, 128))
    with pytest.raises(ValueError, match=r"at most 4 scale\(s\): pass that many weights"):
        sp.ms_ssim(x, x, data_range=1.0)
    assert sp.ms_ssim(x, x, data_range=1.0, weights=MSSSIM_WEIGHTS[:4]) == 1.0
    with pytest.raises(ValueError, match="not even one scale fits"):
        sp.ms_ssim(np.zeros((8, 8)), np.zeros((8, 8)), data_range=1.0)


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        ("abc", TypeError, "weights must be a sequence of numbers"),
        (0.5, TypeError, "weights must be a sequence of numbers"),
        ([], ValueError, "weights must hold at least one number"),
        ([0.5, "x"], TypeError, r"weights must be numbers \(got 'x'"),
        ([0.5, -0.1], ValueError, r"weights must be finite and >= 0"),
        ([0.5, float("nan")], ValueError, r"weights must be finite and >= 0"),
    ],
)
def test_weights_errors(weights: Any, error: type[Exception], match: str) -> None:
    x = np.zeros((200, 200))
    with pytest.raises(error, match=match):
        sp.ms_ssim(x, x, data_range=1.0, weights=weights)


def test_input_errors() -> None:
    x = np.zeros((200, 200))
    with pytest.raises(ValueError, match="data_range is required for floating-point"):
        sp.ms_ssim(x, x)
    with pytest.raises(ValueError, match="must have the same shape"):
        sp.ms_ssim(x, x[:199], data_range=1.0)
    with pytest.raises(TypeError, match="unknown SSIM parameter"):
        sp.ms_ssim(x, x, data_range=1.0, gaussian=True)
    with pytest.raises(ValueError, match="ms_ssim does not take profile 'wang2009'"):
        sp.ms_ssim(x, x, data_range=1.0, profile="wang2009")
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        sp.ms_ssim(x, x, data_range=1.0, profile="nope")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="y contains 1 NaN"):
        sp.ms_ssim(x, bad, data_range=1.0)


@pytest.mark.gpu
def test_cupy_matches_numpy() -> None:
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 1, (171, 180))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    expected = sp.ms_ssim(x, y, data_range=1.0)
    got = sp.ms_ssim(cupy.asarray(x), cupy.asarray(y), data_range=1.0)
    # Both default engines (fused CPU, fused GPU) store float32 maps: parity to 1e-5.
    assert got == pytest.approx(expected, abs=1e-6)
    exact = sp.ms_ssim(cupy.asarray(x), cupy.asarray(y), data_range=1.0, engine="reference")
    assert exact == pytest.approx(sp.ms_ssim(x, y, data_range=1.0, engine="reference"), abs=1e-10)


def _exact_ssim_and_cs(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c1: float, c2: float):
    """Valid SSIM and cs maps in np.longdouble, moments about each window's own mean.

    The oracle of ``tests/kernel_cases.py::exact_ssim`` (explicit window offsets, two
    passes, eqs. 6-13 of Wang et al. 2004), keeping cs, population covariance.
    """
    w = np.asarray(weights, dtype=np.longdouble)
    taps = w.shape[0]
    rows, cols = x.shape[0] - taps + 1, x.shape[1] - taps + 1
    xl, yl = x.astype(np.longdouble), y.astype(np.longdouble)
    offsets = [(a, b, w[a] * w[b]) for a in range(taps) for b in range(taps)]
    mu_x = np.zeros((rows, cols), dtype=np.longdouble)
    mu_y = np.zeros_like(mu_x)
    for a, b, weight in offsets:
        mu_x += weight * xl[a : a + rows, b : b + cols]
        mu_y += weight * yl[a : a + rows, b : b + cols]
    var = np.zeros_like(mu_x)
    cov = np.zeros_like(mu_x)
    for a, b, weight in offsets:
        d_x = xl[a : a + rows, b : b + cols] - mu_x
        d_y = yl[a : a + rows, b : b + cols] - mu_y
        var += weight * (d_x * d_x + d_y * d_y)
        cov += weight * d_x * d_y
    c1_l, c2_l = np.longdouble(c1), np.longdouble(c2)
    cs = (2 * cov + c2_l) / (var + c2_l)
    return (2 * mu_x * mu_y + c1_l) / (mu_x * mu_x + mu_y * mu_y + c1_l) * cs, cs


def _exact_ms_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> np.longdouble:
    """MS-SSIM (wang2004 scales) from the extended-precision per-scale means above.

    The pyramid is this package's ``downsample_scale`` in float64 (2x2 means of these
    pixels, exact or within 1e-16), the product in np.longdouble.
    """
    weights = window_weights("gaussian", 11, 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    result = np.longdouble(1)
    for scale, exponent in enumerate(MSSSIM_WEIGHTS):
        if scale:
            x, y = downsample_scale(x), downsample_scale(y)
        ssim_map, cs_map = _exact_ssim_and_cs(x, y, weights, c1, c2)
        mean = (ssim_map if scale == len(MSSSIM_WEIGHTS) - 1 else cs_map).mean(dtype=np.longdouble)
        result *= max(mean, np.longdouble(0)) ** np.longdouble(exponent)
    return result


@pytest.mark.parametrize("kind", [*ADVERSARIAL, "scaled-by-1.001"])
def test_fused_means_match_an_extended_precision_oracle(kind: str) -> None:
    # Before the per-scale means came from float64 deficit sums and float64 coarse
    # scales, the float32 maps' rounding left 3.9e-9 on flat 255 vs 254 and 1.6e-8 on
    # the uint16 edge (float32 moments at the 1-pixel coarsest scale).
    rng = np.random.default_rng(7)
    if kind == "scaled-by-1.001":  # cs near 1, the same on every pixel
        x = rng.random((176, 176))
        x, y, data_range = x, 1.001 * x, 1.0
    else:
        x, y, data_range = adversarial_pair(rng, kind, (176, 176))
    expected = _exact_ms_ssim(x, y, data_range)
    found = sp.ms_ssim(x, y, data_range=data_range)
    tolerance = 1e-12 if kind.startswith("flat-") and "beside" not in kind else 2e-9
    assert abs(np.longdouble(found) - expected) <= tolerance
