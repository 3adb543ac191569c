"""The grammar of the ``regions`` setting, parsed in this one place.

``"all"`` (the whole image only), ``"RxC"`` (a grid of R rows by C columns of
near-equal tiles, e.g. ``"4x4"``), ``"Npx"`` (square tiles of N pixels, e.g.
``"256px"``) or ``"labels"`` (a label mask). :func:`parse_region_spec` turns the
text into a frozen :class:`RegionSpec`; the run settings, the command line and
:func:`pipeline.reductions.regions.parse_regions` all read it through here.

This module imports only the standard library, so the settings and the command
line's parser can use it without loading NumPy or Dask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REGION_PATTERN", "REGION_SPEC_HELP", "RegionSpec", "parse_region_spec"]

REGION_SPEC_HELP = "'all', a grid 'RxC' such as '4x4', a tile size such as '256px', or 'labels'"
# The pattern the JSON Schema of the settings carries for ``regions``.
REGION_PATTERN = r"^(all|labels|[0-9]+x[0-9]+|[0-9]+px)$"

_GRID = re.compile(r"([0-9]+)x([0-9]+)")
_TILE = re.compile(r"([0-9]+)px")


@dataclass(frozen=True)
class RegionSpec:
    """A parsed ``regions`` setting.

    Attributes
    ----------
    text : str
        The setting as written (``"4x4"``).
    kind : str
        ``"all"``, ``"grid"``, ``"tile"`` or ``"labels"``.
    rows, cols : int
        Grid rows and columns (``kind="grid"``; 0 otherwise).
    tile : int
        Tile side in pixels (``kind="tile"``; 0 otherwise).
    """

    text: str
    kind: Literal["all", "grid", "tile", "labels"]
    rows: int = 0
    cols: int = 0
    tile: int = 0


def parse_region_spec(spec: Any) -> RegionSpec:
    """Parse a ``regions`` setting.

    Parameters
    ----------
    spec : str
        ``"all"``, ``"RxC"``, ``"Npx"`` or ``"labels"``.

    Returns
    -------
    RegionSpec

    Raises
    ------
    ValueError
        Text of another form, or a grid or tile size below 1.

    Examples
    --------
    >>> parse_region_spec("2x3")
    RegionSpec(text='2x3', kind='grid', rows=2, cols=3, tile=0)
    """
    if isinstance(spec, RegionSpec):
        return spec
    if spec in ("all", "labels") and isinstance(spec, str):
        return RegionSpec(spec, "all" if spec == "all" else "labels")
    grid = _GRID.fullmatch(spec) if isinstance(spec, str) else None
    tile = _TILE.fullmatch(spec) if isinstance(spec, str) else None
    if grid is None and tile is None:
        raise ValueError(f"regions must be {REGION_SPEC_HELP} (got {spec!r})")
    if grid is not None:
        rows, cols = int(grid.group(1)), int(grid.group(2))
        if rows < 1 or cols < 1:
            raise ValueError(f"regions needs sizes of at least 1 (got {spec!r})")
        return RegionSpec(spec, "grid", rows=rows, cols=cols)
    assert tile is not None  # narrowed for mypy: one of the two matched
    size = int(tile.group(1))
    if size < 1:
        raise ValueError(f"regions needs sizes of at least 1 (got {spec!r})")
    return RegionSpec(spec, "tile", tile=size)
