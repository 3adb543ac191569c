"""A folder of images -> a Zarr stack, decoded once for repeated evaluation.

:func:`ingest_folder` decodes every image of a folder (recursive, the discovery
rule of :mod:`pipeline.pairing`, the decoding rules of :mod:`pipeline.images`)
and writes one Zarr group per size group (zarr_format 3), named after the size,
e.g. ``256x256x3_uint8``, each holding:

* ``images`` -- ``(file, y, x, channel)``, one image per chunk (grey images have
  one channel);
* ``file`` -- the coordinate: relative paths, sorted;
* ``status`` -- ``"ok"`` or why the file could not be decoded (its slot is zeros).

The stacks are what :func:`pipeline.evaluate` reads as Zarr sources
(``stack.zarr/256x256x3_uint8/images``). Ingesting a reference and a generated
folder whose files share relative paths gives stacks in the same order, so
evaluating the two stacks of a size group gives exactly the values of evaluating
the folders (the same decoded pixels enter the same kernels).
"""

from __future__ import annotations

import operator
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from pipeline.dataset import STATUS, STATUS_OK
from pipeline.images import ImageDecodeError, decode_batch, read_header
from pipeline.pairing import find_images

__all__ = ["IMAGES", "STACK_FILE", "IngestResult", "ingest_folder"]

IMAGES, STACK_FILE = "images", "file"
_DIMS = (STACK_FILE, "y", "x", "channel")
# Images committed per write; each is its own Zarr chunk, decoded in parallel.
_BATCH = 64


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_folder` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The Zarr store.
    arrays : dict
        ``{group name: description}``; the stack is ``path/name/images``.
    failed : dict
        ``{relative path: reason}`` of files that could not be decoded (or whose
        header could not be read: those are left out of every stack).
    """

    path: Path
    arrays: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _group_name(shape: tuple[int, ...], dtype: np.dtype) -> str:
    channels = shape[2] if len(shape) == 3 else 1
    return f"{shape[0]}x{shape[1]}x{channels}_{dtype}"


def _decode_chunk(
    paths: tuple[str, ...], shape: tuple[int, int, int], dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    image_shape = shape[:2] if shape[2] == 1 else shape
    stack, statuses = decode_batch(list(paths), shape=image_shape, dtype=dtype)
    return stack.reshape(len(paths), *shape), np.asarray(statuses, dtype=object)


def _stack(
    paths: list[str], shape: tuple[int, int, int], dtype: np.dtype
) -> tuple[da.Array, da.Array]:
    """Lazy ``(file, y, x, channel)`` stack and statuses, one file per decode task."""
    token = tokenize(paths, shape, str(dtype))
    decode, pixels, status = (
        f"{n}-{token}" for n in ("ingest-decode", "ingest-pixels", "ingest-status")
    )
    tasks: dict[Any, Any] = {}
    for k, path in enumerate(paths):
        tasks[(decode, k)] = (_decode_chunk, (path,), shape, str(dtype))
        tasks[(pixels, k, 0, 0, 0)] = (operator.getitem, (decode, k), 0)
        tasks[(status, k)] = (operator.getitem, (decode, k), 1)
    n = len(paths)
    pixel_tasks = {k: v for k, v in tasks.items() if k[0] in (decode, pixels)}
    status_tasks = {k: v for k, v in tasks.items() if k[0] in (decode, status)}
    stack = da.Array(
        HighLevelGraph.from_collections(pixels, pixel_tasks, dependencies=()),
        pixels,
        chunks=((1,) * n, (shape[0],), (shape[1],), (shape[2],)),
        dtype=dtype,
        meta=np.empty((0,) * 4, dtype=dtype),
    )
    statuses = da.Array(
        HighLevelGraph.from_collections(status, status_tasks, dependencies=()),
        status,
        chunks=((1,) * n,),
        dtype=object,
        meta=np.empty((0,), dtype=object),
    )
    return stack, statuses


def ingest_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    on_batch: Callable[[int, int, int], None] | None = None,
) -> IngestResult:
    """Decode a folder of images into a Zarr store, one stack per size group.

    Parameters
    ----------
    folder : path-like
        Folder of images, walked recursively.
    out : path-like
        The Zarr store to create.
    overwrite : bool
        Replace ``out`` when it exists (else it is refused).
    on_batch : callable, optional
        ``on_batch(done, total, images_in_batch)`` after each written batch.

    Returns
    -------
    IngestResult

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        ``folder`` is missing or a file.
    FileExistsError
        ``out`` exists and ``overwrite`` is false.
    ValueError
        ``folder`` holds no images.
    """
    root = Path(folder)
    target = Path(out)
    # find_images would name this folder after a side of a pair ("reference folder").
    if not root.exists():
        raise FileNotFoundError(f"folder to ingest not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"folder to ingest must be a folder of images, got a file: {root}")
    images, _ = find_images(root, side="reference")
    if not images:
        raise ValueError(f"folder {root} contains no images")
    if target.exists():
        if not overwrite:
            raise FileExistsError(
                f"output {str(target)!r} already exists; pass overwrite to replace it"
            )
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    groups: dict[tuple[tuple[int, ...], str], list[str]] = {}
    failed: dict[str, str] = {}
    for relative in images:
        try:
            shape, dtype = read_header(root / relative)
        except ImageDecodeError as error:
            failed[relative] = str(error)
            continue
        groups.setdefault((tuple(shape), str(dtype)), []).append(relative)
    plans: list[tuple[str, list[str], da.Array, da.Array, tuple[int, int, int], np.dtype]] = []
    for (shape, dtype_name), members in groups.items():
        dtype = np.dtype(dtype_name)
        full = (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)
        stack, statuses = _stack([str(root / m) for m in members], full, dtype)
        name = _group_name(shape, dtype)
        template = xr.Dataset(
            {
                IMAGES: (_DIMS, stack),
                STATUS: ((STACK_FILE,), np.full(len(members), "", dtype=object)),
            },
            coords={STACK_FILE: np.asarray(members, dtype=object)},
            attrs={"source_folder": str(root), "description": "decoded images, one per chunk"},
        )
        template.to_zarr(
            target,
            group=name,
            mode="w-" if not plans else "a",
            compute=False,
            zarr_format=3,
            consolidated=False,
            encoding={IMAGES: {"chunks": (1, *full)}, STATUS: {"chunks": (len(members),)}},
        )
        plans.append((name, members, stack, statuses, full, dtype))
    total = sum(-(-len(p[1]) // _BATCH) for p in plans)
    done = 0
    arrays: dict[str, str] = {}
    for name, members, stack, statuses, full, dtype in plans:
        found = np.empty(len(members), dtype=object)
        for start in range(0, len(members), _BATCH):
            stop = min(start + _BATCH, len(members))
            pixels, texts = dask.compute(stack[start:stop], statuses[start:stop])
            xr.Dataset({IMAGES: (_DIMS, pixels)}).to_zarr(
                target, group=name, region={STACK_FILE: slice(start, stop)}, consolidated=False
            )
            found[start:stop] = texts
            done += 1
            if on_batch is not None:
                on_batch(done, total, stop - start)
        xr.Dataset({STATUS: ((STACK_FILE,), found)}).to_zarr(
            target, group=name, region={STACK_FILE: slice(None)}, consolidated=False
        )
        for relative, text in zip(members, found, strict=True):
            if text != STATUS_OK:
                failed[relative] = str(text)
        arrays[name] = f"{len(members)} images {full[0]}x{full[1]}x{full[2]} {dtype}"
    return IngestResult(path=target, arrays=arrays, failed=dict(sorted(failed.items())))
