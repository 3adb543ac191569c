"""Cases and checks shared by the kernel tests of several stages (kernels, reductions, tiling).

Imported as a plain module (``tests/`` is on ``sys.path``, see ``pythonpath`` in
pyproject.toml), like :mod:`reliability_counts`.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from pipeline.kernels import window_weights
from pipeline.kernels.statistics import FIELDS
from pipeline.metrics.profiles import resolve_params
from pipeline.reductions.kernel_spec import KernelSpec


def kernel_params(
    window: str, win_size: int, covariance: str, data_range: float, ndim: int = 2
) -> dict:
    """Keyword arguments of ``block_maps`` / the fused kernels for one window and range."""
    weights = window_weights(window, win_size, 1.5)
    n = win_size**ndim
    return {
        "window": window,
        "weights": weights,
        "c1": (0.01 * data_range) ** 2,
        "c2": (0.03 * data_range) ** 2,
        "cov_norm": 1.0 if covariance == "population" else n / (n - 1),
        "components": True,
    }


def profile_spec(profile: str, data_range: float, threads: int | None = 1) -> KernelSpec:
    """The CPU :class:`KernelSpec` of a named profile, colour channels averaged."""
    _, params = resolve_params(profile)
    args = params.kernel_args(data_range, 2)
    return KernelSpec(
        window=args["window"],
        weights=tuple(float(w) for w in args["weights"]),
        c1=args["c1"],
        c2=args["c2"],
        cov_norm=args["cov_norm"],
        depth=params.win_size // 2,
        engine="auto",
        color_mode="channels",
        device="cpu",
        kernel_threads=threads,
    )


def colour_pair(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> tuple:
    """A colour pair and its data range; 'far' kinds sit where float32 moments cancel."""
    if kind == "uint8":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = np.clip(x + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
        return x, y, 255.0
    if kind == "uint16":
        x = (60000 + rng.integers(-50, 51, shape)).astype(np.uint16)
        y = (x.astype(np.int64) + rng.integers(-20, 21, shape)).astype(np.uint16)
        x[: shape[0] // 4, ..., shape[-1] // 2] = 100  # an edge from ~0 to ~60000 in one channel
        return x, y, 65535.0
    if kind == "float32":
        x = rng.random(shape, dtype=np.float32)
        y = np.clip(x + rng.normal(0, 0.1, shape).astype(np.float32), 0, 1)
        return x, y, 1.0
    if kind == "float64":
        x = 1000.0 + rng.random(shape)
        return x, x + rng.normal(0, 0.05, shape), 1.0
    raise AssertionError(kind)


def adversarial_pair(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> tuple:
    """Pairs built to break float32 moments: large offsets beside edges, extreme contrast."""
    if kind == "flat-255-beside-0":
        x = np.zeros(shape, dtype=np.uint8)
        x[:, shape[1] // 2 :] = 255
        y = x.copy()
        y[rng.random(shape) < 0.01] = 254
        return x, y, 255.0
    if kind == "uint16-65535-edge":
        x = np.full(shape, 65535, dtype=np.uint16)
        x[shape[0] // 2 :] -= rng.integers(0, 4, (shape[0] - shape[0] // 2, shape[1])).astype(
            np.uint16
        )
        x[:, : shape[1] // 3] = 0
        y = x.copy()
        y[rng.random(shape) < 0.05] = 65534
        return x, y, 65535.0
    if kind == "float32-offset-1e4":
        x = (1e4 + rng.random(shape)).astype(np.float32)
        y = (x + rng.normal(0, 0.05, shape)).astype(np.float32)
        return x, y, 1.0
    if kind == "float64-offset-1e4":
        x = 1e4 + rng.random(shape)
        return x, x + rng.normal(0, 0.05, shape), 1.0
    if kind == "flat-255-vs-254":
        # SSIM 0.99999 on every pixel: float32 rounds each the same way (3e-8).
        return np.full(shape, 255, dtype=np.uint8), np.full(shape, 254, dtype=np.uint8), 255.0
    if kind == "flat-65535-vs-65534":
        return np.full(shape, 65535, np.uint16), np.full(shape, 65534, np.uint16), 65535.0
    if kind.startswith("checkerboard-"):
        _, high, _, low = kind.split("-")
        return checkerboard_pair(shape, int(high), int(low), np.uint8)
    if kind == "salt-and-pepper":
        x = np.where(rng.random(shape) < 0.5, 0, 255).astype(np.uint8)
        y = np.where(rng.random(shape) < 0.1, 255 - x, x).astype(np.uint8)
        return x, y, 255.0
    raise AssertionError(kind)


def checkerboard_pair(
    shape: tuple[int, int], high: int, low: int, dtype: type = np.uint8
) -> tuple[np.ndarray, np.ndarray, float]:
    """Near-identical textures: a checkerboard of 128 +- ``high`` against 128 +- ``low``.

    Where ``v - 2 sigma_xy`` of the five float32 moments cancels (v = sigma_x^2 +
    sigma_y^2): 1e-7 of the mean for 50 against 48 (uint8, Gaussian 11) unless
    ``var(x - y)`` is formed directly. uint16 pixels are the uint8 values times 256,
    float pixels the uint8 values over 255 (data range 65535 and 1).
    """
    rows, cols = np.indices(shape)
    sign = np.where((rows + cols) % 2 == 0, 1, -1)
    x = (128 + high * sign).astype(np.float64)
    y = (128 + low * sign).astype(np.float64)
    if dtype == np.uint16:
        return (x * 256).astype(np.uint16), (y * 256).astype(np.uint16), 65535.0
    if dtype in (np.float32, np.float64):
        return (x / 255).astype(dtype), (y / 255).astype(dtype), 1.0
    return x.astype(np.uint8), y.astype(np.uint8), 255.0


#: Near-identical checkerboards (:func:`checkerboard_pair`) as kinds of
#: :func:`adversarial_pair`: the maps path's means were 1e-7 off here before it formed
#: ``var(x - y)`` directly.
NEAR_IDENTICAL = ["checkerboard-50-vs-48", "checkerboard-20-vs-19"]

#: The kinds of :func:`adversarial_pair`.
ADVERSARIAL = [
    "flat-255-beside-0",
    "uint16-65535-edge",
    "float32-offset-1e4",
    "float64-offset-1e4",
    "salt-and-pepper",
    "flat-255-vs-254",
    "flat-65535-vs-65534",
]


def map_rounding(channels: int = 1) -> float:
    """Bound on ``|stored float32 SSIM map - 1 + mean deficit|`` per pixel, ``channels`` averaged.

    The fused kernels sum ``1 - ssim`` (the deficit, in float64) for ``SUM`` and
    ``M2``; the stored map is ``1 - d`` rounded to float32, at most 2^-25 off for
    values in (0.5, 1) and exact below (Sterbenz). A channel mean of such maps adds
    the float32 roundings of its running sum (|partial sum| <= k after k channels,
    each add off by <= 2^-24 k) and of the division by ``channels`` (<= 2^-25).
    """
    if channels == 1:
        return 2.0**-25
    sums = 2.0**-24 * (channels * (channels + 1) / 2 - 1)
    return (channels * 2.0**-25 + sums) / channels + 2.0**-25


def assert_packed_equal(
    packed: np.ndarray, expected: np.ndarray, *, extremes_exact: bool = False, channels: int = 1
) -> None:
    """A fused kernel's packed statistics against ``block_statistics`` of its stored maps.

    Counts and histogram exact (and min, max when asked): both come from the same
    float32 ``ssim`` values. ``SUM`` and ``M2`` come from the kernel's float64
    deficits, not from the float32 map, so they agree to the map's rounding
    (:func:`map_rounding` ``e`` per pixel): ``|SUM - SUM'| <= n e`` and ``|M2 - M2'| <=
    2 e sqrt(n M2) + 4 n e^2`` (deviations move by at most ``2 e``, and the cross term
    is ``sum(dev_i delta_i)``). The other sums to float64 summation order (1e-12).
    """
    count, m2, total = FIELDS.index("count"), FIELDS.index("m2"), FIELDS.index("sum")
    hist = len(FIELDS)
    assert packed.shape == expected.shape
    np.testing.assert_array_equal(packed[..., count], expected[..., count])
    if extremes_exact:
        for name in ("min", "max"):
            np.testing.assert_array_equal(
                packed[..., FIELDS.index(name)], expected[..., FIELDS.index(name)]
            )
    np.testing.assert_array_equal(packed[..., hist:], expected[..., hist:])
    others = [k for k in range(hist) if k not in (count, m2, total)]
    np.testing.assert_allclose(packed[..., others], expected[..., others], rtol=1e-12, atol=0)
    n = expected[..., count]
    e = map_rounding(channels)
    slack = 1e-12 * np.abs(expected[..., total])
    assert np.all(np.abs(packed[..., total] - expected[..., total]) <= n * e + slack)
    m2_bound = 2 * e * np.sqrt(n * expected[..., m2]) + 4 * n * e * e
    m2_slack = 1e-9 * np.abs(expected[..., m2]) + 1e-300
    assert np.all(np.abs(packed[..., m2] - expected[..., m2]) <= m2_bound + m2_slack)


def exact_ssim(
    x: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
) -> np.ndarray:
    """The 'valid' SSIM map in extended precision, moments about each window's own mean.

    An oracle for the mean of the float32 kernels to 1e-8, where the float64
    reference (``E[x^2] - mu^2`` in float64, as scikit-image's ``uniform_filter``
    moments) itself loses ~1e-8 of the mean on data offset by 1e4. Written from
    eqs. 6-13 of Wang et al. 2004 alone: every sum is over the explicit window
    offsets in ``np.longdouble`` (x87 extended, a 64-bit significand on x86-64), the
    window's weighted mean first, then the weighted squared deviations about it (two
    passes, no cancellation), and SSIM as ``l * cs``. ``weights`` is the separable
    1-D window (:func:`pipeline.kernels.window_weights`), taken as given in float64.
    Returned as float64; its own error is ~1e-15 on the pairs of the tests.
    """
    w = np.asarray(weights, dtype=np.longdouble)
    taps = w.shape[0]
    rows, cols = x.shape[0] - taps + 1, x.shape[1] - taps + 1
    xl = np.asarray(x).astype(np.longdouble)
    yl = np.asarray(y).astype(np.longdouble)
    offsets = [(a, b, w[a] * w[b]) for a in range(taps) for b in range(taps)]

    def window(image: np.ndarray, a: int, b: int) -> np.ndarray:
        return image[a : a + rows, b : b + cols]

    mu_x = np.zeros((rows, cols), dtype=np.longdouble)
    mu_y = np.zeros_like(mu_x)
    for a, b, weight in offsets:
        mu_x += weight * window(xl, a, b)
        mu_y += weight * window(yl, a, b)
    var_x = np.zeros_like(mu_x)
    var_y = np.zeros_like(mu_x)
    cov = np.zeros_like(mu_x)
    for a, b, weight in offsets:
        d_x = window(xl, a, b) - mu_x
        d_y = window(yl, a, b) - mu_y
        var_x += weight * d_x * d_x
        var_y += weight * d_y * d_y
        cov += weight * d_x * d_y
    norm = np.longdouble(cov_norm)
    c1_l, c2_l = np.longdouble(c1), np.longdouble(c2)
    luminance = (2 * mu_x * mu_y + c1_l) / (mu_x * mu_x + mu_y * mu_y + c1_l)
    cs = (2 * norm * cov + c2_l) / (norm * (var_x + var_y) + c2_l)
    return (luminance * cs).astype(np.float64)


def means_of_every_path(
    x: np.ndarray, y: np.ndarray, profile: str, win_size: int, data_range: float = 255.0
) -> tuple[float, list[float]]:
    """The oracle's mean SSIM of a grey pair, and the pipeline's by its four paths.

    ``profile`` is ``"wang2004"`` (Gaussian window, population covariance) or
    ``"skimage"`` (uniform window, sample covariance). The oracle is :func:`exact_ssim`;
    the paths are ``pipeline.ssim`` (the score), ``ssim(full=True)`` (the maps' own
    mean), ``evaluate``'s region ``all`` (the packed statistics of the whole image) and
    the same with ``regions="2x2"`` (region ``all`` from stored maps and their deficits).
    """
    from pipeline import evaluate, ssim

    window = "gaussian" if profile == "wang2004" else "uniform"
    covariance = "population" if profile == "wang2004" else "sample"
    params = kernel_params(window, win_size, covariance, data_range)
    exact = exact_ssim(
        x, y, weights=params["weights"], c1=params["c1"], c2=params["c2"],
        cov_norm=params["cov_norm"],
    ).mean()  # fmt: skip
    options = {"data_range": data_range, "profile": profile, "win_size": win_size}
    full, _ = ssim(x, y, full=True, **options)
    means = [float(ssim(x, y, **options)), float(full)]
    for regions in ("all", "2x2"):
        results = evaluate(x[None], y[None], regions=regions, **options)
        means.append(float(results.ssim.sel(region="all").values[0]))
    return float(exact), means


def imfilter_then_sample(image: np.ndarray, f: int) -> np.ndarray:
    """An independent emulation of ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')``
    followed by ``img(1:f:end, 1:f:end)`` with SciPy.

    MATLAB's 'symmetric' is SciPy's ``mode="reflect"``; MATLAB anchors a size-f kernel
    at 0-based index (f - 1) // 2, SciPy at f // 2 + origin, hence origin = -1 for even f.
    """
    origin = -1 if f % 2 == 0 else 0
    kernel = np.full((f,) * image.ndim, 1.0 / f**image.ndim)
    filtered = ndi.correlate(image, kernel, mode="reflect", origin=origin)
    return filtered[tuple(slice(None, None, f) for _ in range(image.ndim))]
