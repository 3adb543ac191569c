"""SSIM math on one block: no Dask, no xarray here (the kernels sit below them).

``reference`` is the float64 oracle, ``fused`` the compiled CPU kernel (numba,
imported on first use), ``gpu`` the CuPy kernel (CuPy imported on first use);
``dispatch.block_maps`` picks one.
"""

from pipeline.kernels.dispatch import ENGINES, block_maps, block_score, resolve_engine
from pipeline.kernels.reference import MAP_NAMES, filter_valid, ssim_maps
from pipeline.kernels.windows import gaussian_window, uniform_window, window_weights

__all__ = [
    "ENGINES",
    "MAP_NAMES",
    "block_maps",
    "block_score",
    "filter_valid",
    "gaussian_window",
    "resolve_engine",
    "ssim_maps",
    "uniform_window",
    "window_weights",
]
