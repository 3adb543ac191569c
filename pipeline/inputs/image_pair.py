"""Two image files as a one-pair source: ``ssim-pipeline evaluate a.png b.png``.

:func:`open_file_pair` is one of the built-in openers of
:func:`pipeline.inputs.opening.open_pair`: when both inputs are image files (by
extension, :data:`pipeline.inputs.images.IMAGE_EXTENSIONS`) it reads their headers and
returns the folder source of one pair, so the pair is decoded inside the graph and
a file that cannot be read fails the pair with its reason, exactly as in a folder.
The pair's id is the reference file's name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from pipeline.inputs.files import FileStamp
from pipeline.inputs.folders import folder_source
from pipeline.inputs.images import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    ImageHeader,
    inspect_objects,
    read_header,
)
from pipeline.inputs.objects import mtime_ns
from pipeline.inputs.options import InputOptions
from pipeline.inputs.pairing import FailedPair, ImagePair, PairingPlan, SizeGroup
from pipeline.inputs.sources import SourcePair
from pipeline.storage.locations import (
    check_exists,
    is_remote,
    location,
    redact,
    remote_error,
)

__all__ = ["is_image_file_path", "open_file_pair"]


def is_image_file_path(path: Any) -> bool:
    """Whether ``path`` names an image file by its extension (it need not exist)."""
    if not isinstance(path, str | os.PathLike):
        return False
    if is_remote(path):
        name = str(path).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS
    try:
        candidate = Path(location(path).path)
    except ValueError:
        return False
    return candidate.suffix.lower() in IMAGE_EXTENSIONS and not candidate.is_dir()


def _check_file(path: Path, side: str, other: Path | str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{side} image file not found: {path}")
    if not path.is_file():
        raise ValueError(
            f"{side} {path} is not a file; give two image files (the other is {other}) "
            "or two folders"
        )


def open_file_pair(
    reference: Any,
    generated: Any,
    channel_axis: int | None = None,
    options: InputOptions | None = None,
) -> SourcePair | None:
    """Two image files as a :class:`SourcePair` of one pair; None for other inputs.

    Raises
    ------
    FileNotFoundError
        One of the two files does not exist.
    ValueError
        One side is an image file and the other is not a file, or ``channel_axis``
        is not the last axis (files are decoded with colour channels last).
    """
    if not (is_image_file_path(reference) or is_image_file_path(generated)):
        return None
    options = options if options is not None else InputOptions()
    storage_options = options.storage_options
    sides: list[Path | str] = []
    stamps: dict[str, FileStamp] = {}
    for value, side in ((reference, "reference"), (generated, "generated")):
        if is_remote(value):
            stamps[str(value)] = _check_object(str(value), side, storage_options)
            sides.append(str(value))
        else:
            sides.append(Path(location(value, what=f"{side} image file").path))
    ref, gen = sides
    for path, side, other in ((ref, "reference", gen), (gen, "generated", ref)):
        if isinstance(path, Path):
            _check_file(path, side, other)
    if channel_axis not in (None, -1, 2):
        raise ValueError(
            "image files are decoded with colour channels last; channel_axis must be None "
            f"or -1 for image files (got {channel_axis})"
        )
    name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ref.name
    pair = ImagePair(name, ref, gen, stamps.get(str(ref)), stamps.get(str(gen)))
    headers: list[tuple[tuple[int, ...], np.dtype] | ImageDecodeError] = []
    for path in (ref, gen):
        try:
            if isinstance(path, str):
                found = inspect_objects([path], [stamps[path]], storage_options=storage_options)[0]
                if isinstance(found, ImageDecodeError):
                    raise found
                assert isinstance(found, ImageHeader)
                headers.append((found.shape, found.dtype))
            else:
                headers.append(read_header(path))
        except ImageDecodeError as error:
            headers.append(error)
    groups: tuple[SizeGroup, ...] = ()
    failed: tuple[FailedPair, ...] = ()
    ref_header, gen_header = headers
    if isinstance(ref_header, ImageDecodeError) or isinstance(gen_header, ImageDecodeError):
        reasons = [str(h) for h in headers if isinstance(h, ImageDecodeError)]
        failed = (FailedPair(pair.id, "; ".join(reasons)),)
    elif ref_header != gen_header:
        (ref_shape, ref_dtype), (gen_shape, gen_dtype) = ref_header, gen_header
        what = "shape" if ref_shape != gen_shape else "dtype"
        failed = (
            FailedPair(
                pair.id,
                f"{what} mismatch: reference {ref_shape} {ref_dtype}, "
                f"generated {gen_shape} {gen_dtype}",
            ),
        )
    else:
        shape, dtype = ref_header
        groups = (SizeGroup(tuple(shape), str(dtype), (pair.id,)),)
    plan = PairingPlan(
        reference_root=ref,
        generated_root=gen,
        pairs=(pair,),
        unpaired_reference=(),
        unpaired_generated=(),
        ambiguous=(),
        skipped=(),
        size_groups=groups,
        failed=failed,
    )
    return folder_source(plan, storage_options=storage_options)


def _check_object(url: str, side: str, storage_options: Mapping[str, Any]) -> FileStamp:
    """An image object checked before any work (bucket, object); its stamp."""
    where = location(url, what=f"{side} image file")
    fs = check_exists(where, storage_options, what=f"{side} image file")
    try:
        info = fs.info(where.path)
    except Exception as error:
        raise remote_error(
            error, where, what=f"{side} image file", storage_options=storage_options
        ) from None
    if info.get("type") == "directory":
        raise ValueError(
            f"{side} {redact(url, storage_options)} is a prefix (a folder), not an image "
            "object; give two image files or two folders"
        )
    return FileStamp(int(info.get("size") or 0), mtime_ns(info), 0)
