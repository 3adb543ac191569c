"""``save_maps``: each pair's valid SSIM maps written to Zarr, in the batch's own compute.

The maps store is the results store's ``maps`` group, or ``maps_output``. One model:
arrays ``ssim``, ``luminance``, ... shaped ``(image, y, x)`` at the store's top,
chunked like the input. Several models: the same arrays in one group per model
(:func:`pipeline.results.stores.maps_groups` names the groups; each group's attrs
name its model, the root's ``models`` maps every model to its group), so each
group reads as a one-model store.

A batch's map writes are tasks of the same ``dask.compute`` as its statistics: the
decoded blocks are read once for both, and with several models the reference's
decode tasks are shared by every model's writes too. A pair that failed (a file
not read, a model that lacks the file) has NaN maps: what its blocks held were
placeholders, not its data. The NaN are written before the batch's status is
committed, so an interrupted run that resumes computes the batch again, maps and all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import dask.array as da
import numpy as np
import zarr

from pipeline.engine.batches import run_storage_options
from pipeline.engine.plan import RunPlan
from pipeline.engine.settings import RunConfig
from pipeline.storage.locations import location, redact, zarr_store
from pipeline.tiling.chunks import valid_map_array

__all__ = ["MapWriter", "map_writer", "maps_path"]


def maps_path(config: RunConfig) -> str:
    """Where ``save_maps`` writes: ``maps_output``, else the Zarr output's ``maps`` group."""
    if config.maps_output is not None:
        return config.maps_output
    if config.output is not None and config.resolved_output_format() == "zarr":
        return f"{config.output.rstrip('/')}/maps"
    raise ValueError(
        "save_maps needs maps_output (a Zarr path) unless output is a Zarr store "
        f"(got output={config.output!r})"
    )


@dataclass(frozen=True)
class MapWriter:
    """The valid maps as one Dask array and the Zarr arrays they are stored into."""

    maps: da.Array
    targets: dict[str, zarr.Array]

    def store(self, start: int, stop: int) -> list[Any]:
        """The lazy writes of pairs ``[start, stop)``: to compute with the batch."""
        region = (slice(start, stop), slice(None), slice(None))
        return [
            da.store(
                self.maps[start:stop, :, :, k],
                cast(Any, target),
                regions=region,
                lock=False,
                compute=False,
            )
            for k, target in enumerate(self.targets.values())
        ]

    def clear_failed(self, status: Mapping[int, str], start: int, stop: int) -> None:
        """NaN maps for the failed pairs of ``[start, stop)`` (after :meth:`store` ran)."""
        for row in range(start, stop):
            if row in status:
                for target in self.targets.values():
                    target[row] = np.nan


def map_writer(plan: RunPlan, *, model: tuple[str, str] | None = None) -> MapWriter:
    """Create (or reopen, when resuming) the maps' Zarr arrays, chunked like the input.

    ``model``: ``(name, group)`` of one model of several, whose arrays go to its
    ``group`` of the maps store; the group's attrs record ``name`` and the root's
    ``models`` every model's group. Maps are saved for runs of one image size only
    (checked by ``plan_run``).
    """
    (size_group,) = plan.groups
    config, spec = plan.config, size_group.kernel
    names = config.maps
    x, y = size_group.pair.chunked(size_group.chunks)

    def stacked(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        maps = spec.maps(xb, yb)
        return np.stack([maps[name] for name in names], axis=-1)

    valid = valid_map_array(stacked, x, y, depth=spec.depth, n_maps=len(names))
    shape = tuple(int(s) for s in valid.shape[:3])
    chunk = (
        1,
        max(1, min(size_group.chunks[1][0], shape[1])),
        max(1, min(size_group.chunks[2][0], shape[2])),
    )
    path = maps_path(config)
    where = location(path, writable=True, what="maps_output")
    target: Any = where.path
    if where.remote:
        options = {"use_listings_cache": False, **run_storage_options(config)}
        target = zarr_store(where, options, read_only=False)
    store = zarr.open_group(target, mode="a", zarr_format=cast(Literal[2, 3], config.zarr_format))
    shown = redact(path)
    if model is not None:
        name, group = model
        known = store.attrs.get("models")
        known = dict(known) if isinstance(known, Mapping) else {}
        if known.get(name) != group:
            store.attrs["models"] = {**known, name: group}
        store = store.require_group(group)
        if store.attrs.get("model") != name:
            store.attrs["model"] = name
        shown = f"{shown}/{group}"
    targets = {}
    for map_name in names:
        if map_name in store:
            found = store[map_name]
            if not isinstance(found, zarr.Array) or found.shape != shape:
                raise ValueError(
                    f"maps store {shown!r} holds {map_name!r} of another shape "
                    f"(expected {shape}); pass overwrite=True or another maps_output"
                )
        else:
            found = store.create_array(
                map_name, shape=shape, chunks=chunk, dtype="float64", fill_value=np.nan
            )
        targets[map_name] = found
    # Dask chunks equal to the Zarr chunks: no two tasks ever write the same chunk.
    return MapWriter(valid.rechunk((*chunk, len(names))), targets)
