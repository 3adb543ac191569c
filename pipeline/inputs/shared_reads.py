"""Reads whose every task gives several results, built on Dask's public array API.

A decode or read task often yields more than one array: the pixels of both sides
of a chunk of pairs and their statuses, or a region of a Zarr array and the
chunks it found missing. :func:`shared_reads` makes a Dask array whose blocks are
those tuples (:func:`dask.array.from_array` of the source, held once in
the graph, with the read as its getter), and :func:`read_part` the array of one
element of each tuple (``map_blocks(operator.getitem)``). Computed together, each
read runs once and feeds every part; the tuple array itself is never computed.

Tasks per block: one read and one per part taken (the same as the hand-built
graphs this replaces), plus one key for the source.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["SlotSpace", "read_part", "shared_reads"]

_OBJECT = np.dtype(object)


class SlotSpace:
    """A 1-D read space of slots (files, pairs) as :func:`shared_reads` chunks it.

    Subclasses give ``__len__`` (the number of slots); ``shape``, ``ndim`` and
    ``dtype`` (object: the blocks are tuples) follow, as ``from_array`` asks.
    """

    ndim = 1
    dtype = _OBJECT

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)


def shared_reads(
    source: Any,
    read: Callable[[Any, tuple[slice, ...]], tuple[Any, ...]],
    *,
    chunks: tuple[tuple[int, ...], ...],
    name: str,
) -> da.Array:
    """A Dask array whose block at ``index`` is ``read(source, slices of index)``.

    Parameters
    ----------
    source : array-like
        Held once in the graph and handed to every read (a chunk reader, the files
        of a stack); it needs ``shape``, ``ndim`` and ``dtype`` (object: the blocks
        are tuples), the read space, as ``from_array`` asks.
    read : callable
        ``read(source, key)`` with ``key`` one slice (step 1) per axis; returns a
        tuple. A module-level function, so that the graph pickles.
    chunks : tuple
        The chunks of the read space, as for ``from_array``.
    name : str
        The key name of the reads (deterministic: the caller's token).

    Returns
    -------
    dask.array.Array
        Object blocks that are tuples: take parts with :func:`read_part`, never
        compute it whole.
    """
    return da.from_array(
        source,
        chunks=chunks,
        name=name,
        getitem=read,
        meta=np.empty((0,) * len(source.shape), dtype=_OBJECT),
        asarray=False,
        fancy=False,
        inline_array=False,
    )


def read_part(
    reads: da.Array,
    index: int,
    *,
    meta: np.ndarray,
    name: str,
    chunks: tuple[tuple[int, ...], ...] | None = None,
) -> da.Array:
    """Element ``index`` of every block of :func:`shared_reads` as an array.

    ``meta`` gives the part's type and dimensionality; axes past those of ``reads``
    are new single-chunk axes whose sizes ``chunks`` gives (default: the chunks of
    ``reads``).
    """
    new_axis = list(range(reads.ndim, meta.ndim)) if meta.ndim > reads.ndim else None
    return da.map_blocks(
        operator.getitem,
        reads,
        index,
        chunks=reads.chunks if chunks is None else chunks,
        new_axis=new_axis,
        dtype=meta.dtype,
        meta=meta,
        name=name,
    )
