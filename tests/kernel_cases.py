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


def assert_packed_equal(
    packed: np.ndarray, expected: np.ndarray, *, extremes_exact: bool = False
) -> None:
    """Packed statistics rows: counts and histogram exact (and min, max when asked), the rest
    to rounding."""
    count, m2 = FIELDS.index("count"), FIELDS.index("m2")
    hist = len(FIELDS)
    assert packed.shape == expected.shape
    np.testing.assert_array_equal(packed[..., count], expected[..., count])
    if extremes_exact:
        for name in ("min", "max"):
            np.testing.assert_array_equal(
                packed[..., FIELDS.index(name)], expected[..., FIELDS.index(name)]
            )
    np.testing.assert_array_equal(packed[..., hist:], expected[..., hist:])
    others = [k for k in range(hist) if k not in (count, m2)]
    np.testing.assert_allclose(packed[..., others], expected[..., others], rtol=1e-12, atol=0)
    np.testing.assert_allclose(packed[..., m2], expected[..., m2], rtol=1e-9, atol=1e-300)


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
