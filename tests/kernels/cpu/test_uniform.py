"""The uniform (box) window of the fused CPU kernel: its exact integer sums for uint8.

pipeline.kernels.cpu.uniform is reached through the fused entry points
(``fused_maps`` / ``fused_score``). uint8 input under a uniform window of at
most ``INT_TAPS`` taps takes exact int32 sums; the 7-tap window (scikit-image's
default) forms its box sums per column tile, in registers, from the int32
column sums; other sizes add two taps per pass over the tile (odd and even
tap counts take different first steps, both are covered). Reference:
scikit-image's ``structural_similarity`` (float64 ``uniform_filter`` moments),
an independent implementation, on its 'valid' region; the float64 path of this
kernel (uint16 input with the same pixel values, which takes float64 sums); and
an extended-precision windowed oracle for data far from zero.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import exact_ssim, kernel_params, map_rounding
from skimage.metrics import structural_similarity

from pipeline.kernels.cpu.fused import fused_maps, fused_score
from pipeline.kernels.cpu.uniform import INT_TAPS, data_shift

TOLERANCE = 1e-5


def _params(win_size: int, data_range: float = 255.0) -> dict:
    params = kernel_params("uniform", win_size, "sample", data_range)
    del params["window"], params["components"]
    return {**params, "uniform": True}


def _skimage_valid(x: np.ndarray, y: np.ndarray, win_size: int) -> np.ndarray:
    """scikit-image's SSIM map (sample covariance, data range 255) on the 'valid' region."""
    _, full = structural_similarity(x, y, win_size=win_size, data_range=255.0, full=True)
    half = win_size // 2
    return full[half : x.shape[0] - half, half : x.shape[1] - half]


@pytest.mark.parametrize("win_size", [3, 7, 9, 13])
@pytest.mark.parametrize("width", [40, 300, 530])
def test_uint8_box_sums_match_scikit_image(rng, win_size, width) -> None:
    # Widths below, across and far across a column tile (256 output columns).
    x = rng.integers(0, 256, (50, width), dtype=np.uint8)
    y = np.clip(x + rng.integers(-40, 41, x.shape), 0, 255).astype(np.uint8)
    expected = _skimage_valid(x, y, win_size)
    for threads in (1, 2):
        maps = fused_maps(x, y, threads=threads, components=False, **_params(win_size))
        assert np.abs(maps["ssim"] - expected).max() < TOLERANCE
        assert abs(maps["ssim"].mean(dtype=np.float64) - expected.mean()) < 1e-7


def test_uint8_largest_sums_do_not_overflow(rng) -> None:
    # The largest int32 quantities of the integer path: 255 everywhere (box sums
    # of x^2 = 169 * 255^2 with INT_TAPS = 13 taps) and a 0/255 checkerboard
    # beside it, whose variance numerator N S_xx - S_x^2 is the largest possible
    # (N^2 255^2 / 4 = 4.6e8 for 13 taps; 7 taps: 3.9e7).
    x = np.full((64, 300), 255, dtype=np.uint8)
    x[:, 150:] = (np.indices((64, 150)).sum(axis=0) % 2 * 255).astype(np.uint8)
    y = x.copy()
    y[rng.random(x.shape) < 0.05] = 0
    for win_size in (7, INT_TAPS):
        expected = _skimage_valid(x, y, win_size)
        maps = fused_maps(x, y, threads=1, components=False, **_params(win_size))
        assert np.abs(maps["ssim"] - expected).max() < TOLERANCE
        assert fused_score(x, x, threads=1, **_params(win_size)) == 1.0
        white = np.full((40, 40), 255, dtype=np.uint8)
        assert fused_score(white, white, threads=1, **_params(win_size)) == 1.0


@pytest.mark.parametrize("win_size", [2, 4, 5, 7, 8, 9, 12, 13])
def test_integer_path_equals_float64_path(rng, win_size) -> None:
    # The same pixel values as uint8 (exact int32 sums) and as uint16 (float64
    # running sums): both round each moment once from its (nearly) exact value.
    x = rng.integers(0, 256, (90, 280), dtype=np.uint8)
    y = np.clip(x + rng.integers(-9, 10, x.shape), 0, 255).astype(np.uint8)
    params = _params(win_size)
    exact = fused_maps(x, y, threads=1, **params)
    wide = fused_maps(x.astype(np.uint16), y.astype(np.uint16), threads=1, **params)
    for name in exact:
        np.testing.assert_allclose(exact[name], wide[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("win_size", [7, 12, INT_TAPS])
def test_packed_means_of_saturated_windows(rng, win_size) -> None:
    # The integer path carries S_x + 2^16 S_y in one int32. Under 13 taps the sum
    # of a window of 255s on both sides, 169 * 255 * (1 + 2^16) = 2.8e9, passes
    # 2^31: the halves must still come back exact. References: luminance from the
    # exact integer window sums (int64, NumPy), which reads the two means alone, and
    # the extended-precision oracle for the SSIM map and its mean.
    x = np.full((60, 290), 255, dtype=np.uint8)
    y = np.full(x.shape, 255, dtype=np.uint8)
    x[:, 200:] = rng.integers(0, 256, (60, 90), dtype=np.uint8)
    y[20:40, 100:] = 0
    params = _params(win_size)
    maps = fused_maps(x, y, threads=1, **params)
    n = win_size * win_size
    sums = [
        np.lib.stride_tricks.sliding_window_view(a.astype(np.int64), (win_size, win_size)).sum(
            axis=(2, 3)
        )
        for a in (x, y)
    ]
    mx, my = (s / n for s in sums)
    c1 = params["c1"]
    luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    np.testing.assert_allclose(maps["luminance"], luminance, rtol=0, atol=1e-6)
    saturated = maps["luminance"][: 20 - win_size + 1, : 100 - win_size + 1]
    assert saturated.size and np.all(saturated == 1.0)
    exact = exact_ssim(
        x, y, weights=params["weights"], c1=c1, c2=params["c2"], cov_norm=params["cov_norm"]
    )
    assert np.abs(maps["ssim"] - exact).max() < TOLERANCE
    assert abs(fused_score(x, y, threads=1, **params) - exact.mean()) < 1e-8


@pytest.mark.parametrize("win_size", [7, 11])
def test_serial_and_parallel_are_equal(rng, win_size) -> None:
    # Integer sums are exact in any order and any chunking of the rows, so the
    # maps of one thread and of two (chunks restarted) are identical.
    x = rng.integers(0, 256, (403, 333), dtype=np.uint8)
    y = rng.integers(0, 256, x.shape, dtype=np.uint8)
    params = _params(win_size)
    serial = fused_maps(x, y, threads=1, **params)
    parallel = fused_maps(x, y, threads=2, **params)
    for name in serial:
        np.testing.assert_array_equal(parallel[name], serial[name])
    assert fused_score(x, y, threads=1, **params) == pytest.approx(
        fused_score(x, y, threads=2, **params), rel=1e-12
    )


def test_symmetry_is_exact(rng) -> None:
    x = rng.integers(0, 256, (60, 290), dtype=np.uint8)
    y = rng.integers(0, 256, x.shape, dtype=np.uint8)
    forward = fused_maps(x, y, threads=1, **_params(7))
    backward = fused_maps(y, x, threads=1, **_params(7))
    for name in forward:
        np.testing.assert_array_equal(forward[name], backward[name])


def test_float64_tile_sums_for_wide_and_far_data(rng) -> None:
    # uint16 and float input take float64 column sums; the 7-tap window adds its
    # seven column sums per output pixel (no running sum along the row). Cases:
    # uint16 at 65535 beside 0 (the largest sums) and float64 far from zero
    # (where a running sum's rounding drifts; the path sums it less a shift near the
    # data). The means (the score, from the kernel's float64 deficit sums) within
    # 1e-8 of the exact oracle (scikit-image's float64 maps: up to 1.7e-7 off); the
    # float32 maps' own means within their rounding more.
    x16 = np.full((50, 300), 65535, dtype=np.uint16)
    x16[:, :100] = 0
    y16 = x16.copy()
    y16[rng.random(x16.shape) < 0.05] = 65534
    far = 1e4 + rng.random((50, 300))
    far_y = far + rng.normal(0, 0.05, far.shape)
    for x, y, data_range in ((x16, y16, 65535.0), (far, far_y, 1.0)):
        params = _params(7, data_range)
        expected = exact_ssim(x, y, **{k: params[k] for k in ("weights", "c1", "c2", "cov_norm")})
        maps = fused_maps(x, y, threads=1, components=False, **params)
        assert np.abs(maps["ssim"] - expected).max() < TOLERANCE
        mean = maps["ssim"].mean(dtype=np.float64)
        assert abs(mean - expected.mean()) < 1e-8 + map_rounding()
        assert abs(fused_score(x, y, threads=1, **params) - expected.mean()) < 1e-8
        assert fused_score(x, x, threads=1, **params) == 1.0


def test_data_shift() -> None:
    # Float pixels are summed less a value near the data, the same for (x, y) and
    # (y, x); integer pixels (summed exactly) and all-NaN samples take 0.
    x = np.full((40, 50), 1e4) + np.arange(50) * 1e-3
    y = x + 0.5
    shift = data_shift(x, y)
    assert x.min() <= shift <= y.max()
    assert data_shift(y, x) == shift
    assert data_shift(x.astype(np.uint16), y.astype(np.uint16)) == 0.0
    nan = np.full((40, 50), np.nan)
    assert data_shift(nan, nan) == 0.0
    x[0, 0] = np.nan  # one NaN sample is skipped
    assert np.isfinite(data_shift(x, y))


def _score_pair(rng, kind: str, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pairs for the score's integer sums: near SSIM 1, near 0, and the largest sums."""
    if kind == "noise":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x + rng.integers(-30, 31, shape), 0, 255).astype(np.uint8)
    elif kind == "flat-255-against-0":
        # SSIM near 0 on every pixel: the deficits near 1 (float32 would round them alike).
        x = np.full(shape, 255, dtype=np.uint8)
        y = np.zeros(shape, dtype=np.uint8)
    elif kind == "edge-against-flat":
        x = np.zeros(shape, dtype=np.uint8)
        x[:, shape[1] // 2 :] = 255
        y = np.full(shape, 255, dtype=np.uint8)
    else:  # "saturated": 255 beside the largest variances, n (S_xx + S_yy) past 2^31
        x = np.full(shape, 255, dtype=np.uint8)
        board = (np.indices(shape).sum(axis=0) % 2 * 255).astype(np.uint8)
        x[:, shape[1] // 2 :] = board[:, shape[1] // 2 :]
        y = x.copy()
        y[:, shape[1] // 2 :] = 255 - board[:, shape[1] // 2 :]
    return x, y


@pytest.mark.parametrize("win_size", [2, 3, 7, 8, 11, INT_TAPS])
@pytest.mark.parametrize("kind", ["noise", "flat-255-against-0", "edge-against-flat", "saturated"])
def test_score_from_three_integer_sums(rng, win_size, kind) -> None:
    # A uint8 score under a uniform window sums three integer moments per column (the
    # packed means, S_xx + S_yy and S_mm of m = x - y), not the maps' four, and its
    # comparison step reads the means and the numerators on their integer scale (the
    # constants scaled instead). Reference: the extended-precision oracle's mean, and
    # the mean of the maps' own float64 deficits (the four-sum path).
    x, y = _score_pair(rng, kind, (50, 130))
    params = _params(win_size)
    expected = exact_ssim(x, y, **{k: params[k] for k in ("weights", "c1", "c2", "cov_norm")})
    score = fused_score(x, y, threads=1, **params)
    assert abs(score - expected.mean()) < 2e-9
    deficit = fused_maps(x, y, threads=1, deficit=True, **params)["deficit"]
    assert abs(score - (1.0 - deficit.mean())) < 2e-9
    assert fused_score(y, x, threads=1, **params) == score
    assert fused_score(x, x, threads=1, **params) == 1.0
    assert fused_score(y, y, threads=2, **params) == 1.0
    # Chunks restart the integer sums: two threads give the same deficits, summed in
    # another order.
    assert fused_score(x, y, threads=2, **params) == pytest.approx(score, rel=1e-13)
