"""Region-``all`` statistics of SSIM maps reduced on the device (CuPy).

The packed layout of :mod:`pipeline.kernels.statistics` (``FIELDS`` then the
histogram) and the rules of the CPU reductions (:mod:`pipeline.kernels.cpu.partials`),
computed where the maps are: only the small packed row crosses to the host,
never a map. Sums and the squared deviations
about the mean are float64 reductions of the float32 maps (two passes, as on
the CPU); the histogram bins follow ``np.histogram(range=(-1, 1))`` with the
same correction against the edges and the same clipping of values a rounding
error outside [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module, to_host
from pipeline.kernels.statistics import FIELDS, HIST, MAX, MIN, bin_edges

__all__ = ["device_whole_statistics"]


def device_whole_statistics(maps: dict[str, Any], bins: int) -> np.ndarray:
    """Packed statistics ``(len(FIELDS) + bins,)`` of one image's device maps (region ``all``).

    Parameters
    ----------
    maps : dict of cupy.ndarray (or numpy.ndarray)
        ``ssim``, ``luminance``, ``contrast``, ``structure``, 2-D, same shape.
    bins : int
        Histogram bins over [-1, 1].
    """
    ssim = maps["ssim"]
    cupy = array_module(ssim)  # CuPy on a device; NumPy in the tests of the arithmetic
    out = np.zeros(len(FIELDS) + bins)
    count = ssim.size
    if count == 0:
        out[MIN] = np.inf
        out[MAX] = -np.inf
        return out
    values = ssim.astype(cupy.float64).ravel()
    total = values.sum()
    deviation = values - total / count
    edges = cupy.asarray(bin_edges(bins))
    clipped = cupy.clip(values, -1.0, 1.0)
    index = cupy.minimum(((clipped + 1.0) * (bins / 2.0)).astype(cupy.int64), bins - 1)
    index -= (clipped < edges[index]).astype(cupy.int64)
    index += ((index != bins - 1) & (clipped >= edges[cupy.minimum(index + 1, bins)])).astype(
        cupy.int64
    )
    device_row = cupy.concatenate(
        [
            cupy.stack(
                [
                    total,
                    (deviation * deviation).sum(),
                    maps["luminance"].sum(dtype=cupy.float64),
                    maps["contrast"].sum(dtype=cupy.float64),
                    maps["structure"].sum(dtype=cupy.float64),
                    values.min(),
                    values.max(),
                ]
            ),
            cupy.bincount(index, minlength=bins).astype(cupy.float64),
        ]
    )
    out[0] = count
    host = to_host(device_row)  # the one transfer: 7 + bins numbers
    out[1 : MAX + 1] = host[:MAX]
    out[HIST:] = host[MAX:]
    return out
