"""One entry point for 'the SSIM maps of a block', whatever computes them.

Callers (the in-memory API and the tiled engine) name an engine; this module
picks the implementation. Only primitive arguments cross this boundary so the
kernels stay free of settings objects, Dask and xarray.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.backend import array_module
from pipeline.kernels.reference import ssim_maps

__all__ = ["ENGINES", "block_maps"]

ENGINES = ("auto", "reference")


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
) -> dict[str, Any]:
    """SSIM maps on the valid region of one block (no channel axis).

    ``engine="reference"`` is the float64 oracle; ``"auto"`` picks the fastest
    path available for the array type.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
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
