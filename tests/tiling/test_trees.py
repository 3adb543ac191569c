"""The fixed reduction trees of :func:`pipeline.tiling.trees.reduction_tree`.

Reference values: the trees' orders written out by hand (which parts each task
combines, as nested tuples), and float64 sums in that written order (equal bit
for bit).
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask.task_spec import Task, TaskRef
from dask.threaded import get as threaded_get

from pipeline.tiling.trees import reduction_tree


def _leaves(n: int) -> tuple[dict, list[TaskRef]]:
    graph = {("leaf", i): Task(("leaf", i), str, i) for i in range(n)}
    return graph, [TaskRef(("leaf", i)) for i in range(n)]


def _run(*parts: object) -> tuple[object, ...]:
    return parts


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "0"),
        (2, ("0", "1")),
        (3, (("0", "1"), "2")),
        (5, ((("0", "1"), ("2", "3")), "4")),
        (7, ((("0", "1"), ("2", "3")), (("4", "5"), "6"))),
    ],
)
def test_pairs_carry_the_odd_one_out_up_a_level(n, expected) -> None:
    graph, leaves = _leaves(n)
    root = reduction_tree(graph, leaves, _run, fan_in=2, prefix="add", carry_single=True)
    assert len(graph) == n + n - 1  # n - 1 adds, no task for a carried leaf
    assert dask.get(graph, root.key) == expected


@pytest.mark.parametrize(
    ("n", "expected_tasks"), [(1, 1), (8, 1), (9, 3), (64, 9), (65, 12), (100, 16)]
)
def test_runs_of_eight_in_row_major_order(n, expected_tasks) -> None:
    graph, leaves = _leaves(n)
    root = reduction_tree(
        graph, leaves, _run, fan_in=8, prefix="merge", index=(3,), root=("out", 3, 0)
    )
    assert root.key == ("out", 3, 0)
    assert len(graph) - n == expected_tasks
    # Written out: the leaves in runs of 8, the runs' results in runs of 8 again.
    level: list[object] = [str(i) for i in range(n)]
    while True:
        level = [tuple(level[i : i + 8]) for i in range(0, len(level), 8)]
        if len(level) == 1:
            break
    assert dask.get(graph, root.key) == level[0]
    assert ("merge-0", 3, 0) in graph or n <= 8  # the levels' keys: (prefix-depth, *index, k)


def test_float_sums_follow_the_tree_bit_for_bit(rng) -> None:
    # Mixed magnitudes: the addition order shows in the last bits of float64 sums.
    values = rng.normal(size=(6, 50)) * 10.0 ** rng.integers(-8, 9, size=(6, 50))
    graph = {("v", i): Task(("v", i), np.copy, values[i]) for i in range(6)}
    leaves = [TaskRef(("v", i)) for i in range(6)]
    root = reduction_tree(graph, leaves, np.add, fan_in=2, prefix="sum", carry_single=True)
    v = list(values)
    written = ((v[0] + v[1]) + (v[2] + v[3])) + (v[4] + v[5])
    assert not np.array_equal(written, values.sum(axis=0))  # the order matters here
    for get in (dask.get, threaded_get):
        np.testing.assert_array_equal(get(graph, root.key), written)


def test_leading_arguments_go_to_every_task() -> None:
    graph, leaves = _leaves(10)
    root = reduction_tree(graph, leaves, _run, fan_in=8, prefix="m", args=("a",))
    assert dask.get(graph, root.key) == (
        "a",
        ("a", "0", "1", "2", "3", "4", "5", "6", "7"),
        ("a", "8", "9"),
    )


def test_refuses_no_leaves_and_a_fan_in_below_two() -> None:
    graph, leaves = _leaves(3)
    with pytest.raises(ValueError, match=r"fan_in must be at least 2 \(got 1\)"):
        reduction_tree(graph, leaves, _run, fan_in=1, prefix="m")
    with pytest.raises(ValueError, match=r"leaves must hold at least one task"):
        reduction_tree(graph, [], _run, fan_in=2, prefix="m")
