"""The compiled float64 maps of MS-SSIM's coarse scales (pipeline.kernels.cpu.precise).

``precise_means`` of a plane takes them; they must be the readable reference's maps
(:func:`pipeline.kernels.reference.ssim_maps` about the shift, the luminance from
``filter_valid`` of ``x``, ``y`` and ``x - y``) bit for bit, on data near zero and far
from it, equal images, both covariance normalisations and every window size the
coarse scales see. Volumes keep the reference. The means themselves are checked
against an extended-precision oracle in tests/metrics/test_multiscale.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels import multiscale
from pipeline.kernels.cpu import precise
from pipeline.kernels.reference import filter_valid, ssim_maps
from pipeline.kernels.windows import window_weights
from pipeline.testing import photograph


def _reference_maps(x, y, shift, weights, c1, c2, cov_norm):
    """The maps precise_means averaged before it was compiled, from the reference."""
    cs = ssim_maps(
        x - shift, y - shift, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm, components=False
    )["cs"]
    mu_x, mu_y, mu_d = (filter_valid(a, weights) for a in (x, y, x - y))
    luminance = 1.0 - mu_d * mu_d / (mu_x * mu_x + mu_y * mu_y + c1)
    return luminance * cs, cs


@pytest.mark.parametrize(
    ("window", "size", "sigma"), [("gaussian", 11, 1.5), ("gaussian", 7, 1.0), ("uniform", 7, 0)]
)
def test_compiled_maps_are_the_references_bit_for_bit(window, size, sigma) -> None:
    rng = np.random.default_rng(size)
    weights = window_weights(window, size, sigma)
    for trial in range(60):
        side = rng.integers(size, 70, 2)
        scale = 10.0 ** rng.uniform(-3, 5)
        offset = (0.0, 1e4 * scale, -3e3)[trial % 3]
        x = rng.uniform(0, scale, side) + offset
        y = x + rng.normal(0, scale / 10, x.shape) if trial % 4 else x.copy()
        c1, c2 = (0.01 * scale) ** 2, (0.03 * scale) ** 2
        cov_norm = 1.0 if trial % 2 else size * size / (size * size - 1)
        shift = 0.5 * (float(x.mean()) + float(y.mean()))
        got = precise.precise_maps(x, y, shift, weights, c1, c2, cov_norm)
        want = _reference_maps(x, y, shift, weights, c1, c2, cov_norm)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"trial {trial}")


def test_precise_means_of_planes_take_the_compiled_maps_and_volumes_do_not(monkeypatch) -> None:
    # Coarse scales of a real photograph (its 2x2 means, as the pyramid makes them).
    image = photograph("camera").astype(np.float64)
    x = image[::8, ::8][:48, :40]
    y = np.clip(x + np.random.default_rng(1).normal(0, 9, x.shape), 0, 255)
    weights = window_weights("gaussian", 11, 1.5)
    calls = []

    def counted(*args):
        calls.append(args[0].shape)
        return original(*args)

    original = precise.precise_maps
    monkeypatch.setattr(precise, "precise_maps", counted)
    ssim_mean, cs_mean = multiscale.precise_means(
        x, y, weights=weights, c1=6.5025, c2=58.5225, cov_norm=1.0
    )
    shift = 0.5 * (float(x.mean()) + float(y.mean()))
    ssim_map, cs_map = _reference_maps(x, y, shift, weights, 6.5025, 58.5225, 1.0)
    assert calls == [x.shape]
    assert (ssim_mean, cs_mean) == (float(ssim_map.mean()), float(cs_map.mean()))
    volume = np.stack([x[i : i + 12] for i in range(12)], axis=-1)  # 12 x 40 x 12
    multiscale.precise_means(volume, volume, weights=weights, c1=6.5, c2=58.5, cov_norm=1.0)
    assert calls == [x.shape]  # three axes: the reference, not the compiled maps
