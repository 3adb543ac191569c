"""Read buffers with room around them for the halo a later stage adds.

A tile that its consumer extends by its neighbours' edges (the overlapped blocks
of :mod:`pipeline.tiling.halo`) would otherwise be copied whole into a larger
array, only to add a few rows and columns around it. A read that knows the halo
allocates that larger array itself and returns the tile as a view of its
interior: :func:`padded_empty`. The consumer asks :func:`room_around` for the
array around a block; it answers only for arrays made here (never for a view of
a caller's image, whose surroundings are somebody else's pixels), and writes the
halo into the margins, the tile staying where it was read.

Several consumers of one tile (the statistics and the saved maps of one run)
write the same neighbours' edges into the same margins: equal bytes, whatever
the order. The margins are never part of the tile itself, so a reader of the
tile sees the same pixels before and after.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = ["padded_empty", "room_around"]

# id -> weak reference of every live array made by padded_empty. A weak reference
# lets the array die with its last view; its callback drops the entry before the
# id can be reused.
_OWNERS: dict[int, weakref.ref[np.ndarray]] = {}


def _forget(key: int, ref: weakref.ref[np.ndarray]) -> None:
    if _OWNERS.get(key) is ref:
        del _OWNERS[key]


def padded_empty(
    shape: tuple[int, ...], dtype: Any, before: tuple[int, ...], after: tuple[int, ...]
) -> np.ndarray:
    """An uninitialised ``shape`` array, the interior of a C-ordered one ``before``/``after`` larger.

    Parameters
    ----------
    shape : tuple of int
        The shape of the returned view.
    dtype : dtype
        Its dtype.
    before, after : tuple of int
        Room kept before and after it along each axis.

    Examples
    --------
    >>> tile = padded_empty((4, 6), np.uint8, (2, 0), (2, 3))
    >>> tile.shape, tile.base.shape
    ((4, 6), (8, 9))
    >>> room_around(tile) is tile.base
    True
    """
    full = tuple(b + n + a for n, b, a in zip(shape, before, after, strict=True))
    owner = np.empty(full, dtype=dtype)
    key = id(owner)
    _OWNERS[key] = weakref.ref(owner, lambda ref, key=key: _forget(key, ref))
    return owner[tuple(slice(b, b + n) for n, b in zip(shape, before, strict=True))]


def room_around(block: np.ndarray) -> np.ndarray | None:
    """The array made by :func:`padded_empty` that ``block`` is a view of, else None."""
    owner = block.base if isinstance(block, np.ndarray) else None
    if owner is None:
        return None
    ref = _OWNERS.get(id(owner))
    if ref is None or ref() is not owner:
        return None
    return owner  # type: ignore[no-any-return]
