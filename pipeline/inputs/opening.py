"""Opening two inputs as one :class:`~pipeline.inputs.sources.SourcePair`, whatever they are.

:func:`open_pair` tries, in order: the built-in openers (a folder of image files,
two image files), openers added with :func:`register_pair_opener`, two ingest
stores, then arrays and Zarr paths. It sits above every kind of source, which each
build on :mod:`pipeline.inputs.sources`, so none of them imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pipeline.inputs.folders import open_folder_pair
from pipeline.inputs.image_pair import open_file_pair
from pipeline.inputs.ingest import ingest_slots, open_ingest_pair
from pipeline.inputs.options import InputOptions
from pipeline.inputs.sources import (
    SourcePair,
    join_statuses,
    native_chunks,
    open_source,
    to_canonical,
    zarr_stacks,
)

__all__ = ["PairOpener", "open_pair", "register_pair_opener"]

PairOpener = Callable[[Any, Any, "int | None", InputOptions], "SourcePair | None"]
_PAIR_OPENERS: list[PairOpener] = []


def register_pair_opener(opener: PairOpener) -> None:
    """Add a source kind: ``opener(reference, generated, channel_axis, options)`` -> pair or None.

    Openers are tried after the built-in ones (folders, two image files), in the
    order registered, and before the ingest, array and Zarr sources. Registering
    an opener twice keeps its first place.
    """
    if opener not in _PAIR_OPENERS:
        _PAIR_OPENERS.append(opener)


def _pair_openers() -> list[PairOpener]:
    """The built-in openers (folders of image files, two image files), then registered ones.

    Named here, where pairs are opened, so that no package ``__init__`` has to import
    them first for their sources to be found.
    """
    built_in: list[PairOpener] = [open_folder_pair, open_file_pair]
    return [*built_in, *(opener for opener in _PAIR_OPENERS if opener not in built_in)]


def open_pair(
    reference: Any,
    generated: Any,
    *,
    channel_axis: int | None = None,
    options: InputOptions | None = None,
) -> SourcePair:
    """Both inputs as a :class:`SourcePair`, every check done before anything is read.

    Parameters
    ----------
    reference, generated : array, path or URL
        NumPy, Dask or Zarr arrays, Zarr paths, folders of images or image files;
        any path may be a URL (``s3://``, ``gs://``, ``az://``, ``https://`` read-only,
        ``file://``), opened with ``options.storage_options``.
    channel_axis : int, optional
        Axis of colour channels in the inputs (e.g. ``-1``).
    options : InputOptions, optional
        How inputs are read (missing chunks, size limits); defaults when None.

    Raises
    ------
    ValueError
        Different shapes or channel counts, a path that is not a Zarr array.
    FileNotFoundError
        A path that does not exist; a URL whose bucket or object/prefix does not.
    LocationError
        A URL with an unknown scheme or malformed (a ``ValueError``).
    """
    options = InputOptions() if options is None else options
    for opener in _pair_openers():
        pair = opener(reference, generated, channel_axis, options)
        if pair is not None:
            return pair
    pair = open_ingest_pair(reference, generated, channel_axis, options)
    if pair is not None:
        return pair
    x, x_label, x_native, x_zarr = open_source(reference, "reference", options)
    y, y_label, y_native, y_zarr = open_source(generated, "generated", options)
    x4, single, order = to_canonical(x, channel_axis, "reference")
    y4, _, _ = to_canonical(y, channel_axis, "generated")
    if x4.shape[3] != y4.shape[3] and x4.shape[:3] == y4.shape[:3]:
        raise ValueError(
            f"reference and generated have different channel counts "
            f"({x4.shape[3]} and {y4.shape[3]}; shapes {tuple(x.shape)} and {tuple(y.shape)})"
        )
    if x.shape != y.shape:
        raise ValueError(
            f"reference and generated must have the same shape "
            f"(got {tuple(x.shape)} and {tuple(y.shape)})"
        )
    n = int(x4.shape[0])
    # The coarser read granularity decides (a Zarr side over an in-memory one).
    known = [chunks for chunks in (x_native, y_native) if chunks is not None]
    combined = tuple(max(sizes) for sizes in zip(*known, strict=True)) if known else None
    native = native_chunks(combined, order, single, x4)
    image: np.ndarray = np.arange(n)
    prefix = "" if single else "[{}]"
    stacks, direct = zarr_stacks((x4, y4), (x_zarr, y_zarr), channel_axis, options)
    statuses = [d.status for d in direct if d is not None and d.status is not None]
    # A stack of an ingest store keeps what ingest recorded: file names, undecoded slots.
    slots = [None if source is None else ingest_slots(source) for source in (x_zarr, y_zarr)]
    failed: dict[int, list[str]] = {}
    for side in slots:
        for i, reason in enumerate(side[1] if side is not None else []):
            if reason is not None:
                failed.setdefault(i, []).append(reason)
    if slots[0] is not None and slots[1] is not None and slots[0][0] == slots[1][0]:
        image = np.array(slots[0][0], dtype=object)
    return SourcePair(
        reference=stacks[0],
        generated=stacks[1],
        image=image,
        reference_names=np.array([x_label + prefix.format(i) for i in range(n)], dtype=object),
        generated_names=np.array([y_label + prefix.format(i) for i in range(n)], dtype=object),
        native_chunks=native,
        identity={
            "reference": x_label,
            "generated": y_label,
            "shape": list(x.shape),
            "dtypes": [str(x.dtype), str(y.dtype)],
            "channel_axis": channel_axis,
        },
        status={i: "; ".join(reasons) for i, reasons in failed.items()},
        read_status=join_statuses(*statuses) if statuses else None,
        direct=direct,
    )
