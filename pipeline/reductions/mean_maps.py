"""Mean SSIM maps per size group: sums of per-pair valid maps, never the maps themselves.

When every image of a size group has one shape (aligned faces, fixed crops), the
run adds up, pixel by pixel, the valid ``ssim``, ``luminance``, ``contrast`` and
``structure`` maps of the group's ``ok`` pairs, and the reference pixels at the
same window centres (the backdrop a heat map is drawn over). Each commit batch
gives one :class:`MapSums` (its ``ok`` pairs' sums and their number); the mean
is the sum of the batches' sums over the sum of their counts.

The map is the SSIM *valid* map: pixel ``(i, j)`` is the window centred on image
pixel ``(i + depth, j + depth)``, ``depth`` the window's half-width, so a
``H x W`` group has ``(H - 2 depth) x (W - 2 depth)`` maps. A colour map is the
pixel's mean of the per-channel maps (as the SSIM value is the mean of the
channels' scores); the reference backdrop is the mean of its channels.

Nothing here computes a map: the statistics kernels add each map row to the
block's sums in the same pass (:func:`pipeline.engine.graphs.statistics_graphs`),
and :func:`pipeline.engine.graphs.mean_map_graph` sums the kernels' maps again
for a batch that has a failed pair (summed over its ``ok`` pairs only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.kernels.backend import to_host
from pipeline.kernels.cpu.partials import add_centre_pixels

__all__ = [
    "AUTO_MAX_PIXELS",
    "COMPONENTS",
    "MapSums",
    "add_maps",
    "add_reference",
    "block_sums",
    "mean_maps_enabled",
]

# The stacked maps, in order: the four SSIM maps, then the reference backdrop.
COMPONENTS = ("ssim", "luminance", "contrast", "structure", "reference")

# mean_maps="auto": on when every size group's images have at most this many pixels
# (512 x 512). Each block task's float64 sums are 40 bytes per map pixel, held until
# its batch is added up: measured, at 1024 x 1024 (one image per chunk) they added
# about 50 % to the run's peak memory and several times its wall clock, at 2048 x 2048
# and 4096 x 4096 several times both; at 512 x 512 (folder of PNG) 12-25 % memory.
# Larger images: mean_maps=True; a run of a few huge images has no use for a "mean"
# map anyway (it is each image's own map, which save_maps stores).
AUTO_MAX_PIXELS = 512 * 512


@dataclass
class MapSums:
    """The sums of the valid maps of ``count`` pairs of one size group.

    Attributes
    ----------
    sums : numpy.ndarray
        ``(component, y, x)`` float64 sums, components in :data:`COMPONENTS` order.
    count : int
        How many pairs were added.
    """

    sums: np.ndarray
    count: int

    @classmethod
    def zeros(cls, shape: tuple[int, int]) -> MapSums:
        return cls(np.zeros((len(COMPONENTS), *shape)), 0)

    def add(self, other: MapSums) -> None:
        """Add ``other``'s pairs (same map shape) to these sums, in place.

        Sums of no pair yet (zeros) take over ``other``'s array, C-contiguous,
        instead of adding it to their zeros: the same values without a pass over
        the maps. ``other`` is then not to be used again (a batch's sums are added
        once, to one total).
        """
        if other.sums.shape != self.sums.shape:
            raise ValueError(
                f"mean-map sums of shape {other.sums.shape} cannot be added to {self.sums.shape}"
            )
        if self.count == 0 and other.count > 0 and other.sums.dtype == np.float64:
            self.sums = np.ascontiguousarray(other.sums)
        else:
            self.sums += other.sums
        self.count += int(other.count)

    def means(self) -> np.ndarray:
        """``(component, y, x)`` means; NaN when no pair was added."""
        if self.count == 0:
            return np.full(self.sums.shape, np.nan)
        return self.sums / self.count


def block_sums(maps: dict[str, np.ndarray], x: np.ndarray, depth: int) -> np.ndarray:
    """``(1, y, x, component)`` float64 sums over the images of one overlapped block.

    ``maps`` are the kernels' valid maps of the block (``(images, h, w)``) and ``x``
    the reference block they were computed from (``(images, h + 2 depth, w + 2
    depth, channels)``): its pixels at the window centres, channel mean, are the
    last component (:func:`add_reference`). Each component is summed over the images
    on its own (no per-image stack is made).
    """
    _, h, w = maps["ssim"].shape
    sums = np.zeros((len(COMPONENTS), h, w))
    add_maps(sums, maps)
    add_reference(sums, x, depth)
    return np.moveaxis(sums, 0, -1)[None]


def add_maps(sums: np.ndarray, maps: dict[str, np.ndarray]) -> None:
    """Add the ``(images, y, x)`` maps, summed over their images, to ``(component, y, x)`` sums."""
    for k, name in enumerate(COMPONENTS[:-1]):
        sums[k] += np.sum(to_host(maps[name]), axis=0, dtype=np.float64)


def add_reference(sums: np.ndarray, x: Any, depth: int) -> None:
    """Add the reference backdrop (last component) of block ``x`` to ``(component, y, x)`` sums.

    ``x`` is the overlapped ``(images, h + 2 depth, w + 2 depth, channels)`` reference
    block the ``(h, w)`` maps were computed from: the sum over its images of its
    pixels at the window centres, channel mean.
    """
    h, w = sums.shape[1:]
    last = len(COMPONENTS) - 1
    if isinstance(x, np.ndarray) and h and w and x.shape[0]:
        add_centre_pixels(x, depth, sums, last)
        return
    centres = to_host(x)[:, depth : depth + h, depth : depth + w, :]
    sums[last] += np.sum(centres, axis=(0, 3), dtype=np.float64) / centres.shape[-1]


def mean_maps_enabled(
    setting: bool | str,
    shapes: Sequence[tuple[int, int]],
    *,
    volume: bool,
    nan_policy: str,
    output_format: str | None = None,
) -> bool:
    """Whether a run accumulates mean maps (the ``mean_maps`` setting resolved).

    ``"auto"`` (the default) is on for 2-D runs with ``nan_policy="fail"`` whose
    every size group has at most :data:`AUTO_MAX_PIXELS` pixels per image, and an
    output that holds maps (none, Zarr or NetCDF: not a CSV table); ``True`` is
    refused where mean maps are not defined.

    Raises
    ------
    ValueError
        ``mean_maps=True`` with ``volume``, ``nan_policy="mask"`` or a CSV output.
    """
    if setting is False:
        return False
    unsupported = None
    if volume:
        unsupported = "volume=True (one result row: its map is not a mean)"
    elif nan_policy != "fail":
        unsupported = f"nan_policy={nan_policy!r} (masked windows would differ per pixel)"
    if setting == "auto":
        fits = all(h * w <= AUTO_MAX_PIXELS for h, w in shapes)
        return unsupported is None and output_format != "csv" and fits
    if unsupported is None and output_format == "csv":
        # A per-pair table has no place for a map: not computed for nothing.
        raise ValueError(
            "mean_maps=True needs an output that holds maps (Zarr, NetCDF or none); a CSV "
            "output is a per-pair table: use mean_maps=False or another output"
        )
    if unsupported is not None:
        raise ValueError(
            f"mean_maps=True cannot be combined with {unsupported}; use mean_maps=False"
        )
    return True
