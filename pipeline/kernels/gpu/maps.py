"""SSIM maps of a 2-D block on a CUDA device (CuPy).

The same numbers as :func:`pipeline.kernels.reference.ssim_maps` on CuPy
arrays. CuPy is imported inside the functions, never at module level, so that
importing :mod:`pipeline` (or this module) never needs CUDA.

:func:`gpu_maps` takes the one-launch kernel of :mod:`pipeline.kernels.gpu.fused`
for windows of up to 31 taps (float32 moments centred on each window; its
earlier float64 version measured on an H100 4-6x faster than the path below,
15-26x cuCIM, ``benchmarks/README-gpu.md``), and the filter-then-combine path
of this module for wider windows or when asked (``implementation="cupyx"``).

The cupyx path's design, and why:

* The five moment images (x, y, x^2, y^2, xy) are stacked into one
  ``(5, rows, cols)`` float64 array and filtered with two
  ``cupyx.scipy.ndimage.correlate1d`` launches (vertical, then horizontal),
  each followed by a crop to the 'valid' region. Two launches for all five
  moments instead of ten Gaussian filters (what scikit-image and cuCIM do),
  and the separable passes cost ``2 * win_size`` taps per pixel, not
  ``win_size ** 2``.
* float64 for the moments: ``sigma_x^2 = E[x^2] - mu_x^2`` cancels badly in
  float32 for data far from zero (see :mod:`pipeline.kernels.cpu.fused`), and
  whole-image filters cannot centre each window as the fused kernel does. This
  path is bound by memory traffic (ten float64 images) more than arithmetic; on
  consumer GPUs (float64 at 1/32-1/64 of float32) it is the slow path, taken
  only for windows wider than the fused kernel's.
* One fused ``ElementwiseKernel`` turns the filtered moments into every map
  (l, c, s, cs, SSIM), in float64, stored as float32: one read of the moments
  and one write per map instead of the ~20 temporaries of array expressions.
* The uniform window uses the same taps path (``win_size`` equal taps): on a
  GPU the taps are cheap and a running sum would serialise a row per thread.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["gpu_maps"]

# Wang et al. (2004) eqs. 6-13 with C3 = C2 / 2, from the windowed moments.
_MOMENTS_TO_MAPS = """
    const double sigma_x_sq = cov_norm * (m_xx - m_x * m_x);
    const double sigma_y_sq = cov_norm * (m_yy - m_y * m_y);
    const double sigma_xy = cov_norm * (m_xy - m_x * m_y);
    const double lum = (2.0 * m_x * m_y + c1) / (m_x * m_x + m_y * m_y + c1);
    const double denominator = sigma_x_sq + sigma_y_sq + c2;
    const double cs_value = (2.0 * sigma_xy + c2) / denominator;
    ssim = (float)(lum * cs_value);
    cs = (float)cs_value;
"""

_COMPONENTS = """
    // Rounding can leave a variance a hair below zero; the square root needs >= 0.
    const double sigma_x = sqrt(fmax(sigma_x_sq, 0.0));
    const double sigma_y = sqrt(fmax(sigma_y_sq, 0.0));
    const double c3 = 0.5 * c2;
    luminance = (float)lum;
    contrast = (float)((2.0 * sigma_x * sigma_y + c2) / denominator);
    structure = (float)((sigma_xy + c3) / (sigma_x * sigma_y + c3));
"""

_IN_PARAMS = (
    "float64 m_x, float64 m_y, float64 m_xx, float64 m_yy, float64 m_xy, "
    "float64 c1, float64 c2, float64 cov_norm"
)


@functools.cache
def _combine_kernels() -> tuple[Any, Any]:
    """The two fused combination kernels (without / with components), built once."""
    import cupy

    maps_only = cupy.ElementwiseKernel(
        _IN_PARAMS,
        "float32 ssim, float32 cs",
        _MOMENTS_TO_MAPS,
        "pipeline_ssim_maps",
    )
    with_components = cupy.ElementwiseKernel(
        _IN_PARAMS,
        "float32 ssim, float32 cs, float32 luminance, float32 contrast, float32 structure",
        _MOMENTS_TO_MAPS + _COMPONENTS,
        "pipeline_ssim_maps_components",
    )
    return maps_only, with_components


def _valid_moments(x: Any, y: Any, weights: np.ndarray) -> Any:
    """Windowed means of x, y, x^2, y^2, xy on the 'valid' region, shape ``(5, rows, cols)``."""
    import cupy
    import cupyx.scipy.ndimage as ndimage

    radius = len(weights) // 2
    rows, cols = x.shape
    x64 = x.astype(cupy.float64, copy=False)
    y64 = y.astype(cupy.float64, copy=False)
    moments = cupy.empty((5, rows, cols), dtype=cupy.float64)
    moments[0] = x64
    moments[1] = y64
    cupy.multiply(x64, x64, out=moments[2])
    cupy.multiply(y64, y64, out=moments[3])
    cupy.multiply(x64, y64, out=moments[4])
    taps = cupy.asarray(weights, dtype=cupy.float64)
    # Border modes never matter: the rows and columns they touch are cropped.
    vertical = ndimage.correlate1d(moments, taps, axis=1, mode="constant")
    del moments
    vertical = vertical[:, radius : rows - radius]
    horizontal = ndimage.correlate1d(vertical, taps, axis=2, mode="constant")
    return horizontal[:, :, radius : cols - radius]


def gpu_maps(
    x: Any,
    y: Any,
    *,
    weights: np.ndarray,
    uniform: bool,
    c1: float,
    c2: float,
    cov_norm: float = 1.0,
    components: bool = True,
    implementation: str = "auto",
) -> dict[str, Any]:
    """SSIM maps of a 2-D CuPy block on its 'valid' region.

    Parameters
    ----------
    x, y : cupy.ndarray
        2-D images of the same shape, any real dtype.
    weights : numpy.ndarray
        The separable 1-D window.
    uniform : bool
        The window is a box; accepted for symmetry with the CPU kernel (the
        GPU path filters with taps either way).
    c1, c2 : float
        ``C1 = (K1 L)^2`` and ``C2 = (K2 L)^2``; ``C3 = C2 / 2``.
    cov_norm : float
        Factor on the local (co)variances.
    components : bool
        Also return ``luminance``, ``contrast`` and ``structure``.
    implementation : str
        ``"fused"``: the one-launch kernel of :mod:`pipeline.kernels.gpu.fused`
        (window radius up to its ``MAX_RADIUS``); ``"cupyx"``: the filter-then-
        combine path of this module; ``"auto"``: fused where the window allows.

    Returns
    -------
    dict of cupy.ndarray
        float32 maps ``ssim``, ``cs`` (and the components) on the device,
        shape ``(rows - win_size + 1, cols - win_size + 1)``.
    """
    del uniform  # same taps path for every window on the device
    if implementation not in ("auto", "fused", "cupyx"):
        raise ValueError(
            f"implementation must be 'auto', 'fused' or 'cupyx' (got {implementation!r})"
        )
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"the GPU kernel needs two 2-D arrays of the same shape (got {x.shape} and {y.shape})"
        )
    if len(weights) > min(x.shape):
        raise ValueError(
            f"weights must have at most min(shape) taps (got {len(weights)} for shape {x.shape})"
        )
    from pipeline.kernels.gpu.fused import MAX_RADIUS, fused_gpu_maps

    fits = len(weights) // 2 <= MAX_RADIUS
    if implementation == "fused" and not fits:
        raise ValueError(
            f"the fused GPU kernel takes windows of at most {2 * MAX_RADIUS + 1} taps "
            f"(got {len(weights)}); use implementation='cupyx'"
        )
    if implementation == "fused" or (implementation == "auto" and fits):
        return fused_gpu_maps(
            x, y, weights=weights, c1=c1, c2=c2, cov_norm=cov_norm, components=components
        )
    moments = _valid_moments(x, y, weights)
    maps_only, with_components = _combine_kernels()
    args = (*moments, float(c1), float(c2), float(cov_norm))
    if components:
        ssim, cs, luminance, contrast, structure = with_components(*args)
        return {
            "ssim": ssim,
            "cs": cs,
            "luminance": luminance,
            "contrast": contrast,
            "structure": structure,
        }
    ssim, cs = maps_only(*args)
    return {"ssim": ssim, "cs": cs}
