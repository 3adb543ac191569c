"""Volume mode: a stack evaluated as ONE 3-D volume with an N-D window, chunk by chunk.

With ``volume=True`` the image axis of a stack ``(z, y, x[, channel])`` is the
volume's ``z`` axis. The volume becomes a one-row pair ``(1, z, y, x, channel)``
(:func:`as_volume_pair`); its blocks overlap by the window radius along ``z``,
``y`` and ``x`` (``boundary="none"``), so each block's 3-D 'valid' map is the
piece of the whole volume's valid map centred in it, as for 2-D tiles
(:mod:`pipeline.tiling.chunks`). The 3-D maps come from the reference kernel (the fused
and GPU kernels are 2-D); the sample covariance factor uses ``N = win_size**3``,
as :func:`pipeline.ssim` and scikit-image do on a volume.

Results: one row, ``image = 0``, ``reference``/``generated`` naming the two
sources. Regions apply to ``y`` and ``x`` through all of ``z``: a grid ``"RxC"``
or ``"256px"`` cuts every slice alike (tile ``r{i}c{j}`` is a column through the
volume); a label mask is either ``(y, x)`` (the same for every slice) or a label
volume ``(z, y, x)``. Membership is by the position of the window centre, as for
images. Chunks: ``chunks=(z, y, x)`` tiles the volume; ``"auto"`` cuts cubes of
about ``chunk_pixels`` voxels in whole source chunks. Maps are not saved in
volume mode. A slice that failed to load makes the whole volume fail.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from pipeline.inputs.sources import SourcePair
from pipeline.kernels import block_maps
from pipeline.kernels.backend import to_device, to_host
from pipeline.kernels.statistics import FIELDS, empty_statistics
from pipeline.metrics.colour import to_luma
from pipeline.reductions.regions import RegionPlan, region_ids
from pipeline.reductions.squared_error import add_squared_error
from pipeline.reductions.statistics import block_statistics
from pipeline.results.schema import STATUS_OK
from pipeline.tiling.chunks import map_valid_blocks_nd, merge_block_statistics, merge_small_chunks

if TYPE_CHECKING:
    from pipeline.reductions.kernel_spec import KernelSpec

__all__ = [
    "as_volume_pair",
    "check_volume_settings",
    "is_volume_pair",
    "plan_volume_chunks",
    "spatial_shape",
    "volume_statistics_graph",
]

_VOLUME_AXES = (1, 2, 3)


def is_volume_pair(pair: SourcePair) -> bool:
    """Whether ``pair`` holds one volume ``(1, z, y, x, channel)``."""
    return pair.reference.ndim == 5


def spatial_shape(pair: SourcePair) -> tuple[int, ...]:
    """``(y, x)`` of a stack's images, ``(z, y, x)`` of a volume."""
    return tuple(int(n) for n in pair.reference.shape[1:-1])


def as_volume_pair(pair: SourcePair) -> SourcePair:
    """The stack ``(z, y, x, channel)`` as one volume pair ``(1, z, y, x, channel)``.

    ``native_chunks`` become the source's ``(z, y, x)`` read chunks. Failed slices
    (``pair.status``) fail the volume, their reasons joined. A volume pair is
    returned unchanged.
    """
    if is_volume_pair(pair):
        return pair
    if len(pair.groups) > 1:
        raise ValueError(
            f"volume=True needs slices of one shape (got {len(pair.groups)} size groups)"
        )
    if pair.groups:
        pair = pair.groups[0]  # a folder of one image size: its only part
    status = {}
    if pair.status:
        status[0] = "; ".join(f"slice {i}: {reason}" for i, reason in sorted(pair.status.items()))
    read_status = pair.read_status
    if read_status is not None:
        read_status = read_status.rechunk(-1).map_blocks(
            _volume_status, chunks=((1,),), dtype=object
        )
    return dataclasses.replace(
        pair,
        reference=pair.reference[None],
        generated=pair.generated[None],
        image=np.arange(1),
        reference_names=np.array([str(pair.identity.get("reference", "volume"))], dtype=object),
        generated_names=np.array([str(pair.identity.get("generated", "volume"))], dtype=object),
        identity={**pair.identity, "volume": True},
        status=status,
        read_status=read_status,
        rechunked=None,
    )


def _volume_status(slices: np.ndarray) -> np.ndarray:
    """One status for the volume from the slices' read status: ``ok`` or every failure."""
    failed = [f"slice {i}: {text}" for i, text in enumerate(slices) if text != STATUS_OK]
    return np.array(["; ".join(failed) if failed else STATUS_OK], dtype=object)


def check_volume_settings(*, engine: str, save_maps: bool) -> None:
    """Refuse what volume mode cannot do, before anything is read."""
    if engine not in ("auto", "reference"):
        raise ValueError(
            f"volume=True needs engine 'auto' or 'reference' (got {engine!r}); "
            "the fused and gpu kernels are 2-D only"
        )
    if save_maps:
        raise ValueError("save_maps is not available with volume=True (got save_maps=True)")


def _split(length: int, size: int) -> tuple[int, ...]:
    size = max(1, min(size, length))
    full, rest = divmod(length, size)
    return (size,) * full + ((rest,) if rest else ())


def plan_volume_chunks(
    shape: tuple[int, ...],
    *,
    depth: int,
    native: tuple[int, int, int],
    chunk_pixels: int,
    requested: str | tuple[int, int, int] = "auto",
    input_chunks: tuple[tuple[int, ...], ...] | None = None,
) -> tuple[tuple[int, ...], ...]:
    """Chunks of a ``(1, z, y, x, channel)`` volume, every one at least ``depth`` long.

    ``requested``: ``(z, y, x)`` chunk sides, ``"input"`` (the input's own chunks)
    or ``"auto"`` (cubes of about ``chunk_pixels`` voxels times channels, in whole
    multiples of the source's ``native`` chunks).
    """
    _, *sides, channels = (int(n) for n in shape)
    if requested == "input" and input_chunks is not None:
        spatial = [tuple(input_chunks[axis]) for axis in _VOLUME_AXES]
    elif isinstance(requested, tuple):
        spatial = [_split(n, size) for n, size in zip(sides, requested, strict=True)]
    else:
        edge = max(1, round((chunk_pixels / channels) ** (1 / 3)))
        spatial = []
        for n, unit in zip(sides, native, strict=True):
            # Whole multiples of the source chunk: no source chunk is decoded by two tasks.
            unit = max(1, min(unit, n))
            spatial.append(_split(n, min(n, max(unit, edge // unit * unit))))
    merged = tuple(merge_small_chunks(c, depth) for c in spatial)
    return ((1,), *merged, (channels,))


def _volume_maps(spec: KernelSpec, x: Any, y: Any) -> dict[str, np.ndarray]:
    """Valid 3-D maps of one ``(z, y, x, channel)`` block pair, averaged over channels."""
    channels = x.shape[-1]
    if spec.device == "gpu":
        x, y = to_device(x, y)
    if spec.color_mode == "luma" and channels == 3:
        x, y, channels = to_luma(x, 3)[..., None], to_luma(y, 3)[..., None], 1
    names = ("ssim", "luminance", "contrast", "structure")
    out: dict[str, np.ndarray] = {}
    for c in range(channels):
        maps = block_maps(
            x[..., c],
            y[..., c],
            window=spec.window,
            weights=np.asarray(spec.weights),
            c1=spec.c1,
            c2=spec.c2,
            cov_norm=spec.cov_norm,
            components=True,
            engine=spec.engine,
        )
        for name in names:
            host = np.asarray(to_host(maps[name]), dtype=np.float64)
            out[name] = host if name not in out else out[name] + host
    return {name: value / channels for name, value in out.items()} if channels > 1 else out


def volume_statistics_graph(
    pair: SourcePair,
    regions: RegionPlan,
    spec: KernelSpec,
    chunks: tuple[tuple[int, ...], ...],
    bins: int,
) -> da.Array:
    """Lazy ``(1, region, field)`` partial statistics of the volume, tree-combined over blocks.

    The same packed statistics as the 2-D engine (:mod:`pipeline.reductions.statistics`): a
    block's 3-D maps ``(dz, h, w)`` count as the rows of one image.
    """
    arrays = list(pair.chunked(chunks))
    depth_z = int(pair.reference.shape[1])
    if regions.labels is not None:
        mask = regions.labels
        if mask.shape[0] == 1:
            mask = da.broadcast_to(mask, (depth_z, *mask.shape[1:]))
        arrays.append(mask[None, ..., None].rechunk((*chunks[:4], (1,))))
    n_regions = len(regions.names)
    floats = pair.reference.dtype.kind == "f" or pair.generated.dtype.kind == "f"
    d = spec.depth

    def on_block(
        x: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray | None = None,
        *,
        centres: tuple[tuple[int, int], ...],
        own: tuple[tuple[tuple[int, int], slice], ...],
    ) -> np.ndarray:
        # MSE over the voxels the block owns, its (z, y) rows as the rows of one image.
        (_, oz), (rows, oy), (cols, ox) = own
        x_own, y_own = x[0, oz, oy, ox], y[0, oz, oy, ox]
        dz_own = x_own.shape[0]
        own_labels = None if labels is None else labels[0, oz, oy, ox, 0]
        own_ids = region_ids(regions, rows, cols, dz_own, own_labels)
        flat_own = (
            None
            if own_ids is None
            else np.ascontiguousarray(own_ids).reshape(1, -1, own_ids.shape[-1])
        )
        packed = _ssim_statistics(x, y, labels, centres)
        return add_squared_error(
            packed,
            x_own.reshape(1, -1, *x_own.shape[2:]),
            y_own.reshape(1, -1, *y_own.shape[2:]),
            flat_own,
            peak_squared=spec.peak_squared,
        )

    def _ssim_statistics(
        x: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray | None,
        centres: tuple[tuple[int, int], ...],
    ) -> np.ndarray:
        if floats:
            for name, block in (("reference", x), ("generated", y)):
                if not np.isfinite(block).all():
                    raise ValueError(f"{name} contains NaN or Inf voxels; SSIM needs finite pixels")
        if any(stop <= start for start, stop in centres):
            return empty_statistics(1, n_regions, bins)
        maps = _volume_maps(spec, x[0], y[0])
        dz, h, w = maps["ssim"].shape
        label_block = None
        if labels is not None:
            # Valid-map voxel (k, i, j) is the window centred on block voxel (k + d, i + d, j + d).
            label_block = labels[0, d : d + dz, d : d + h, d : d + w, 0]
        ids = region_ids(regions, centres[1], centres[2], dz, label_block)
        rows = {name: value.reshape(1, dz * h, w) for name, value in maps.items()}
        flat_ids = None if ids is None else np.ascontiguousarray(ids).reshape(1, dz * h, w)
        return block_statistics(rows, flat_ids, n_regions, bins)

    per_block = map_valid_blocks_nd(
        on_block,
        arrays,
        depth=d,
        axes=_VOLUME_AXES,
        out_tail=(n_regions, len(FIELDS) + bins),
        own=True,
    )
    return merge_block_statistics(per_block, axis=_VOLUME_AXES)
