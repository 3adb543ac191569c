"""Box-filter-and-sample downsampling, exactly as Wang's MATLAB code does it.

Both Wang's ``ssim.m`` (2009, the automatic downsampling) and ``msssim.m`` (2003,
between MS-SSIM scales) reduce an image by an integer factor ``f`` with::

    img = imfilter(img, ones(f, f) / f^2, 'symmetric', 'same');
    img = img(1:f:end, 1:f:end);

``imfilter`` correlates and anchors a kernel of size ``f`` at its element
``floor((f + 1) / 2)`` (1-based), so output sample ``i`` (0-based) averages the
input samples ``i - before .. i + after`` with ``before = (f - 1) // 2`` and
``after = f - 1 - before``; samples outside the image come from the
``'symmetric'`` extension (a mirror that repeats the edge sample, NumPy's
``mode="symmetric"``). Then every ``f``-th sample from the first is kept, so
the output has ``ceil(n / f)`` samples per axis.

What that means per factor (1-D; every axis is treated alike):

* ``f = 1``: the identity.
* ``f = 2``: ``before = 0``, ``after = 1``: output ``j`` is the mean of the
  disjoint pair ``(2j, 2j + 1)``; on an odd side the last output is the edge
  sample itself (its mirror is itself), which is the 2x2 average pooling of
  pytorch-msssim on even sides.
* ``f >= 3``: ``before >= 1``: output ``j`` averages ``j f - before ..
  j f + after``, a block shifted *back* by ``before`` from the aligned block
  ``j f .. j f + f - 1``. The first output therefore mixes mirrored samples:
  for ``f = 3`` it is ``(2 x[0] + x[1]) / 3``; the last output mirrors at the far
  edge whenever ``j f + after > n - 1``. It is *not* an aligned block mean
  (``skimage.transform.downscale_local_mean`` differs from it), and it is
  reproduced here sample for sample, including both edges.

Works on NumPy and CuPy arrays alike (padding, slicing and elementwise sums).
NumPy planes (two axes reduced) take a compiled form of the same arithmetic,
:mod:`pipeline.kernels.cpu.downsample`: the same bits, several times faster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.kernels.backend import array_module

__all__ = [
    "box_downsample",
    "box_offsets",
    "compiled_box_downsample",
    "downsampled_shape",
    "wang2009_factor",
]


def wang2009_factor(spatial_shape: tuple[int, ...]) -> int:
    """Wang's ``ssim.m`` factor ``f = max(1, round(min(H, W) / 256))``.

    MATLAB's ``round`` rounds halves away from zero (Python's rounds them to
    even): for a positive ``m``, ``round(m / 256) = floor((m + 128) / 256)``,
    computed here in integers so that ``m = 640`` gives 3, not 2.
    """
    smallest = min(int(n) for n in spatial_shape)
    return max(1, (smallest + 128) // 256)


def box_offsets(factor: int) -> tuple[int, int]:
    """``(before, after)``: samples averaged before and after the anchor by ``imfilter``."""
    before = (factor - 1) // 2
    return before, factor - 1 - before


def downsampled_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """``ceil(n / factor)`` per axis: the length of ``x(1:f:end)``."""
    return tuple(-(-int(n) // factor) for n in shape)


def compiled_box_downsample(
    image: Any,
    factor: int,
    axes: tuple[int, ...] | None = None,
    placement: dict[int, tuple[int, int, int, int]] | None = None,
    dtype: Any = np.float64,
) -> Any:
    """:func:`box_downsample` in compiled form (:mod:`pipeline.kernels.cpu.downsample`), or None.

    It applies to NumPy arrays of bool, integers, float32 or float64 (native byte
    order) reduced along two axes in increasing order, a plane or any two axes of a
    stack of planes (a channel axis, say): each plane is reduced on its own, which is
    what :func:`box_downsample` computes for it, to the same bits. None where it does
    not apply.

    ``placement`` makes ``image`` a block of a larger array (the tiled form,
    :mod:`pipeline.tiling.downsample`): per reduced axis, ``(first, origin, length,
    count)``, the larger array's index of the block's first output and of its first
    sample, the larger array's length, and the outputs to make. The block must hold
    every sample those outputs read, mirrored at the larger array's edges. ``dtype``: of
    the result, as :func:`box_downsample`'s.
    """
    if array_module(image) is not np:
        return None
    ndim = image.ndim
    reduced = tuple(range(ndim)) if axes is None else tuple(int(a) % ndim for a in axes)
    kind = image.dtype
    usable = kind.isnative and (kind.kind in "biu" or kind in (np.float32, np.float64))
    if factor < 2 or len(reduced) != 2 or reduced[0] >= reduced[1] or not usable or not image.size:
        return None
    from pipeline.kernels.cpu.downsample import box_downsample_plane

    if placement is None:
        placement = {a: (0, 0, image.shape[a], -(-image.shape[a] // factor)) for a in reduced}
    else:
        placement = {int(a) % ndim: place for a, place in placement.items()}
    shape = list(image.shape)
    for axis in reduced:
        shape[axis] = placement[axis][3]
    out = np.empty(shape, dtype=dtype)
    first = (placement[reduced[0]][0], placement[reduced[1]][0])
    origin = (placement[reduced[0]][1], placement[reduced[1]][1])
    length = (placement[reduced[0]][2], placement[reduced[1]][2])
    others = [a for a in range(ndim) if a not in reduced]
    for index in np.ndindex(*(image.shape[a] for a in others)):
        select: list[Any] = [slice(None)] * ndim
        for axis, i in zip(others, index, strict=True):
            select[axis] = i
        plane = tuple(select)
        box_downsample_plane(image[plane], factor, out[plane], first, origin, length)
    return out


def _every_nth(padded: Any, axis: int, start: int, step: int, count: int) -> Any:
    """``count`` samples ``start, start + step, ...`` along ``axis`` (a view).

    With the extension of ``before`` samples in front, ``padded[k + j f]`` is input
    sample ``j f - before + k``: the ``k``-th tap of the window anchored at ``j f``.
    """
    index = [slice(None)] * padded.ndim
    index[axis] = slice(start, start + (count - 1) * step + 1, step)
    return padded[tuple(index)]


def box_downsample(
    image: Any, factor: int, axes: tuple[int, ...] | None = None, dtype: Any = np.float64
) -> Any:
    """MATLAB's ``imfilter(img, ones(f)/f^N, 'symmetric', 'same')`` then ``img(1:f:end, ...)``.

    Parameters
    ----------
    image : ndarray
        NumPy or CuPy array; filtered in float64.
    factor : int
        ``f >= 1``; ``1`` returns ``image`` as float64 unchanged.
    axes : tuple of int, optional
        Axes to reduce (default: all of them).
    dtype : dtype, optional
        Of the result: float64, or float32 where the caller knows every output is a
        float32 number (2x2 means of small integers:
        :func:`pipeline.kernels.multiscale.pyramid_dtype`); the float64 means, stored.

    Returns
    -------
    ndarray
        ``dtype`` array with ``ceil(n / f)`` samples along each reduced axis.

    References
    ----------
    Z. Wang, ``ssim.m`` (2009 version, automatic downsampling) and ``msssim.m``
    (2003), https://ece.uwaterloo.ca/~z70wang/research/ssim/
    """
    xp = array_module(image)
    compiled = compiled_box_downsample(image, factor, axes, dtype=dtype)
    if compiled is not None:
        return compiled
    out = image.astype(xp.float64, copy=False)
    if factor == 1:
        return out.astype(dtype, copy=False)
    before, after = box_offsets(factor)
    for axis in range(out.ndim) if axes is None else axes:
        n = out.shape[axis]
        n_out = -(-n // factor)
        pad = [(0, 0)] * out.ndim
        # Only as much extension as the kept samples read: the last kept anchor is
        # (n_out - 1) * f, whose window ends at (n_out - 1) * f + after.
        pad[axis] = (before, max(0, (n_out - 1) * factor + after - (n - 1)))
        padded = xp.pad(out, pad, mode="symmetric")

        acc = _every_nth(padded, axis, 0, factor, n_out).copy()
        for k in range(1, factor):
            acc += _every_nth(padded, axis, k, factor, n_out)
        out = acc / factor
    return out.astype(dtype, copy=False)
