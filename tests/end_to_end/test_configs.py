"""Every file in configs/ is loaded (schema-validated) and run on small data.

Folder configurations run on the demo folders; a configuration with ``channel_axis``
(Zarr stacks) runs on stacks written by ``ingest`` from those folders. Configurations
whose ``cluster.scheduler`` starts or joins a cluster (slurm, pbs, local, an address)
are run with the scheduler overridden to ``threads``: the graph and the results are
the same everywhere, and the cluster paths have their own tests (tests/engine/test_schedulers.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pipeline as sp
from pipeline.cli.demo import make_demo_folders
from pipeline.cli.main import main
from pipeline.inputs.ingest import ingest_folder

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
_LOCAL = ("threads", "synchronous", "processes")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo_folders(tmp_path_factory.mktemp("demo"))


def test_the_required_configs_exist() -> None:
    names = {path.name for path in CONFIGS}
    assert {"default.yaml", "gan-folders.yaml", "zarr-stack.yaml", "cluster-slurm.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_runs(path: Path, demo: tuple[Path, Path], tmp_path: Path) -> None:
    config = sp.load_config(path)
    overrides: dict[str, object] = {"output": str(tmp_path / "results.zarr")}
    if config.scheduler not in _LOCAL:
        overrides["scheduler"] = "threads"  # see the module docstring
    if config.channel_axis is not None:
        reference, generated = (tmp_path / "ref.zarr", tmp_path / "gen.zarr")
        ingest_folder(demo[0], reference)
        ingest_folder(demo[1], generated)
        group = "256x256x3_uint8"
        inputs: tuple[Path, Path] = (reference / group / "images", generated / group / "images")
    else:
        inputs = demo
    ds = sp.evaluate(*inputs, config=config.replace(**overrides))
    assert (ds.status.values == "ok").all()
    assert np.isfinite(ds.ssim.sel(region="all").values).all()
    assert ds.attrs["config_fingerprint"] == config.replace(**overrides).fingerprint()


def test_cli_runs_a_config(demo: tuple[Path, Path], tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "gan-folders.yaml"
    args = ["evaluate", *map(str, demo), "--out", str(tmp_path / "r.zarr"), "--quiet"]
    assert main([*args, "--config", str(config)]) == 0
    assert sp.open_results(tmp_path / "r.zarr").sizes["region"] == 17
