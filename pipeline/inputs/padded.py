"""Read buffers with room around them for the halo a later stage adds, reused once free.

A tile that its consumer extends by its neighbours' edges (the overlapped blocks
of :mod:`pipeline.tiling.halo`) would otherwise be copied whole into a larger
array, only to add a few rows and columns around it. A read that knows the halo
allocates that larger array itself and returns the tile as a view of its
interior (:meth:`BufferPool.padded_empty`). The consumer asks :func:`room_around`
for the array around a block; it answers only for arrays made here (never for a
view of a caller's image, whose surroundings are somebody else's pixels), and
writes the halo into the margins, the tile staying where it was read.

Several consumers of one tile (the statistics and the saved maps of one run)
write the same neighbours' edges into the same margins: equal bytes, whatever
the order. The margins are never part of the tile itself, so a reader of the
tile sees the same pixels before and after.

A :class:`BufferPool` hands out the memory of tiles that are no longer viewed
by anything again (a view holds a reference to the buffer it views, so a buffer
that only the pool references is free). A fresh multi-megabyte array is memory
the C library maps anew and the kernel zeroes page by page on first touch:
streaming a 20000 x 20000 pair in 2000 x 2000 tiles touched ~75,000 such pages in
the reads, about 0.2 s of CPU, which reusing the tiles' buffers avoids.
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from typing import Any

import numpy as np

__all__ = ["BufferPool", "room_around"]

# id -> (weak reference, shape, dtype) of every live buffer handed out with room:
# how its current tile's padded array lies in it. A weak reference lets the buffer
# die with its last view; its callback drops the entry before the id can be reused.
_LAYOUTS: dict[int, tuple[weakref.ref[np.ndarray], tuple[int, ...], np.dtype]] = {}


def _reference_counts(buffers: list[np.ndarray]) -> list[int]:
    """``sys.getrefcount`` of each buffer, as the pool's scan sees it."""
    return [sys.getrefcount(buffer) for buffer in buffers]


# What that scan counts for a buffer that nothing else references (its list, the
# loop's and getrefcount's own references), measured rather than assumed: how
# many of those the interpreter counts differs between Python versions, and a
# count too high would hand out a buffer that a tile still views.
_UNUSED_REFERENCES = _reference_counts([np.empty(1, dtype=np.uint8)])[0]


def _forget(key: int, ref: weakref.ref[np.ndarray]) -> None:
    entry = _LAYOUTS.get(key)
    if entry is not None and entry[0] is ref:
        del _LAYOUTS[key]


class BufferPool:
    """Byte buffers for padded tiles, each handed out again once nothing views it.

    Parameters
    ----------
    limit : int
        The most buffers kept for reuse; past it, buffers are allocated and freed
        as usual.

    The pool holds at most as many buffers as were in use at once, and frees them
    with itself. It is never pickled: a copy starts empty.
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"])  # type: ignore[misc]

    def buffer(self, nbytes: int) -> np.ndarray:
        """A byte buffer of at least ``nbytes`` (at most a quarter more) that nothing views."""
        with self._lock:
            counts = _reference_counts(self._buffers)
            for buffer, count in zip(self._buffers, counts, strict=True):
                if nbytes <= buffer.nbytes <= nbytes + nbytes // 4 and count <= _UNUSED_REFERENCES:
                    return buffer
            buffer = np.empty(nbytes, dtype=np.uint8)
            if len(self._buffers) < self.limit:
                self._buffers.append(buffer)
            return buffer

    def padded_empty(
        self,
        shape: tuple[int, ...],
        dtype: Any,
        before: tuple[int, ...],
        after: tuple[int, ...],
    ) -> np.ndarray:
        """An uninitialised ``shape`` array, inside a C-ordered one with room around it.

        The array around it is ``before`` larger before it and ``after`` larger
        after it along each axis (:func:`room_around` finds it).

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
        >>> tile = BufferPool().padded_empty((4, 6), np.uint8, (2, 0), (2, 3))
        >>> tile.shape, room_around(tile).shape
        ((4, 6), (8, 9))
        """
        dtype = np.dtype(dtype)
        full = tuple(b + n + a for n, b, a in zip(shape, before, after, strict=True))
        buffer = self.buffer(math.prod(full) * dtype.itemsize)
        key = id(buffer)
        entry = _LAYOUTS.get(key)
        if entry is not None and entry[0]() is buffer:
            ref = entry[0]
        else:

            def forget(dead: weakref.ref[np.ndarray], key: int = key) -> None:
                _forget(key, dead)

            ref = weakref.ref(buffer, forget)
        _LAYOUTS[key] = (ref, full, dtype)
        owner = _padded(buffer, full, dtype)
        return owner[tuple(slice(b, b + n) for n, b in zip(shape, before, strict=True))]


def _padded(buffer: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return buffer[: math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)


def room_around(block: Any) -> np.ndarray | None:
    """The padded array that ``block`` was handed out in by a :class:`BufferPool`, else None."""
    buffer = block.base if isinstance(block, np.ndarray) else None
    if buffer is None:
        return None
    entry = _LAYOUTS.get(id(buffer))
    if entry is None or entry[0]() is not buffer:
        return None
    return _padded(buffer, entry[1], entry[2])
