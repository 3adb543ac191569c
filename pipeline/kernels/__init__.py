"""SSIM math on one block: no Dask, no xarray here (DESIGN.md)."""

from pipeline.kernels.dispatch import ENGINES, block_maps
from pipeline.kernels.reference import MAP_NAMES, filter_valid, ssim_maps
from pipeline.kernels.windows import gaussian_window, uniform_window, window_weights

__all__ = [
    "ENGINES",
    "MAP_NAMES",
    "block_maps",
    "filter_valid",
    "gaussian_window",
    "ssim_maps",
    "uniform_window",
    "window_weights",
]
