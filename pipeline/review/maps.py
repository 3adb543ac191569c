"""Where one pair's images and SSIM maps are found again, or recomputed.

Maps come, in this order, from the maps passed in; from the maps the run saved
(``save_maps=True``: the store's ``maps`` group or ``maps_output``; one model of a
run of several reads its own group there, named by its ``maps_group`` attr); or are
recomputed with :func:`pipeline.ssim` and the parameters in the attrs from the
images: the arrays passed in, else the files (folders) or Zarr arrays (stacks)
the ``reference``/``generated`` coordinates name. In-memory inputs cannot be
found again. ``ds.review.pair_data`` and ``ds.review.show_pair`` use this, and
through them the HTML report.

One pair's trouble stays that pair's: a file that is gone, unreadable, or no
longer the data the run scored (its recomputed score differs from the stored
one) is described in :attr:`PairView.problems` and its panel says so; nothing
here raises for it, so a report of many pairs is never lost to one of them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipeline.results.schema import (
    ALL_REGION,
    CONTRAST,
    GENERATED,
    IMAGE,
    LUMINANCE,
    REFERENCE,
    REGION,
    SSIM,
    SSIM_PARAMETERS,
    STRUCTURE,
)
from pipeline.results.stores import MAPS_GROUP
from pipeline.results.text import text_values
from pipeline.review.tables import image_position

__all__ = ["MapsSource", "PairView", "pair_data", "pair_images", "pair_view", "recompute_maps"]

#: A Zarr group of maps (a path) or a mapping of arrays shaped ``(image, y, x)``.
MapsSource = str | os.PathLike[str] | Mapping[str, Any] | None

_MAP_NAMES = (SSIM, LUMINANCE, CONTRAST, STRUCTURE)
_STACK_NAME = re.compile(r"^(?P<path>.*)\[(?P<index>\d+)\]$")
# A recomputed score further than this from the stored one means other data than the
# run's: the float32 engine and the float64 recomputation agree to 1e-5.
_SCORE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PairView:
    """One pair's images and maps as found, and what kept any of them from being shown."""

    reference: np.ndarray | None
    generated: np.ndarray | None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "unavailable"
    problems: tuple[str, ...] = ()


def pair_data(
    ds: xr.Dataset,
    image: str | int,
    *,
    maps: MapsSource = None,
    reference: Any = None,
    generated: Any = None,
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, np.ndarray], str]:
    """One pair's ``(reference, generated, maps, source)``: see ``ds.review.pair_data``."""
    view = pair_view(ds, image_position(ds, image), maps, reference, generated)
    return view.reference, view.generated, view.maps, view.source


def pair_view(
    ds: xr.Dataset,
    k: int,
    maps: MapsSource,
    reference: Any,
    generated: Any,
    names: tuple[str, str] | None = None,
) -> PairView:
    """Pair ``k``'s images and maps; a file's trouble is a problem of the view, not an error.

    ``names`` are the pair's ``reference`` and ``generated`` coordinates when the
    caller has them (the report does): a store holds each as one chunk, read whole.
    """
    if names is None:
        names = (
            text_values(ds[REFERENCE].isel({IMAGE: k}).values)[0],
            text_values(ds[GENERATED].isel({IMAGE: k}).values)[0],
        )
    (ref_image, ref_problem), (gen_image, gen_problem) = (
        _source_image(ds, k, given, side, name)
        for given, side, name in (
            (reference, REFERENCE, names[0]),
            (generated, GENERATED, names[1]),
        )
    )
    problems = tuple(p for p in (ref_problem, gen_problem) if p is not None)
    found, source = _saved_maps(ds, k, maps)
    if found or ref_image is None or gen_image is None:
        return PairView(ref_image, gen_image, found, source, problems)
    try:
        found = recompute_maps(ds, ref_image, gen_image)
    except (ValueError, TypeError) as error:
        # E.g. a file replaced by one of another size since the run.
        return PairView(ref_image, gen_image, {}, "unavailable", (f"not recomputed: {error}",))
    stored = float(np.asarray(ds[SSIM].isel({IMAGE: k}).sel({REGION: ALL_REGION}).values))
    recomputed = float(np.mean(found[SSIM]))
    if np.isfinite(stored) and abs(recomputed - stored) > _SCORE_TOLERANCE:
        return PairView(
            None,
            None,
            {},
            "unavailable",
            (
                f"the files changed since the run: their SSIM is now {recomputed:.4f}, "
                f"the run scored {stored:.4f}",
            ),
        )
    return PairView(ref_image, gen_image, found, "recomputed", problems)


def pair_images(ds: xr.Dataset, k: int, names: tuple[str, str] | None = None) -> PairView:
    """Pair ``k``'s two images only, found as :func:`pair_view` finds them; no map is made.

    The report's thumbnails of several models: reading the files is all they need.
    """
    if names is None:
        names = (
            text_values(ds[REFERENCE].isel({IMAGE: k}).values)[0],
            text_values(ds[GENERATED].isel({IMAGE: k}).values)[0],
        )
    (ref_image, ref_problem), (gen_image, gen_problem) = (
        _source_image(ds, k, None, side, name)
        for side, name in ((REFERENCE, names[0]), (GENERATED, names[1]))
    )
    problems = tuple(p for p in (ref_problem, gen_problem) if p is not None)
    return PairView(ref_image, gen_image, {}, "unavailable", problems)


# -- saved maps ----------------------------------------------------------------


def _store_path(ds: xr.Dataset) -> Path | None:
    source = ds.encoding.get("source")
    return Path(source) if source and Path(source).is_dir() else None


def _maps_locations(ds: xr.Dataset) -> list[Path]:
    config = ds.attrs.get("config")
    paths: list[Path] = []
    if ds.attrs.get("maps_output"):
        paths.append(Path(str(ds.attrs["maps_output"])))
    if isinstance(config, str):
        try:
            maps_output = json.loads(config).get("maps_output")
        except (ValueError, AttributeError):
            maps_output = None
        if maps_output:
            paths.append(Path(str(maps_output)))
    store = _store_path(ds)
    if store is not None:
        paths.append(store / "maps")
    return [p for p in paths if p.is_dir()]


def _store_position(ds: xr.Dataset, k: int) -> int:
    """Position of pair ``k`` in the store the maps were written beside."""
    store = _store_path(ds)
    if store is None:
        return k
    stored = xr.open_zarr(store, consolidated=False)[IMAGE].values
    wanted = ds[IMAGE].values[k]
    # Compared as arrays, not as lists of str: a store may hold a million ids.
    if k < stored.size and stored[k] == wanted:
        return k
    hits = np.flatnonzero(stored == wanted)
    return int(hits[0]) if hits.size else k


def _saved_maps(ds: xr.Dataset, k: int, maps: MapsSource) -> tuple[dict[str, np.ndarray], str]:
    import zarr

    if maps is not None and not isinstance(maps, str | os.PathLike | Mapping):
        raise TypeError(
            f"maps must be a Zarr group path or a mapping of arrays (got {type(maps).__name__})"
        )
    if isinstance(maps, Mapping):
        groups: list[tuple[Any, int]] = [(maps, k)]
    else:
        paths = [Path(maps)] if maps is not None else _maps_locations(ds)
        if maps is not None and not Path(maps).is_dir():
            raise FileNotFoundError(f"maps path {str(maps)!r} is not a Zarr group folder")
        if not paths:
            return {}, "unavailable"
        position = k if maps is not None else _store_position(ds, k)
        groups = [(zarr.open_group(str(p), mode="r"), position) for p in paths]
    # One model of a run of several: its own group of the maps store (a path to that
    # group itself is used as it is).
    own = ds.attrs.get(MAPS_GROUP)
    for group, position in groups:
        if isinstance(own, str) and not isinstance(group, Mapping) and own in group:
            inner = group[own]
            group = inner if isinstance(inner, zarr.Group) else group
        found = {}
        for name in _MAP_NAMES:
            if name in group and group[name].shape[0] > position:
                values = np.asarray(group[name][position], dtype=np.float64)
                found[name] = values.mean(axis=-1) if values.ndim == 3 else values
        if SSIM in found:
            return found, "saved"
    return {}, "unavailable"


# -- images --------------------------------------------------------------------


def _source_image(
    ds: xr.Dataset, k: int, given: Any, side: str, name: str
) -> tuple[np.ndarray | None, str | None]:
    """One side's picture of pair ``k``, or None and why it is not there."""
    sources = _sources(ds)
    shape = sources.get("shape")
    channel_axis = sources.get("channel_axis")
    if given is not None:
        picture = np.asarray(given)
        stack = isinstance(shape, list) and list(picture.shape) == shape
        if stack and len(picture.shape) - (channel_axis is not None) == 3:
            picture = picture[k]
            if channel_axis is not None:
                axis = channel_axis if channel_axis < 0 else channel_axis - 1
                picture = np.moveaxis(picture, axis, -1)
        return picture, None
    from pipeline.inputs.images import path_from_display

    # Names are stored as valid Unicode (bytes that are not UTF-8 as \xNN escapes).
    path = Path(path_from_display(name))
    if path.is_file():
        from pipeline.inputs.images import ImageDecodeError, decode_image

        try:
            return decode_image(path), None
        except (ImageDecodeError, OSError) as error:
            return None, f"{side} file not readable: {error}"
    match = _STACK_NAME.match(name)
    if match and Path(match["path"]).is_dir():
        import zarr

        try:
            array = zarr.open_array(match["path"], mode="r")
            picture = np.asarray(array[int(match["index"])])
        except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
            return None, f"{side} stack {match['path']} not readable: {error}"
        if channel_axis is not None:
            axis = channel_axis if channel_axis < 0 else channel_axis - 1
            picture = np.moveaxis(picture, axis, -1)
        return picture, None
    if match:
        return None, f"{side} {name} cannot be read again (an in-memory array, or a stack now gone)"
    if path.is_absolute():
        return None, f"{side} file gone since the run: {name}"
    return None, (
        f"{side} file not found: {name} (a relative path, looked for from {Path.cwd()}; "
        "the results do not record the folder the run started in)"
    )


def _sources(ds: xr.Dataset) -> dict[str, Any]:
    text = ds.attrs.get("sources")
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- recomputed maps -----------------------------------------------------------


def recompute_maps(
    ds: xr.Dataset, reference: np.ndarray, generated: np.ndarray
) -> dict[str, np.ndarray]:
    """SSIM, l, c and s maps of one pair, with the SSIM settings recorded in ``ds.attrs``."""
    from pipeline.metrics.score import ssim

    attrs = ds.attrs
    params = {
        name: attrs[f"ssim_{name}"]
        for name in SSIM_PARAMETERS
        if attrs.get(f"ssim_{name}") is not None
    }
    data_range = attrs.get("data_range")
    coloured = reference.ndim == 3
    color_mode = str(attrs.get("color_mode", "channels"))
    result = ssim(
        reference,
        generated,
        data_range=float(data_range) if isinstance(data_range, int | float) else None,
        profile=str(attrs.get("profile", "wang2004")),
        channel_axis=-1 if coloured else None,
        color_mode=color_mode if coloured and color_mode != "grey" else "channels",
        full=True,
        **params,
    )
    assert isinstance(result, tuple)  # full=True returns (score, maps)
    out = {}
    for name in _MAP_NAMES:
        values = np.asarray(result[1][name], dtype=np.float64)
        # Per-channel maps: their mean, as the engine stores them.
        out[name] = values.mean(axis=-1) if values.ndim == 3 else values
    return out
