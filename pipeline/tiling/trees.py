"""Fixed reduction trees of Dask tasks: leaves combined ``fan_in`` at a time, level by level.

A lazy reduction over many blocks (a batch's mean-map sums over its image chunks,
a tile grid's packed statistics) is built here as a tree of tasks in a fixed
order, so its result does not depend on the scheduler: the leaves are combined in
consecutive runs of ``fan_in`` (``0 .. fan_in - 1``, the next ``fan_in``, ...,
the last run possibly shorter), the runs' results in runs again, until one is
left. :func:`reduction_tree` adds the tasks to a graph dict as
:class:`dask.task_spec.Task` objects (Dask's task specification; tuple tasks are
deprecated) and hands back a :class:`dask.task_spec.TaskRef` to the root.

Its callers: :func:`pipeline.tiling.chunks.merge_block_statistics` (runs of 8,
every run a task) and :func:`pipeline.engine.mean_maps.sum_chunks` (pairs, in
place, a lone last leaf carried up a level untouched).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dask.task_spec import Task, TaskRef
from dask.typing import Key

__all__ = ["reduction_tree"]


def reduction_tree(
    graph: dict[Key, Task],
    leaves: Sequence[TaskRef],
    combine: Callable[..., Any],
    *,
    fan_in: int,
    prefix: str,
    index: tuple[int, ...] = (),
    args: tuple[Any, ...] = (),
    root: Key | None = None,
    carry_single: bool = False,
) -> TaskRef:
    """Add the tasks of a tree that combines ``leaves`` ``fan_in`` at a time to ``graph``.

    Level ``d`` splits its items into consecutive runs of ``fan_in`` (the last run
    may be shorter) and gives each run one task, ``combine(*args, *run)``, keyed
    ``(f"{prefix}-{d}", *index, k)`` for run ``k``; level ``d + 1`` holds the runs'
    results in order. The order is fixed, so the result does not depend on the
    scheduler (a floating-point ``combine`` gives the same bits every time).

    Parameters
    ----------
    graph : dict
        The layer's tasks; the tree's tasks are added to it.
    leaves : sequence of dask.task_spec.TaskRef
        What is combined, in order (at least one).
    combine : callable
        ``combine(*args, *parts)``: the ``parts`` (leaves or earlier results) as one.
    fan_in : int
        The most parts one task combines (at least 2).
    prefix : str
        The start of the tree's task names.
    index : tuple of int
        Key parts between the name and the run's number: which tree this is, where
        one layer holds several (e.g. the image chunk, the block).
    args : tuple
        Leading arguments of every ``combine`` call.
    root : key, optional
        The last task's key (e.g. the output array's block key); by default it is
        named like the other tasks.
    carry_single : bool
        A run of one item gets no task: the item goes up to the next level as it is
        (a single leaf is then the root itself, no task added). By default every run
        is a task, a single leaf included (``combine`` of one part).

    Returns
    -------
    dask.task_spec.TaskRef
        The root: the result of the whole tree.

    Raises
    ------
    ValueError
        No leaves, or a ``fan_in`` below 2.
    """
    if fan_in < 2:
        raise ValueError(f"fan_in must be at least 2 (got {fan_in})")
    if not leaves:
        raise ValueError("leaves must hold at least one task to reduce (got none)")
    level = list(leaves)
    depth = 0
    # At least one level of tasks unless a lone leaf may be carried up as the root.
    while len(level) > 1 or (depth == 0 and not carry_single):
        runs = [level[i : i + fan_in] for i in range(0, len(level), fan_in)]
        final = len(runs) == 1
        above: list[TaskRef] = []
        for k, run in enumerate(runs):
            if carry_single and len(run) == 1:
                above.append(run[0])
                continue
            key: Key = root if final and root is not None else (f"{prefix}-{depth}", *index, k)
            graph[key] = Task(key, combine, *args, *run)
            above.append(TaskRef(key))
        level, depth = above, depth + 1
    return level[0]
