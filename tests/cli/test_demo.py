"""pipeline.cli.demo: the demo folders.

Built offline from bundled photographs, deterministic, and they pair up.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

import pipeline
from pipeline.cli.demo import DEMO_ITEMS, make_demo_folders, warm_statistics_kernels
from pipeline.inputs.images import decode_image
from pipeline.inputs.pairing import pair_folders


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (the demo must work offline)."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _contents(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_demo_folders_are_made_offline_and_deterministic(tmp_path, no_network):
    ref, gen = make_demo_folders(tmp_path / "one")
    assert (ref, gen) == (tmp_path / "one" / "reference", tmp_path / "one" / "generated")
    again = make_demo_folders(tmp_path / "two")
    assert _contents(ref) == _contents(again[0])
    assert _contents(gen) == _contents(again[1])
    other_seed = make_demo_folders(tmp_path / "three", seed=1)
    assert _contents(gen) != _contents(other_seed[1])
    assert len(_contents(ref)) == len(DEMO_ITEMS) + 1
    assert len(_contents(gen)) == len(DEMO_ITEMS)
    assert any(name.endswith(".jpg") for name in _contents(gen))


def test_demo_pairs_groups_and_scores(tmp_path):
    ref, gen = make_demo_folders(tmp_path)
    plan = pair_folders(ref, gen)
    assert len(plan.pairs) == len(DEMO_ITEMS)
    assert plan.unpaired_reference == ("people/unpaired_coins.png",)
    assert plan.unpaired_generated == plan.ambiguous == plan.skipped == plan.failed == ()
    assert plan.pair("objects/rocket.png").generated.suffix == ".jpg"  # paired by stem
    shapes = {(group.shape, group.dtype) for group in plan.size_groups}
    assert shapes == {
        ((256, 256, 3), "uint8"),
        ((256, 384, 3), "uint8"),
        ((256, 256), "uint8"),
    }
    scores = {}
    for pair in plan.pairs:
        x, y = decode_image(pair.reference), decode_image(pair.generated)
        scores[pair.id] = pipeline.ssim(x, y, channel_axis=-1 if x.ndim == 3 else None)
    # Every distortion is visible but none destroys the image.
    assert all(0.4 < s < 0.995 for s in scores.values()), scores


def test_local_defect_stays_in_its_region(tmp_path):
    ref, gen = make_demo_folders(tmp_path)
    x = decode_image(ref / "grey/moon.png").astype(int)
    y = decode_image(gen / "grey/moon.png").astype(int)
    changed = np.argwhere(x != y)
    top, left = changed.min(axis=0)
    bottom, right = changed.max(axis=0)
    assert (top, left) == (32, 32) and (bottom, right) == (95, 95)


def test_demo_root_that_is_a_file(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(NotADirectoryError, match=r"demo root must be a folder, got a file: .*file"):
        make_demo_folders(file)


def test_warm_statistics_kernels_fills_the_numba_cache(tmp_path, monkeypatch):
    # The helper inherits NUMBA_CACHE_DIR: an empty cache, filled with the two
    # statistics kernels the demo's run calls (from which that run loads them).
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    helper = warm_statistics_kernels()
    assert helper.wait(timeout=600) == 0
    cached = {path.name.split("-")[0] for path in tmp_path.rglob("*.nbi")}
    assert {
        "partials.whole_image_statistics",
        "partials.region_statistics",
    } <= cached, cached
