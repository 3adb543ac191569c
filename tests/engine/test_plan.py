"""pipeline.engine.plan: one plan per size group, each with its own values; plans stay frozen.

Also: many small images are planned as few tasks, and the engine modules import no cycle.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from PIL import Image

import pipeline.engine.run as run
from pipeline.engine.plan import GroupPlan, RunPlan, plan_run
from pipeline.engine.settings import RunConfig
from pipeline.inputs.opening import open_pair


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


@pytest.fixture
def two_sizes(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """Two 8-bit pairs of 40x48 and one 16-bit pair of 64x32."""
    ref, gen = tmp_path / "real", tmp_path / "fake"
    for name, shape, dtype, top in [
        ("a.png", (40, 48), np.uint8, 256),
        ("b.png", (40, 48), np.uint8, 256),
        ("c.png", (64, 32), np.uint16, 65536),
    ]:
        x = rng.integers(0, top, shape).astype(dtype)
        _save(ref / name, x)
        _save(gen / name, (top - 1 - x).astype(dtype))
    return ref, gen


def test_each_size_group_plan_holds_its_own_values(two_sizes):
    plan = plan_run(RunConfig(regions="24px"), open_pair(*map(str, two_sizes)))
    assert isinstance(plan, RunPlan) and len(plan.groups) == 2
    small, tall = plan.groups
    assert isinstance(small, GroupPlan)
    assert (small.start, small.stop, tall.start, tall.stop) == (0, 2, 2, 3)
    assert (small.data_range, tall.data_range) == (255.0, 65535.0)
    assert small.kernel.c1 == pytest.approx((0.01 * 255) ** 2)
    assert tall.kernel.c1 == pytest.approx((0.01 * 65535) ** 2)
    assert small.pair.image_shape == (40, 48) and tall.pair.image_shape == (64, 32)
    assert max(small.chunks[1]) <= 40 and max(tall.chunks[1]) == 64
    assert small.regions.names != tall.regions.names
    assert plan.region_names[: len(small.regions.names)] == small.regions.names
    assert set(plan.region_names) == set(small.regions.names) | set(tall.regions.names)
    assert plan.statistics.shape[:2] == (3, len(plan.region_names))
    assert all(a >= b for (a, _), (b, _) in zip(plan.batches[1:], plan.batches, strict=False))
    assert plan.group_of(1) is small and plan.group_of(2) is tall
    assert plan.attrs["data_range"] == "per dtype: 65535 (uint16), 255 (uint8)"


def test_a_single_size_run_is_one_group(rng):
    x = rng.integers(0, 256, (3, 30, 30), dtype=np.uint8)
    plan = plan_run(RunConfig(regions="2x2"), open_pair(x, x))
    (group,) = plan.groups
    assert (group.start, group.stop) == (0, 3)
    assert plan.region_names == group.regions.names
    assert plan.statistics is group.statistics
    assert plan.batches == group.batches


def test_plans_and_sources_are_not_changed_by_the_run(two_sizes, monkeypatch):
    ref, gen = two_sizes
    broken = gen / "b.png"
    broken.write_bytes(broken.read_bytes()[:80])  # a sound header: fails while decoded
    seen: list[RunPlan] = []

    def planned(config, pair):
        seen.append(plan_run(config, pair))
        return seen[-1]

    monkeypatch.setattr(run, "plan_run", planned)
    ds = run.evaluate(str(ref), str(gen), ms_ssim=False)
    (plan,) = seen
    assert ds.status.values[0] == "ok" and ds.status.values[1] != "ok"
    assert dict(plan.failed) == {} and dict(plan.pair.status) == {}
    assert all(dict(group.pair.status) == {} for group in plan.groups)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.groups[0].data_range = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.pair.status = {}  # type: ignore[misc]


def test_ms_ssim_values_are_kept_by_the_run_not_the_plan(rng, monkeypatch):
    x = rng.integers(0, 256, (2, 180, 180), dtype=np.uint8)
    seen: list[RunPlan] = []

    def planned(config, pair):
        seen.append(plan_run(config, pair))
        return seen[-1]

    monkeypatch.setattr(run, "plan_run", planned)
    first = run.evaluate(x, x, ms_ssim=True)
    second = run.evaluate(x, 255 - x, ms_ssim=True)
    assert first.ms_ssim.values.tolist() == [1.0, 1.0]
    assert (second.ms_ssim.values < 1).all()
    assert not any(hasattr(plan, "ms_values") for plan in seen)


def _engine_imports() -> dict[str, set[str]]:
    engine = Path(run.__file__).parent
    found: dict[str, set[str]] = {}
    for path in engine.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[f"pipeline.engine.{path.stem}"] = names
    return found


def test_engine_modules_import_no_cycle_and_not_the_package():
    imports = _engine_imports()
    assert not [m for m, names in imports.items() if "pipeline" in names], imports
    graph = {m: {n for n in names if n in imports and n != m} for m, names in imports.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [m for m in graph if reaches(m, m, {m})]
    assert not cycles, cycles


def test_many_small_images_are_few_tasks(rng):
    x = da.zeros((100_000, 16, 16), dtype=np.uint8, chunks=(1000, 16, 16))
    plan = plan_run(RunConfig(win_size=7), open_pair(x, x))
    assert len(plan.groups[0].chunks[0]) <= 100
    assert len(plan.statistics.dask) < 2000


def test_zarr_tiles_are_read_with_room_for_their_overlap(tmp_path, rng):
    # A planar group's Zarr stacks, read straight at the planned tiles, keep room for
    # the window's half-width around each tile: the block tasks add it in place.
    import zarr

    from pipeline.inputs.padded import room_around

    data = rng.integers(0, 256, (2, 40, 44), dtype=np.uint8)
    for name in ("x", "y"):
        zarr.create_array(tmp_path / f"{name}.zarr", data=data, chunks=(1, 10, 11))
    pair = open_pair(str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr"))
    (group,) = plan_run(RunConfig(chunks=(1, 20, 22)), pair).groups
    assert group.pair.halo == 5  # win_size 11
    x, _ = group.pair.chunked(group.chunks)
    rooms = {}

    def record(block, block_info=None):
        rooms[tuple(block_info[0]["chunk-location"][1:3])] = room_around(block).shape
        return block

    x.map_blocks(record, dtype=x.dtype).compute(scheduler="synchronous")
    # Each tile of the 2 x 2 grid has one neighbour along y and x: room on that side
    # only, none along the image axis (the source's own axes: image, y, x).
    assert rooms == {(i, j): (1, 25, 27) for i in (0, 1) for j in (0, 1)}


def test_colour_tasks_are_planned_by_whether_the_group_keeps_mean_maps() -> None:
    # The planner is told whether the size group keeps mean maps ("auto": on at 512x512
    # and below), and then counts a task's small images per channel; the numbers are
    # those of any other chunking.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    pair = open_pair(x, y, channel_axis=-1)
    on = plan_run(RunConfig(chunk_pixels=4 * 64 * 64), pair).groups[0]
    off = plan_run(RunConfig(chunk_pixels=4 * 64 * 64, mean_maps=False), pair).groups[0]
    assert on.map_sums is not None and off.map_sums is None
    # A task reads 4 x 64 x 64 pixels: 4 images per channel (evened to 8 tasks of 3), 1 times 3.
    assert on.chunks[0] == (3,) * 8 and off.chunks[0] == (1,) * 24
    settings = {"channel_axis": -1, "chunk_pixels": 4 * 64 * 64}
    with_maps = run.evaluate(x, y, **settings)
    without = run.evaluate(x, y, mean_maps=False, **settings)
    assert "mean_ssim_map" in with_maps and "mean_ssim_map" not in without
    for name in without.data_vars:
        np.testing.assert_array_equal(with_maps[name].values, without[name].values, err_msg=name)
