"""NaN and Inf pixels: fail the pair (default) or leave out the windows they touch.

A mean over a map that holds NaN is NaN, and an Inf pixel turns its windows'
moments into NaN: a number computed over them is never right. ``evaluate``
therefore never lets a non-finite pixel reach a statistic:

* ``nan_policy="fail"`` (default): the pair fails; its ``status`` says how many
  NaN/Inf pixels each side has. The count is computed by the tasks that read
  the pixels (:func:`with_finite_check`), so every other pair is still computed,
  for in-memory arrays, Zarr stacks and float TIFF files alike.
* ``nan_policy="mask"``: every window that touches a non-finite pixel in either
  image (any channel) is left out of all statistics, in every region; the pair
  is ``ok`` and the ``nan_masked`` variable counts the windows left out.

Finite float64 pixels beyond ``1e150`` (:data:`pipeline.metrics.checks.FLOAT64_PIXEL_LIMIT`)
are treated the same way: their squares overflow float64 into Inf, so the pair
fails with its own reason (how many such pixels each side has), or their
windows are masked.

Both act block by block. A valid-map pixel of a block overlapped by ``depth``
stands for the window of the block's pixels ``[i, i + 2 depth]`` by
``[j, j + 2 depth]``, which lies inside the block, so a maximum filter of the
block's non-finite mask decides it exactly, with no neighbour needed.
"""

from __future__ import annotations

from dataclasses import replace

import dask.array as da
import numpy as np
from scipy import ndimage

from pipeline.inputs.sources import SourcePair
from pipeline.metrics.checks import FLOAT64_PIXEL_LIMIT
from pipeline.reductions.statistics import block_statistics
from pipeline.results.schema import STATUS_OK

__all__ = ["masked_block_statistics", "screen_block", "with_finite_check"]


def screen_block(
    x: np.ndarray, y: np.ndarray, depth: int, *, mask: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Blocks ``(n, h, w, c)`` with non-finite pixels zeroed, and the windows to keep.

    Returns ``(x, y, keep)``: ``keep`` is None when every window is kept (all
    pixels finite, or ``mask`` false: the pair then fails as a whole and its
    numbers are discarded; zeroing only keeps the kernels quiet), else
    ``(n, h - 2 depth, w - 2 depth)``, False for windows touching a bad pixel.
    """
    if _all_usable(x) and _all_usable(y):
        # The usual block: two reductions per side, no mask array made.
        return x, y, None
    bad = ~(_usable(x) & _usable(y))
    if not bad.any():
        return x, y, None
    x, y = np.where(bad, 0, x), np.where(bad, 0, y)
    if not mask:
        return x, y, None
    touched = ndimage.maximum_filter(
        bad.any(axis=-1).astype(np.uint8), size=(1, 2 * depth + 1, 2 * depth + 1), mode="constant"
    )
    h, w = touched.shape[1:]
    keep = touched[:, depth : h - depth, depth : w - depth] == 0
    return x, y, keep


def _all_usable(array: np.ndarray) -> bool:
    """Whether every pixel is usable: a NaN or Inf shows in the max or the min."""
    if array.size == 0:
        return True
    top, bottom = float(array.max()), float(array.min())
    limit = FLOAT64_PIXEL_LIMIT if array.dtype == np.float64 else np.inf
    return -limit <= bottom and top <= limit and np.isfinite(top) and np.isfinite(bottom)


def _usable(array: np.ndarray) -> np.ndarray:
    """Pixels SSIM can use: finite, and for float64 within :data:`FLOAT64_PIXEL_LIMIT`."""
    if array.dtype == np.float64:
        # abs(NaN) <= limit is False: one comparison covers NaN, Inf and overflow.
        return np.abs(array) <= FLOAT64_PIXEL_LIMIT
    return np.isfinite(array)


def masked_block_statistics(
    maps: dict[str, np.ndarray],
    region_ids: np.ndarray | None,
    keep: np.ndarray,
    n_regions: int,
    bins: int,
) -> np.ndarray:
    """:func:`pipeline.reductions.statistics.block_statistics` over the kept windows only."""
    n = keep.shape[0]
    # Region "all" of the kept windows is the one sub-region of a two-region plan.
    whole = block_statistics(maps, np.where(keep, 0, -1), 2, bins)
    out = np.empty((n, n_regions, whole.shape[-1]))
    out[:, 0] = whole[:, 1]
    if n_regions > 1:
        assert region_ids is not None  # a plan with regions besides "all" gives ids
        out[:, 1:] = block_statistics(maps, np.where(keep, region_ids, -1), n_regions, bins)[:, 1:]
    return out


def with_finite_check(pair: SourcePair, chunks: tuple[tuple[int, ...], ...]) -> SourcePair:
    """``pair`` whose ``read_status`` also fails pairs holding NaN or Inf pixels.

    The counts are taken from the stacks chunked as planned, so the same tasks
    that feed the SSIM kernel read them (nothing is read twice).
    """
    if pair.reference.dtype.kind != "f" and pair.generated.dtype.kind != "f":
        return pair
    sides = pair.chunked(chunks)
    axes = tuple(range(1, sides[0].ndim))
    counts = [(~da.isfinite(side)).sum(axis=axes) for side in sides]
    # Finite float64 pixels beyond the limit: their squares overflow float64.
    huge = [
        (abs(side) > FLOAT64_PIXEL_LIMIT).sum(axis=axes)
        if side.dtype == np.float64
        else da.zeros_like(count)
        for side, count in zip(sides, counts, strict=True)
    ]
    prior = pair.read_status
    if prior is None:
        prior = da.full(pair.n_images, STATUS_OK, dtype=object, chunks=(chunks[0],))

    def describe(
        status: np.ndarray,
        bad_x: np.ndarray,
        bad_y: np.ndarray,
        huge_x: np.ndarray,
        huge_y: np.ndarray,
    ) -> np.ndarray:
        out = np.asarray(status, dtype=object).copy()
        for i, (nx, ny) in enumerate(zip(bad_x, bad_y, strict=True)):
            if out[i] == STATUS_OK and nx + ny > 0:
                out[i] = (
                    f"non-finite pixels: reference has {nx} NaN or Inf pixel(s), generated "
                    f"{ny}; fix the images or set nan_policy='mask' to leave out the windows "
                    "that touch them"
                )
            elif out[i] == STATUS_OK and huge_x[i] + huge_y[i] > 0:
                out[i] = (
                    f"pixels beyond +-{FLOAT64_PIXEL_LIMIT:g}: reference has {huge_x[i]}, "
                    f"generated {huge_y[i]}; SSIM's float64 moments overflow there: rescale "
                    "both images and data_range by one factor (SSIM does not change)"
                )
        return out

    status = da.map_blocks(describe, prior, *counts, *huge, dtype=object)
    return replace(pair, read_status=status)
