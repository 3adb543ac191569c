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
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.inputs.folders import folder_source
from pipeline.inputs.images import IMAGE_EXTENSIONS, ImageDecodeError, read_header
from pipeline.inputs.options import InputOptions
from pipeline.inputs.pairing import FailedPair, ImagePair, PairingPlan, SizeGroup
from pipeline.inputs.sources import SourcePair

__all__ = ["is_image_file_path", "open_file_pair"]


def is_image_file_path(path: Any) -> bool:
    """Whether ``path`` names an image file by its extension (it need not exist)."""
    if not isinstance(path, str | os.PathLike):
        return False
    candidate = Path(path)
    return candidate.suffix.lower() in IMAGE_EXTENSIONS and not candidate.is_dir()


def _check_file(path: Path, side: str, other: Path) -> None:
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
    ref, gen = Path(reference), Path(generated)
    _check_file(ref, "reference", gen)
    _check_file(gen, "generated", ref)
    if channel_axis not in (None, -1, 2):
        raise ValueError(
            "image files are decoded with colour channels last; channel_axis must be None "
            f"or -1 for image files (got {channel_axis})"
        )
    pair = ImagePair(ref.name, ref, gen)
    headers: list[tuple[tuple[int, ...], np.dtype] | ImageDecodeError] = []
    for path in (ref, gen):
        try:
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
    return folder_source(plan)
