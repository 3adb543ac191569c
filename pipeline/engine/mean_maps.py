"""The run's mean maps: one lazy sum per commit batch, settled on the batch's ``ok`` pairs.

What :func:`pipeline.engine.run.evaluate` does for the ``mean_maps`` setting
(:mod:`pipeline.reductions.mean_maps` for the sums and their guarantees):

* each batch's map sum over *all* its rows comes from the statistics' own block
  tasks (the kernels add every map row to the block's sums in the same pass:
  :func:`pipeline.engine.graphs.statistics_graphs`), in the same ``dask.compute``;
* once the batch's statuses are known, a batch with a failed pair is summed
  again over its ``ok`` rows only, by the same tree of adds (:func:`sum_chunks`;
  failed pairs are rare, and a failed pair's map may hold NaN: it is never
  subtracted);
* in memory the batches' sums are added per size group; a Zarr output stores
  each batch's sums in its own slot, named by the batch's rows, before the
  batch's status is committed
  (:meth:`pipeline.results.stores.ZarrSink.write_mean_map_partial`), and the
  means are reduced from the slots of the plan's batches when every batch is
  committed (a batch without a slot, committed under another batch layout, is
  summed then). A resumed run therefore gives the uninterrupted run's mean: each
  batch is counted once, by its latest computation, whatever the run was
  interrupted by.

A run of several models has one :class:`MeanMapRun` per model (each model's own
plan and failed pairs), computed in the same batches and ``dask.compute`` calls;
its slots are kept apart by the model's position (:func:`slot_key`) and its means
get a leading ``model`` dimension (:func:`models_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.task_spec import Task, TaskRef

from pipeline.engine.batches import RunState, join_models
from pipeline.engine.graphs import mean_map_graph
from pipeline.engine.plan import RunPlan
from pipeline.reductions.mean_maps import MapSums
from pipeline.results.schema import (
    MEAN_MAPS,
    MEAN_REFERENCE,
    MODEL,
    STATUS_OK,
    mean_map_dataset,
)
from pipeline.tiling.chunks import batch_bounds
from pipeline.tiling.trees import reduction_tree

__all__ = [
    "MeanMapRun",
    "computed_sums",
    "keep_model_sums",
    "lazy_model_sums",
    "models_dataset",
    "settle_models",
    "slot_key",
    "sum_chunks",
]


def _add_into(total: np.ndarray, part: np.ndarray) -> np.ndarray:
    """``total += part``, in place: both are blocks of one batch's tree of adds."""
    total += part
    return total


def _held(columns: int, *blocks: np.ndarray) -> np.ndarray:
    """``(1, y, x, component)`` blocks (row-major, ``columns`` x blocks a row) as one sum.

    The ``(component, y, x)`` sum is returned in a 0-d object holder; one block (the
    whole map) is a view of the block task's own ``(component, y, x)`` sums: no copy.
    """
    if len(blocks) == 1:
        whole = np.moveaxis(blocks[0][0], -1, 0)
    else:
        rows = [
            np.concatenate([block[0] for block in blocks[i : i + columns]], axis=1)
            for i in range(0, len(blocks), columns)
        ]
        whole = np.ascontiguousarray(np.moveaxis(np.concatenate(rows, axis=0), -1, 0))
    holder = np.empty((), dtype=object)
    holder[()] = whole
    return holder


def sum_chunks(sums: da.Array) -> da.Array:
    """``(image chunk, y, x, component)`` sums added over the image chunks (a tree of adds).

    Each spatial block's image chunks are added pairwise, level by level (chunks
    ``0 + 1``, ``2 + 3``, ..., then those sums pairwise, an odd one out carried up
    a level: :func:`pipeline.tiling.trees.reduction_tree`): a fixed tree, so the
    result does not depend on the scheduler. Unlike ``sums.sum(axis=0)`` no group
    of blocks is concatenated and no step allocates: each adds a block into
    another, in place. The blocks of ``sums`` are therefore consumed: they must be
    sums made for this reduction and read by no other task of the same compute, as
    the block tasks' map sums are (each block task's own array, in one batch's
    sum: :func:`pipeline.engine.graphs.statistics_graphs` in the batch's compute,
    :func:`pipeline.engine.graphs.mean_map_graph` for a batch summed again).

    Returns
    -------
    dask.array.Array
        0-d, dtype object: its one element is the ``(component, y, x)`` float64 sum
        (:func:`computed_sums` reads it). Dask copies an array result (10 MB at
        512 x 512, on the client); the copy of an object array is of the reference.
    """
    name = "mean-map-batch-sum-" + tokenize(sums)
    keys: Any = sums.__dask_keys__()  # [image chunk][y block][x block][component block]
    layer: dict[Any, Task] = {}
    roots = []
    for iy in range(len(sums.chunks[1])):
        for ix in range(len(sums.chunks[2])):
            chunks = [TaskRef(keys[k][iy][ix][0]) for k in range(len(keys))]
            roots.append(
                reduction_tree(
                    layer,
                    chunks,
                    _add_into,
                    fan_in=2,
                    prefix=f"{name}-add",
                    index=(iy, ix),
                    carry_single=True,
                )
            )
    layer[(name,)] = Task((name,), _held, len(sums.chunks[2]), *roots)
    inputs: list[Any] = [sums]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=inputs)
    return da.Array(graph, name, chunks=(), dtype=object, meta=np.empty((), dtype=object))


def computed_sums(computed: np.ndarray) -> np.ndarray:
    """The ``(component, y, x)`` float64 sums held by a computed :func:`sum_chunks`.

    Raises
    ------
    TypeError
        ``computed`` is not the 0-d object holder :func:`sum_chunks` computes to.
    """
    if computed.shape != () or computed.dtype != object:
        raise TypeError(
            "computed must be the 0-d object holder of a computed sum_chunks "
            f"(got shape {computed.shape}, dtype {computed.dtype})"
        )
    return np.asarray(computed[()], dtype=np.float64)


def slot_key(group: int, model: int | None = None) -> str:
    """The store's slot group of a size group's batch sums (and of a model's, with several)."""
    return str(group) if model is None else f"model{model}-{group}"


def _uncompressed(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` whose mean maps and reference backdrop are stored without compression."""
    for name in (*MEAN_MAPS, MEAN_REFERENCE):
        ds[name].encoding["compressors"] = None
    return ds


def models_dataset(names: list[str], datasets: list[xr.Dataset]) -> xr.Dataset:
    """Per-model mean-map variables joined along a leading ``model`` dimension."""
    ds = join_models(names, datasets).drop_vars(MODEL)
    if all(d[MEAN_MAPS[0]].encoding.get("compressors", True) is None for d in datasets):
        return _uncompressed(ds)  # templates: keep their layout
    return ds


def _group_names(plan: RunPlan) -> tuple[str, ...]:
    """``"HxWxC"`` per size group; the dtype is added where two groups share a shape."""
    shapes = [(*g.pair.image_shape, g.pair.n_channels) for g in plan.groups]
    names = []
    for group, shape in zip(plan.groups, shapes, strict=True):
        name = "x".join(str(int(s)) for s in shape)
        if shapes.count(shape) > 1:
            name = f"{name} {np.dtype(group.pair.reference.dtype).name}"
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class MeanMapRun:
    """The mean-map graphs of a run's size groups, and where each batch's sums go.

    Attributes
    ----------
    plan : RunPlan
        The run.
    names : tuple of str
        The ``size_group`` names.
    shapes : tuple of (int, int)
        Each group's valid-map shape.
    graphs : tuple of dask.array.Array
        Each group's lazy ``(image chunk, y, x, component)`` sums, from the block
        tasks of its statistics (:attr:`pipeline.engine.plan.GroupPlan.map_sums`).
    model : int, optional
        The model's position in a run of several (None: a run of one).
    """

    plan: RunPlan
    names: tuple[str, ...]
    shapes: tuple[tuple[int, int], ...]
    graphs: tuple[da.Array, ...]
    model: int | None = None

    @classmethod
    def of(cls, plan: RunPlan, model: int | None = None) -> MeanMapRun | None:
        """The run's mean maps, or None when the ``mean_maps`` setting left them off.

        Whether they are on was decided, and the sums' graphs built, by
        :func:`pipeline.engine.plan.plan_run`.
        """
        graphs = tuple(g.map_sums for g in plan.groups)
        if any(m is None for m in graphs):
            return None
        sums = tuple(m for m in graphs if m is not None)
        valid = tuple((int(m.shape[1]), int(m.shape[2])) for m in sums)
        return cls(plan, _group_names(plan), valid, sums, model)

    @property
    def offset(self) -> int:
        return self.plan.groups[0].kernel.depth

    def group_of(self, start: int) -> int:
        """The size group (position) of the batch that starts at row ``start``."""
        for g, group in enumerate(self.plan.groups):
            if start < group.stop:
                return g
        raise IndexError(f"no commit batch starts at row {start}")

    def lazy_sums(self, start: int, stop: int, failed: Any) -> da.Array | None:
        """The batch's sum over its rows but those the plan knew to fail (None: every row failed).

        A batch is whole chunks along ``image``: the sum of their per-chunk sums.
        """
        if all(i in failed for i in range(start, stop)):
            return None
        g = self.group_of(start)
        group = self.plan.groups[g]
        bounds = batch_bounds(group.chunks[0])
        first, last = np.searchsorted(bounds, [start - group.start, stop - group.start])
        if bounds[first] != start - group.start or bounds[last] != stop - group.start:
            raise ValueError(f"batch [{start}, {stop}) is not whole image chunks")
        return sum_chunks(self.graphs[g][int(first) : int(last)])

    def settle(
        self,
        start: int,
        stop: int,
        computed: np.ndarray | None,
        failed: Any,
        compute_kwargs: dict[str, Any],
    ) -> MapSums:
        """The batch's sums over its ``ok`` rows (summed again when a row failed).

        ``computed`` is the batch's sum over all its rows (:meth:`lazy_sums`); a batch
        with a failed pair is summed again over its ``ok`` rows with
        :func:`pipeline.engine.graphs.mean_map_graph` (a second kernel pass, for that
        rare batch only: a failed pair's map may be NaN and is never subtracted),
        added up by :func:`sum_chunks` like the first: each of that graph's blocks is
        its own task's new array, read by the sum alone, so the adds may consume it.
        """
        g = self.group_of(start)
        group = self.plan.groups[g]
        ok = [i - group.start for i in range(start, stop) if i not in failed]
        if not ok:
            return MapSums.zeros(self.shapes[g])
        # The block tasks left out the pairs the plan knew to fail; others need a new sum.
        known = self.plan.failed
        if computed is None or any(i in failed and i not in known for i in range(start, stop)):
            again = mean_map_graph(group.pair, group.kernel, group.chunks, rows=np.asarray(ok))
            (computed,) = dask.compute(sum_chunks(again), **compute_kwargs)
        assert computed is not None
        return MapSums(computed_sums(computed), len(ok))

    def dataset(self, sums: list[MapSums] | None = None) -> xr.Dataset:
        """The mean-map variables (NaN, count 0 without ``sums``: a new store's template).

        The template's maps are laid out uncompressed in a Zarr store: float64 means
        barely compress, and compressing them cost more than the rest of writing them
        (about 0.1 s per run at 512 x 512, five maps).
        """
        if sums is None:
            return _uncompressed(mean_map_dataset(self.names, self.shapes, self.offset))
        return mean_map_dataset(
            self.names,
            self.shapes,
            self.offset,
            means=[s.means() for s in sums],
            counts=[s.count for s in sums],
        )

    def from_partials(self, sink: Any, compute_kwargs: dict[str, Any]) -> xr.Dataset:
        """The means from a store's per-batch slots, every batch being committed.

        Each batch of this run's plan adds its own slot (named by its rows). A batch
        without one -- committed by an interrupted run planned in other batches, or
        whose slot write was cut short -- is summed now over its stored ``ok`` pairs.
        The batches partition the rows: every pair is added once, none is missed.
        """
        status = None
        sums = []
        for g, group in enumerate(self.plan.groups):
            slots = sink.mean_map_partials(slot_key(g, self.model))
            total = MapSums.zeros(self.shapes[g])
            for a, b in group.batches:
                start, stop = a + group.start, b + group.start
                if (start, stop) in slots:
                    values, count = slots[(start, stop)]
                    total.add(MapSums(np.asarray(values, dtype=np.float64), count))
                    continue
                if status is None:
                    status = sink.stored_status()
                    if self.model is not None:
                        status = status[self.model]  # (model, image) with several models
                failed = {i for i in range(start, stop) if status[i] != STATUS_OK}
                total.add(self.settle(start, stop, None, failed, compute_kwargs))
            sums.append(total)
        return self.dataset(sums)


def lazy_model_sums(
    runs: list[MeanMapRun], states: list[RunState], start: int, stop: int
) -> list[da.Array | None]:
    """Each model's lazy sum of the batch (:meth:`MeanMapRun.lazy_sums`)."""
    return [
        run.lazy_sums(start, stop, state.status) for run, state in zip(runs, states, strict=True)
    ]


def keep_model_sums(
    states: list[RunState], lazy: list[da.Array | None], computed: list[np.ndarray]
) -> None:
    """Hand each model's computed sum (in the order of the non-None ``lazy``) to its state."""
    found = iter(computed)
    for state, wanted in zip(states, lazy, strict=True):
        state.batch_map = None if wanted is None else np.asarray(next(found))


def settle_models(
    runs: list[MeanMapRun],
    states: list[RunState],
    start: int,
    stop: int,
    compute_kwargs: dict[str, Any],
) -> list[MapSums]:
    """Each model's sums of the batch over its own ``ok`` pairs (:meth:`MeanMapRun.settle`)."""
    out = []
    for run, state in zip(runs, states, strict=True):
        computed, state.batch_map = state.batch_map, None
        out.append(run.settle(start, stop, computed, state.status, compute_kwargs))
    return out
