"""Shared fixtures of the command-line tests: folders of image pairs, dry-run settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PIL import Image

from pipeline.cli.main import main


def _make_folders(
    root: Path, rng: np.random.Generator, n: int = 4, bad: bool = False
) -> tuple[Path, Path]:
    ref, gen = root / "ref", root / "gen"
    ref.mkdir(parents=True)
    gen.mkdir(parents=True)
    for i in range(n):
        x = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
        y = np.clip(x.astype(int) + rng.integers(-25, 26, x.shape), 0, 255).astype(np.uint8)
        Image.fromarray(x).save(ref / f"img{i}.png")
        Image.fromarray(y).save(gen / f"img{i}.png")
    Image.fromarray(x).save(ref / "lonely.png")
    if bad:
        (gen / "img1.png").write_bytes(b"")
    return ref, gen


@pytest.fixture
def make_folders() -> Callable[..., tuple[Path, Path]]:
    """``make_folders(root, rng, n=4, bad=False)``: ``n`` RGB pairs and one unpaired reference.

    With ``bad``, the generated ``img1.png`` is an empty file.
    """
    return _make_folders


@pytest.fixture
def pair(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    return _make_folders(tmp_path / "data", rng)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three RGB pairs of 48x48 pixels and a label mask, made once for the module."""
    root = tmp_path_factory.mktemp("settings")
    rng = np.random.default_rng(20040413)
    for side in ("ref", "gen"):
        (root / side).mkdir()
    for i in range(3):
        x = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        y = np.clip(x.astype(int) + rng.integers(-20, 21, x.shape), 0, 255).astype(np.uint8)
        Image.fromarray(x).save(root / "ref" / f"im{i}.png")
        Image.fromarray(y).save(root / "gen" / f"im{i}.png")
    labels = zarr.create_array(root / "labels.zarr", shape=(48, 48), dtype="int32")
    labels[:] = np.repeat(np.arange(2, dtype=np.int32), 24)[:, None] * np.ones((1, 48), np.int32)
    return root


def _dry_run_config(
    root: Path, arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    argv = [
        "evaluate",
        str(root / "ref"),
        str(root / "gen"),
        "--out",
        str(root / "r.zarr"),
        *(a.format(tmp=root) for a in arguments),
        "--dry-run",
        "--json",
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    config: dict[str, Any] = json.loads(captured.out)["config"]
    return config


@pytest.fixture
def dry_run_config() -> Callable[[Path, list[str], pytest.CaptureFixture[str]], dict[str, Any]]:
    """``dry_run_config(root, arguments, capsys)``: the configuration a dry run prints."""
    return _dry_run_config
