"""How inputs are read: :class:`InputOptions`, its choices and its default limits.

Standard library only, so that the settings model (and the command line built from
it) names these values without importing Dask or NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_INPUT_ELEMENTS",
    "MISSING_CHUNK_POLICIES",
    "InputOptions",
]

# What a missing Zarr chunk means: the pairs it touches fail ("fail"), or its pixels are
# the array's fill value ("fill", for stores that are sparse on purpose).
MISSING_CHUNK_POLICIES = ("fail", "fill")
# Pillow raises DecompressionBombError beyond twice its MAX_IMAGE_PIXELS (89,478,485):
# the same bound for every format, TIFF included.
DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485
# A Zarr input larger than this many elements (2**40, a 1 TB uint8 stack) is refused as
# implausible metadata before anything is read.
DEFAULT_MAX_INPUT_ELEMENTS = 2**40


@dataclass(frozen=True)
class InputOptions:
    """The settings that say how inputs are read (from :class:`pipeline.engine.settings.RunConfig`).

    Attributes
    ----------
    missing_chunks : str
        ``"fail"`` (default): a pair touching a Zarr chunk that is not stored fails,
        naming the chunk. ``"fill"``: the array's fill value stands for it.
    max_image_pixels : int
        Largest image file decoded (pixels, any format); larger files fail their pair.
    max_input_elements : int
        Largest Zarr input accepted (elements); larger metadata is refused before work.
    storage_options : mapping
        Keyword arguments of the filesystem of every input given as a URL (``s3://``,
        ``gs://``, ``az://``, ``https://``), e.g. ``{"anon": True}`` or an
        ``endpoint_url``; empty: each cloud's standard settings (``AWS_*`` variables,
        profiles). Kept out of ``repr`` and of the hash: it may hold credentials.
    """

    missing_chunks: str = "fail"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_input_elements: int = DEFAULT_MAX_INPUT_ELEMENTS
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.missing_chunks not in MISSING_CHUNK_POLICIES:
            raise ValueError(
                f"missing_chunks must be one of {', '.join(MISSING_CHUNK_POLICIES)} "
                f"(got {self.missing_chunks!r})"
            )
        if not isinstance(self.storage_options, Mapping):
            raise TypeError(
                "storage_options must be a mapping of filesystem arguments "
                f"(got {type(self.storage_options).__name__})"
            )
