"""Regions of an image that get their own statistics: the whole image, a grid, label masks.

Every valid-map pixel belongs to region ``all`` and to at most one further
region. Membership is decided by the pixel's position in the image: a pixel of
the 'valid' SSIM map stands for the window centred on image pixel
``(y + radius, x + radius)``, and that centre's grid tile or label is the
region it counts toward. Tiles along the border therefore count fewer pixels
(the first and last ``radius`` rows and columns have no valid window).

Specs (parsed by :func:`pipeline.reductions.region_spec.parse_region_spec`):
``"all"``; ``"RxC"`` — R rows by C columns of near-equal tiles named
``r{i}c{j}`` (tile row ``i = floor(y * R / H)``); ``"256px"`` — square tiles of
256 pixels from the top-left corner (the last row and column of tiles may be
smaller); ``"labels"`` — an integer label mask of shape ``(y, x)`` (shared by
all images) or ``(image, y, x)``; with ``label_names`` only those label values
are regions (named as given) and any other non-zero value in the mask is an
error (read once, up front); otherwise every non-zero label value found is a
region named ``label{value}``. Label 0 is background: it counts only toward ``all``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from pipeline.inputs.options import InputOptions
from pipeline.inputs.sources import open_array_checked
from pipeline.reductions.region_spec import RegionSpec, parse_region_spec

__all__ = ["ALL_REGION", "RegionPlan", "parse_regions", "region_ids"]

ALL_REGION = "all"


@dataclass(frozen=True)
class RegionPlan:
    """The regions of one run: names (``all`` first) and how to find a pixel's region.

    ``row_index``/``col_index`` map an image row/column to its grid tile row/column
    (grids); ``label_values`` are the sorted label values that are regions and
    ``labels`` the lazy mask shaped ``(1 or image, y, x)`` (label masks).
    """

    names: tuple[str, ...]
    kind: str
    grid_cols: int = 0
    row_index: np.ndarray | None = None
    col_index: np.ndarray | None = None
    label_values: np.ndarray | None = None
    labels: da.Array | None = None

    @property
    def n_sub(self) -> int:
        """Number of regions besides ``all``."""
        return len(self.names) - 1


def parse_regions(
    spec: str | RegionSpec,
    image_shape: tuple[int, int],
    *,
    n_images: int,
    labels: Any = None,
    label_names: Mapping[int, str] | None = None,
    options: InputOptions | None = None,
) -> RegionPlan:
    """The :class:`RegionPlan` for a spec and image shape ``(H, W)``; all checks done here.

    A Zarr label mask is read once here (the labels present); a chunk of it that is
    missing (with ``options.missing_chunks="fail"``) or cannot be decoded refuses the
    run before any image is read: every pair's regions depend on it.

    Raises
    ------
    ValueError
        A spec that does not parse, a label mask of the wrong shape or dtype.
    """
    height, width = image_shape
    parsed = parse_region_spec(spec)
    if parsed.kind == "all":
        return RegionPlan(names=(ALL_REGION,), kind="all")
    if parsed.kind == "labels":
        return _label_plan(labels, label_names, image_shape, n_images, options)
    if parsed.kind == "grid":
        rows, cols = parsed.rows, parsed.cols
        row_index = np.arange(height) * rows // height
        col_index = np.arange(width) * cols // width
    else:
        size = parsed.tile
        rows, cols = -(-height // size), -(-width // size)
        row_index = np.arange(height) // size
        col_index = np.arange(width) // size
    names = tuple(f"r{i}c{j}" for i in range(rows) for j in range(cols))
    return RegionPlan(
        names=(ALL_REGION, *names),
        kind="grid",
        grid_cols=cols,
        row_index=row_index.astype(np.intp),
        col_index=col_index.astype(np.intp),
    )


def _label_plan(
    labels: Any,
    label_names: Mapping[int, str] | None,
    image_shape: tuple[int, int],
    n: int,
    options: InputOptions | None,
) -> RegionPlan:
    if labels is None:
        raise ValueError("regions='labels' needs labels (a label mask array or Zarr path)")
    mask, label, status = open_array_checked(labels, "labels", options=options)
    if mask.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integers (got dtype {mask.dtype} from {label})")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3 or mask.shape[1:] != image_shape or mask.shape[0] not in (1, n):
        raise ValueError(
            f"labels must have shape {image_shape} or {(n, *image_shape)} to match the images "
            f"(got {tuple(labels.shape) if hasattr(labels, 'shape') else tuple(mask.shape)} "
            f"from {label})"
        )
    # The labels present: one pass over the mask (small next to the images), up front.
    if status is None:
        found = np.unique(np.asarray(da.unique(mask).compute()))
    else:
        unique, statuses = dask.compute(da.unique(mask), status)
        found = np.unique(np.asarray(unique))
        bad = [str(s) for s in np.asarray(statuses).ravel() if s != "ok"]
        if bad:
            more = f" (and {len(bad) - 1} more label image(s))" if len(bad) > 1 else ""
            raise ValueError(f"labels from {label} cannot be used: {bad[0]}{more}")
    if label_names:
        values = np.array(sorted(int(v) for v in label_names), dtype=np.int64)
        names = tuple(str(label_names[int(v)]) for v in values)
        unnamed = sorted(int(v) for v in set(found.tolist()) - set(values.tolist()) - {0})
        if unnamed:
            # Counting them nowhere but 'all' would make the regions silently miss pixels.
            shown = ", ".join(str(v) for v in unnamed[:10]) + (" ..." if len(unnamed) > 10 else "")
            raise ValueError(
                f"labels from {label} hold value(s) {shown} that label_names does not name "
                f"(named: {', '.join(str(v) for v in values)}); add them to label_names or "
                "set those pixels to 0 (background, counted only in 'all')"
            )
    else:
        values = found[found != 0].astype(np.int64)
        names = tuple(f"label{v}" for v in values)
    if ALL_REGION in names:
        raise ValueError(f"label_names may not use the reserved name {ALL_REGION!r}")
    return RegionPlan(names=(ALL_REGION, *names), kind="labels", label_values=values, labels=mask)


def region_ids(
    plan: RegionPlan,
    rows: tuple[int, int],
    cols: tuple[int, int],
    n_images: int,
    label_block: np.ndarray | None = None,
) -> np.ndarray | None:
    """Region index (0-based, ``-1`` for none) of each valid-map pixel of a block.

    ``rows``/``cols`` are the image coordinates ``[start, stop)`` of the window
    centres the block's map covers; ``label_block`` is the label mask at those
    centres, shaped ``(images or 1, h, w)``. Returns ``(images, h, w)`` or None
    when the plan has no regions besides ``all``.
    """
    height, width = rows[1] - rows[0], cols[1] - cols[0]
    if plan.kind == "all":
        return None
    if plan.kind == "grid":
        assert plan.row_index is not None and plan.col_index is not None
        row = plan.row_index[rows[0] : rows[1]]
        col = plan.col_index[cols[0] : cols[1]]
        ids = row[:, None] * plan.grid_cols + col[None, :]
        return np.broadcast_to(ids, (n_images, height, width))
    assert plan.label_values is not None and label_block is not None
    values = plan.label_values
    if values.size == 0:
        return np.full((n_images, height, width), -1, dtype=np.intp)
    position = np.searchsorted(values, label_block).clip(0, values.size - 1)
    ids = np.where(values[position] == label_block, position, -1)
    return np.broadcast_to(ids, (n_images, height, width))
