"""One entry point for 'the SSIM maps of a block', whatever computes them.

Callers (the in-memory API and the tiled engine) name an engine; this module
picks the implementation. Only primitive arguments cross this boundary so the
kernels stay free of settings objects, Dask and xarray.

Engines:

* ``"reference"``: the readable float64 oracle (any dimensionality, NumPy or CuPy).
* ``"fused"``: the compiled CPU kernel (:mod:`pipeline.kernels.cpu.fused`), 2-D NumPy blocks.
* ``"gpu"``: the CuPy kernels (:mod:`pipeline.kernels.gpu.maps`), 2-D CuPy blocks.
* ``"auto"``: ``gpu`` for 2-D CuPy arrays, ``fused`` for 2-D NumPy arrays,
  ``reference`` otherwise (N-D volumes, where no fused path exists yet).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module, is_device_array
from pipeline.kernels.gradient import ssim_value_and_grad
from pipeline.kernels.multiscale import precise_means
from pipeline.kernels.reference import ssim_maps

__all__ = [
    "ENGINES",
    "block_cs_score",
    "block_maps",
    "block_maps_and_score",
    "block_score",
    "resolve_engine",
    "scale_mean",
    "value_and_grad",
]

ENGINES = ("auto", "reference", "fused", "gpu")

# The mean cs from the fused kernel's score pass: cs is SSIM without its luminance
# term, and SSIM with C1 this large has a luminance deficit
# dl = (mu_x - mu_y)^2 / (mu_x^2 + mu_y^2 + C1) <= (2 max|pixel|)^2 / C1, so its
# deficit d = dl + dcs - dl dcs is dcs = 1 - cs to within 2^-40 wherever
# max|pixel| <= _CS_MAX_PIXEL. 2^120 is the largest C1 the float32 kernels take
# (mu_x^2 + mu_y^2 + C1 stays finite for every pixel they admit).
_CS_C1 = 2.0**120
_CS_MAX_PIXEL = 2.0**39


_FUSED: Any = None


def _fused() -> Any:
    """:mod:`pipeline.kernels.cpu.fused`, imported on first use (it loads numba).

    Kept once imported: an import statement in the call path costs ~1 us a call,
    more than some of a small image's kernel.
    """
    global _FUSED
    if _FUSED is None:
        from pipeline.kernels.cpu import fused

        _FUSED = fused
    return _FUSED


def resolve_engine(engine: str, x: Any, y: Any) -> str:
    """The concrete engine (``reference``, ``fused`` or ``gpu``) that ``engine`` means here.

    Raises
    ------
    ValueError
        ``engine`` is unknown, or names a path that cannot take these arrays
        (``fused`` needs 2-D NumPy, ``gpu`` needs 2-D CuPy).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    on_device = is_device_array(x) or is_device_array(y)
    if engine == "auto":
        if x.ndim != 2:
            return "reference"
        return "gpu" if on_device else "fused"
    if engine == "fused" and (on_device or x.ndim != 2):
        raise ValueError(
            f"engine='fused' needs 2-D NumPy arrays (got {x.ndim}-D "
            f"{'CuPy' if on_device else 'NumPy'}); use engine='auto' or 'reference'"
        )
    if engine == "gpu" and (not on_device or x.ndim != 2):
        raise ValueError(
            f"engine='gpu' needs 2-D CuPy arrays (got {x.ndim}-D "
            f"{'CuPy' if on_device else 'NumPy'}); move the arrays to the device first"
        )
    return engine


def block_maps(
    x: Any,
    y: Any,
    *,
    window: str,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    engine: str = "auto",
    threads: int | None = None,
    deficit: bool = False,
) -> dict[str, Any]:
    """SSIM maps on the valid region of one block (no channel axis).

    Parameters
    ----------
    x, y : array_like
        The block pair, NumPy or CuPy, same shape, any real dtype.
    window : str
        ``"gaussian"`` or ``"uniform"`` (the uniform window takes the running-sum path).
    weights : numpy.ndarray
        The separable 1-D window.
    c1, c2 : float
        SSIM stabilising constants; ``C3 = C2 / 2``.
    cov_norm : float
        Factor on local (co)variances (population 1, sample ``N / (N - 1)``).
    components : bool
        Also return ``luminance``, ``contrast`` and ``structure``.
    engine : str
        One of :data:`ENGINES`. ``reference`` returns float64 maps; ``fused``
        and ``gpu`` return float32 maps (within 1e-5 of the reference).
    threads : int, optional
        CPU threads for the ``fused`` engine. ``None`` uses all of numba's
        threads (an in-memory call); pass ``1`` when the caller already runs
        many blocks in parallel (Dask worker threads): the serial kernel
        releases the GIL and is safe to call concurrently. Ignored by the
        other engines.
    deficit : bool
        On the ``fused`` engine, also return ``deficit``: its float64 ``1 - ssim``,
        from which means are summed free of the float32 ``ssim`` map's rounding (up
        to 3e-8) (:func:`pipeline.kernels.cpu.fused.fused_maps`). Ignored by the other
        engines (the reference's float64 map needs none; the GPU kernels keep no
        deficit map).

    Returns
    -------
    dict
        ``ssim`` and ``cs`` maps, plus the components (and ``deficit``) when asked.
    """
    chosen = resolve_engine(engine, x, y)
    if chosen == "fused":
        return _fused().fused_maps(
            x,
            y,
            weights=weights,
            uniform=window == "uniform",
            c1=c1,
            c2=c2,
            cov_norm=cov_norm,
            components=components,
            threads=threads,
            deficit=deficit,
        )
    if chosen == "gpu":
        from pipeline.kernels.gpu.maps import gpu_maps

        return gpu_maps(
            x,
            y,
            weights=weights,
            uniform=window == "uniform",
            c1=c1,
            c2=c2,
            cov_norm=cov_norm,
            components=components,
        )
    xp = array_module(x, y)
    return ssim_maps(
        x.astype(xp.float64, copy=False),
        y.astype(xp.float64, copy=False),
        weights=weights,
        c1=c1,
        c2=c2,
        cov_norm=cov_norm,
        components=components,
    )


def block_score(
    x: Any,
    y: Any,
    *,
    window: str,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    engine: str = "auto",
    threads: int | None = None,
) -> float:
    """Mean of the valid SSIM map of one block (no channel axis).

    The fused engine reduces each output row as it is made and never stores the
    map (a float64 sum of the deficits ``1 - ssim``, so identical images still give
    exactly 1; under an odd Gaussian window of up to 11 taps from the sum/difference
    basis, :func:`pipeline.kernels.cpu.fused.fused_score`); the other engines compute
    the map and average it in float64.
    """
    chosen = resolve_engine(engine, x, y)
    if chosen == "fused":
        return _fused().fused_score(
            x,
            y,
            weights=weights,
            uniform=window == "uniform",
            c1=c1,
            c2=c2,
            cov_norm=cov_norm,
            threads=threads,
        )
    _, score = block_maps_and_score(
        x,
        y,
        window=window,
        weights=weights,
        c1=c1,
        c2=c2,
        cov_norm=cov_norm,
        components=False,
        engine=chosen,
        threads=threads,
    )
    return score


def block_maps_and_score(
    x: Any,
    y: Any,
    *,
    window: str,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    components: bool,
    engine: str = "auto",
    threads: int | None = None,
) -> tuple[dict[str, Any], float]:
    """:func:`block_maps` and :func:`block_score` of one block, from one pass.

    Same arguments as :func:`block_maps`. The score is the mean of this pass: on the
    fused engine the float64 sum of the kernel's deficits ``1 - ssim`` (not the mean
    of the returned float32 map, which keeps the map's rounding, up to 3e-8 near 1);
    on the other engines the float64 mean of the map, :func:`block_score`'s number.
    The fused engine's :func:`block_score` takes another path under an odd Gaussian
    window of up to 11 taps (the sum/difference basis, which the maps cannot use):
    the two agree within 1e-8 on the tested pairs, not bit for bit; under a uniform
    window they are the same number.
    """
    chosen = resolve_engine(engine, x, y)
    if chosen == "fused":
        return _fused().fused_maps_and_score(
            x,
            y,
            weights=weights,
            uniform=window == "uniform",
            c1=c1,
            c2=c2,
            cov_norm=cov_norm,
            components=components,
            threads=threads,
        )
    maps = block_maps(
        x,
        y,
        window=window,
        weights=weights,
        c1=c1,
        c2=c2,
        cov_norm=cov_norm,
        components=components,
        engine=chosen,
        threads=threads,
    )
    xp = array_module(maps["ssim"])
    return maps, float(maps["ssim"].mean(dtype=xp.float64))


def block_cs_score(
    x: Any,
    y: Any,
    *,
    window: str,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    engine: str = "auto",
    threads: int | None = None,
) -> float:
    """Mean of the valid cs map of one block (no channel axis): MS-SSIM's per-scale factor.

    Same arguments as :func:`block_score` (``c1`` is used only where the map is
    made). The fused engine runs its score pass with a huge C1 instead of storing
    the maps: the luminance deficit then vanishes (below 2^-40 for pixels up to
    2^39 in magnitude) and the float64 sum of the deficits is that of
    ``1 - cs``, free of the float32 rounding of the cs map (up to 3e-8 a pixel,
    the same on every pixel of evenly scaled content). Larger pixels, and the
    other engines, average the cs map in float64.
    """
    chosen = resolve_engine(engine, x, y)
    if chosen == "fused" and _magnitude(x, y) <= _CS_MAX_PIXEL:
        return block_score(
            x,
            y,
            window=window,
            weights=weights,
            c1=_CS_C1,
            c2=c2,
            cov_norm=cov_norm,
            engine=chosen,
            threads=threads,
        )
    maps = block_maps(
        x,
        y,
        window=window,
        weights=weights,
        c1=c1,
        c2=c2,
        cov_norm=cov_norm,
        components=False,
        engine=chosen,
        threads=threads,
    )
    xp = array_module(maps["cs"])
    return float(maps["cs"].mean(dtype=xp.float64))


def scale_mean(
    x: Any,
    y: Any,
    name: str,
    *,
    window: str,
    weights: np.ndarray,
    c1: float,
    c2: float,
    cov_norm: float,
    engine: str = "auto",
    threads: int | None = None,
    precise: bool = False,
) -> float:
    """Mean of one block's valid ``name`` map (``"cs"`` or ``"ssim"``): one MS-SSIM scale's factor.

    :func:`block_cs_score` or :func:`block_score`; with ``precise`` (a coarse scale,
    few pixels) and the fused engine, :func:`pipeline.kernels.multiscale.precise_means`
    in float64 instead, as the float32 kernel's per-pixel error does not average away
    over so few pixels. The in-memory and the tiled MS-SSIM take their means here.
    """
    chosen = resolve_engine(engine, x, y)
    if precise and chosen == "fused":
        ssim_mean, cs_mean = precise_means(x, y, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm)
        return cs_mean if name == "cs" else ssim_mean
    score = block_cs_score if name == "cs" else block_score
    return score(
        x,
        y,
        window=window,
        weights=weights,
        c1=c1,
        c2=c2,
        cov_norm=cov_norm,
        engine=chosen,
        threads=threads,
    )


def value_and_grad(
    x: Any, y: Any, *, weights: np.ndarray, c1: float, c2: float, cov_norm: float
) -> tuple[float, Any]:
    """Mean valid SSIM and its gradient with respect to ``y`` of one block (no channel axis).

    :func:`pipeline.kernels.gradient.ssim_value_and_grad`'s numbers: NumPy float64
    planes take its compiled form (:mod:`pipeline.kernels.cpu.gradient`, the same
    operations in the same order, the same bits), every other block (CuPy, volumes)
    its array form.
    """
    if array_module(x, y) is np and x.ndim == 2 and x.dtype == y.dtype == np.float64:
        from pipeline.kernels.cpu.gradient import value_map_and_grad

        product, gradient = value_map_and_grad(x, y, weights, c1, c2, cov_norm)
        return float(product.mean(dtype=np.float64)), gradient
    return ssim_value_and_grad(x, y, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm)


def _magnitude(x: np.ndarray, y: np.ndarray) -> float:
    """A bound on ``|pixel|`` of two NumPy images (the dtype's, for small integers)."""
    bound = 0.0
    for a in (x, y):
        if a.dtype.kind in "ui" and a.dtype.itemsize <= 4:
            info = np.iinfo(a.dtype)
            bound = max(bound, float(max(-int(info.min), int(info.max))))
        elif a.size:
            bound = max(bound, abs(float(a.max())), abs(float(a.min())))
    return bound
