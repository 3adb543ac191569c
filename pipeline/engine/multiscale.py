"""MS-SSIM of every image of a stack (or of one volume), chunk by chunk.

What :func:`pipeline.ms_ssim` computes in memory, as one lazy graph per run:

* at scale ``j`` the mean of the 'valid' cs map (the SSIM map at the last
  scale) is a sum and a count per image and channel; each overlapping block
  (depth = window radius, ``boundary="none"``) yields the part of the valid map
  centred in it, exactly as the single-scale engine, and the partial sums add up
  over blocks;
* between scales both images are halved with ``msssim.m``'s 2x2 mean and
  symmetric extension on odd sides, tiled by
  :func:`pipeline.tiling.downsample.downsample_array`: chunks are moved to even
  boundaries first (a pair of pixels never straddles two chunks) and the odd
  trailing sample of an axis is mirrored inside the last chunk. The pyramid is
  then identical, sample for sample, to the in-memory one;
* after each halving, neighbouring chunks are merged back to about the size
  they had at the first scale (never below the overlap depth), so that coarse
  scales are few tasks, not ever more tiny ones;
* where every image is one chunk in space (folders of whole images, a stack
  chunked by image), each task instead builds its images' pyramids in memory, as
  :func:`pipeline.ms_ssim` does (:func:`_whole_images`): one task per chunk of
  images, not four per scale, and the same pyramid and means;
* per image and channel the means combine as ``relu(ssim_M)^w_M *
  prod_j relu(cs_j)^w_j`` (:func:`pipeline.kernels.multiscale.combine_scales`),
  then the channels are averaged (``color_mode="channels"``) or the pyramid is
  built on BT.601 luma from the start (``"luma"``), as :func:`pipeline.ms_ssim`.

The only difference to the in-memory value is the order of the float64 sums
(within 1e-12 on the reference engine). On the fused CPU engine each block's sum is
its mean from the kernel's float64 deficit sums (:func:`pipeline.kernels.dispatch.block_cs_score`,
:func:`~pipeline.kernels.dispatch.block_score`) times its window count, as the
in-memory ``ms_ssim`` takes its means, not a sum of the float32 map, which rounds
by up to 3e-8 near 1 the same way on every pixel of a flat pair; scales whose whole
valid map has at most ``PRECISE_PIXELS`` pixels are computed in float64 there
(:func:`pipeline.kernels.multiscale.precise_means`), as in memory. The GPU and
reference engines still sum their maps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from pipeline.kernels import block_maps
from pipeline.kernels.backend import to_device, to_host
from pipeline.kernels.dispatch import resolve_engine, scale_mean
from pipeline.kernels.multiscale import (
    PRECISE_PIXELS,
    combine_scales,
    pyramid_dtype,
    pyramid_ms_ssim,
)
from pipeline.metrics.colour import to_luma
from pipeline.metrics.multiscale import check_msssim_size
from pipeline.tiling.chunks import map_valid_blocks_nd, merge_small_chunks
from pipeline.tiling.downsample import downsample_array

if TYPE_CHECKING:
    from pipeline.reductions.kernel_spec import KernelSpec

__all__ = ["check_ms_ssim_settings", "ms_ssim_attrs", "ms_ssim_graph"]

_DOWNSAMPLING = "msssim.m: 2x2 mean, symmetric extension on odd sides"


def check_ms_ssim_settings(
    spatial_shape: tuple[int, ...],
    weights: tuple[float, ...],
    win_size: int,
    *,
    downsample: str | None,
    profile: str,
) -> None:
    """The checks :func:`pipeline.ms_ssim` makes, with the same messages, before any compute."""
    if downsample is not None:
        raise ValueError(
            f"ms_ssim does not take profile {profile!r}: it downsamples the images itself "
            "and MS-SSIM has its own scales; use profile='wang2004'"
        )
    check_msssim_size(spatial_shape, len(weights), win_size)


def ms_ssim_attrs(weights: tuple[float, ...]) -> dict[str, Any]:
    """Provenance of the ``ms_ssim`` variable for the Dataset attrs (NetCDF-safe values)."""
    return {
        "ms_ssim_scales": len(weights),
        "ms_ssim_weights": list(weights),
        "ms_ssim_downsampling": _DOWNSAMPLING,
        "ms_ssim_negative_rule": "each mean cs and the last mean SSIM clamped at 0",
    }


def _kernel_args(spec: KernelSpec) -> dict[str, Any]:
    """The kernels' window, constants and threads of a run, as the dispatch functions take them."""
    return {
        "window": spec.window,
        "weights": np.asarray(spec.weights),
        "c1": spec.c1,
        "c2": spec.c2,
        "cov_norm": spec.cov_norm,
        "threads": spec.kernel_threads,
    }


def _scale_sums(
    x: da.Array, y: da.Array, spec: KernelSpec, axes: tuple[int, ...], name: str
) -> da.Array:
    """``(image, channel, 2)``: sum and count of the valid ``name`` map per image and channel.

    Where the fused engine runs, each block's mean comes from the kernel's deficit
    sums, or in float64 when the whole valid map of the scale is small (the in-memory
    ``ms_ssim``'s choices), times its window count.
    """
    channels = int(x.shape[-1])
    win_size = len(spec.weights)
    precise = math.prod(int(x.shape[axis]) - win_size + 1 for axis in axes) <= PRECISE_PIXELS

    def on_block(xb: np.ndarray, yb: np.ndarray, *, centres: tuple[tuple[int, int], ...]) -> Any:
        n = xb.shape[0]
        out = np.zeros((n, channels, 2))
        if any(stop <= start for start, stop in centres):
            return out  # the block lies in the border band: no valid window centre
        # Blocks that float32 cannot hold go to the float64 reference (same numbers).
        engine = spec.engine_for(xb, yb)
        if spec.device == "gpu":
            xb, yb = to_device(xb, yb)
        args = _kernel_args(spec)
        for i in range(n):
            for c in range(channels):
                a, b = xb[i, ..., c], yb[i, ..., c]
                if resolve_engine(engine, a, b) == "fused":
                    # The mean from the kernel's deficit sums, no map stored.
                    count = math.prod(s - win_size + 1 for s in a.shape)
                    mean = scale_mean(a, b, name, **args, engine="fused", precise=precise)
                    out[i, c, 0] = mean * count
                    out[i, c, 1] = count
                    continue
                maps = block_maps(a, b, **args, components=False, engine=engine)
                values = maps[name]
                out[i, c, 0] = float(to_host(values.sum(dtype=np.float64)))
                out[i, c, 1] = values.size
        return out

    per_block = map_valid_blocks_nd(
        on_block, [x, y], depth=spec.depth, axes=axes, out_tail=(channels, 2)
    )
    return per_block.sum(axis=axes)


def _luma_block(block: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB block, keeping a channel axis of one."""
    return to_luma(block, -1)[..., None]


def _scale_mean(a: Any, b: Any, spec: KernelSpec, name: str, precise: bool) -> float:
    """Mean of one whole image's valid ``name`` map at one scale, as a block of the tiled path.

    The fused engine's mean from its deficit sums (or in float64 where ``precise``);
    the other engines average their map in float64.
    """
    args = _kernel_args(spec)
    engine = spec.engine_for(a, b)
    if resolve_engine(engine, a, b) == "fused":
        return scale_mean(a, b, name, **args, engine="fused", precise=precise)
    values = block_maps(a, b, **args, components=False, engine=engine)[name]
    return float(to_host(values.sum(dtype=np.float64))) / values.size


def _whole_images(
    x: da.Array, y: da.Array, spec: KernelSpec, axes: tuple[int, ...], weights: tuple[float, ...]
) -> da.Array:
    """MS-SSIM per image where each image is one chunk in space: its pyramid in memory.

    Per image and channel, as :func:`pipeline.ms_ssim`
    (:func:`~pipeline.kernels.multiscale.pyramid_ms_ssim`), each scale's mean taken as a
    block of the tiled path takes it (:func:`_scale_mean`).
    """
    win_size = len(spec.weights)

    def mean(a: Any, b: Any, name: str, precise: bool) -> float:
        return _scale_mean(a, b, spec, name, precise)

    def on_block(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        out = np.empty(xb.shape[0])
        for i in range(xb.shape[0]):
            per_channel = [
                pyramid_ms_ssim(xb[i, ..., c], yb[i, ..., c], weights, win_size, mean)
                for c in range(xb.shape[-1])
            ]
            out[i] = float(np.mean(per_channel))
        return out

    dropped = list(range(1, x.ndim))
    return da.map_blocks(
        on_block, x, y, drop_axis=dropped, chunks=(x.chunks[0],), dtype=np.float64, meta=np.empty(0)
    )


def _combine(sums: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """MS-SSIM per image from ``(image, scale, channel, 2)`` sums and counts."""
    means = sums[..., 0] / sums[..., 1]
    out = np.empty(sums.shape[0])
    for i in range(sums.shape[0]):
        per_channel = [
            combine_scales(means[i, :-1, c].tolist(), float(means[i, -1, c]), weights)
            for c in range(sums.shape[2])
        ]
        out[i] = float(np.mean(per_channel))
    return out


def ms_ssim_graph(
    reference: da.Array, generated: da.Array, *, spec: KernelSpec, weights: tuple[float, ...]
) -> da.Array:
    """Lazy MS-SSIM, one value per image, of two ``(image, *spatial, channel)`` stacks.

    Parameters
    ----------
    reference, generated : dask.array.Array
        Chunked as the single-scale run reads them (spatial chunks at least
        ``spec.depth`` long, the channel axis one chunk).
    spec : KernelSpec
        Window, constants, engine, colour mode and device of the run.
    weights : tuple of float
        One exponent per scale (their count is the number of scales).

    Returns
    -------
    dask.array.Array
        float64 ``(image,)``, chunked along ``image`` like the inputs.
    """
    axes = tuple(range(1, reference.ndim - 1))
    x, y = reference, generated
    if spec.color_mode == "luma" and int(x.shape[-1]) == 3:
        luma_chunks = (*x.chunks[:-1], (1,))
        x, y = (da.map_blocks(_luma_block, a, chunks=luma_chunks, dtype=np.float64) for a in (x, y))
    whole = all(len(x.chunks[axis]) == 1 for axis in axes) and x.chunks == y.chunks
    if whole and spec.device != "gpu":
        return _whole_images(x, y, spec, axes, weights)
    target = {axis: max(x.chunks[axis]) for axis in axes}
    pixels = np.result_type(x.dtype, y.dtype)
    sums = []
    for scale in range(len(weights)):
        if scale > 0:
            dtype = pyramid_dtype(pixels, scale)
            x, y = downsample_array(x, 2, axes, dtype), downsample_array(y, 2, axes, dtype)
            merged = {
                axis: merge_small_chunks(x.chunks[axis], max(spec.depth, target[axis]))
                for axis in axes
            }
            x, y = x.rechunk(merged), y.rechunk(merged)
        name = "cs" if scale < len(weights) - 1 else "ssim"
        sums.append(_scale_sums(x, y, spec, axes, name))
    stacked = da.stack(sums, axis=1).rechunk({1: -1, 2: -1, 3: -1})
    return stacked.map_blocks(
        _combine, weights=weights, drop_axis=[1, 2, 3], dtype=np.float64, meta=np.empty(0)
    )
