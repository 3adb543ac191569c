"""Every run setting from the command line: each field of RunConfig and ClusterSettings.

The walk is over the settings model's fields, so a new setting without a command-line
route (or without a case here) fails this file. Each case goes through
``main([... "--dry-run", "--json"])`` and reads the value back from the effective
configuration the dry run prints (``RunConfig.to_mapping``, the mapping a results
store records); one real run checks the results' ``config`` attr itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PIL import Image

import pipeline as sp
import pipeline.kernels.backend
from pipeline.cli.main import main
from pipeline.cli.parser import SETTING_OPTIONS
from pipeline.engine.schedulers import ClusterSettings
from pipeline.engine.settings import RunConfig

# field: (arguments, expected value in the stored configuration). "{tmp}" is the test's
# folder. Companions that a setting needs to be valid are given with it.
SETTING_CASES: dict[str, tuple[list[str], Any]] = {
    "profile": (["--profile", "skimage"], "skimage"),
    "window": (["--window", "uniform"], "uniform"),
    "win_size": (["--win-size", "7"], 7),
    "sigma": (["--sigma", "1.25"], 1.25),
    "k1": (["--k1", "0.02"], 0.02),
    "k2": (["--k2", "0.04"], 0.04),
    "covariance": (["--covariance", "sample"], "sample"),
    "data_range": (["--data-range", "200"], 200.0),
    "data_ranges": (["--set", "data_ranges.float32=1.0"], {"float32": 1.0}),
    "channel_axis": (["--channel-axis", "-1"], -1),
    "color_mode": (["--color-mode", "luma"], "luma"),
    "regions": (["--regions", "2x2"], "2x2"),
    "labels": (["--regions", "labels", "--labels", "{tmp}/labels.zarr"], "{tmp}/labels.zarr"),
    "label_names": (
        ["--regions", "labels", "--labels", "{tmp}/labels.zarr", "--set", "label_names.1=road"],
        {"1": "road"},
    ),
    "hist_bins": (["--hist-bins", "50"], 50),
    "nan_policy": (["--nan-policy", "mask"], "mask"),
    "missing_chunks": (["--missing-chunks", "fill"], "fill"),
    "max_image_pixels": (["--max-image-pixels", "1000000"], 1_000_000),
    "max_input_elements": (["--max-input-elements", "123456789"], 123_456_789),
    "ms_ssim": (["--ms-ssim", "--ms-weights", "0.5,0.5"], True),
    "ms_weights": (["--ms-ssim", "--set", "ms_weights=[0.25, 0.75]"], [0.25, 0.75]),
    # A folder source is planned as a volume one slice deep here: a 1-wide window fits.
    "volume": (["--volume", "--win-size", "1"], True),
    "chunks": (["--chunks", "1,16,16"], [1, 16, 16]),
    "chunk_pixels": (["--chunk-pixels", "4096"], 4096),
    "batch_images": (["--batch-images", "2"], 2),
    "save_maps": (["--save-maps"], True),
    "maps": (["--save-maps", "--maps", "ssim,contrast"], ["ssim", "contrast"]),
    "maps_output": (["--maps-output", "{tmp}/maps.zarr"], "{tmp}/maps.zarr"),
    "output": (["--out", "{tmp}/other.nc"], "{tmp}/other.nc"),
    "output_format": (["--format", "netcdf"], "netcdf"),
    "zarr_format": (["--zarr-format", "2"], 2),
    "resume": (["--resume"], True),
    "overwrite": (["--overwrite"], True),
    "engine": (["--engine", "reference"], "reference"),
    "device": (["--device", "gpu"], "gpu"),
    "cluster": (["--set", "cluster.workers=3"], {**ClusterSettings(workers=3).to_mapping()}),
}

CLUSTER_CASES: dict[str, tuple[list[str], Any]] = {
    "scheduler": (["--scheduler", "synchronous"], "synchronous"),
    "workers": (["--workers", "5"], 5),
    "threads_per_worker": (["--set", "cluster.threads_per_worker=2"], 2),
    "cores": (["--set", "cluster.cores=8"], 8),
    "memory": (["--set", "cluster.memory=16GB"], "16GB"),
    # Quoted: YAML 1.1 reads a bare 01:00:00 as the sexagesimal integer 3600.
    "walltime": (["--set", "cluster.walltime='01:00:00'"], "01:00:00"),
    "queue": (["--set", "cluster.queue=gpu"], "gpu"),
    "account": (["--set", "cluster.account=proj42"], "proj42"),
    "job_directives": (["--set", "cluster.job_directives=[--gres=gpu:1]"], ["--gres=gpu:1"]),
    "connect_timeout": (["--set", "cluster.connect_timeout=2.5"], 2.5),
    "dashboard_address": (["--set", "cluster.dashboard_address=':8790'"], ":8790"),
    "performance_report": (
        ["--scheduler", "local", "--performance-report", "{tmp}/perf.html"],
        "{tmp}/perf.html",
    ),
    "extra": (["--set", "cluster.extra.worker_timeout=60"], {"worker_timeout": 60}),
}


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


def test_every_setting_has_a_case_and_a_help_text() -> None:
    assert set(SETTING_CASES) == set(RunConfig.model_fields)
    assert set(CLUSTER_CASES) == set(ClusterSettings.model_fields)
    assert set(SETTING_OPTIONS) == set(RunConfig.model_fields)
    for name, field in RunConfig.model_fields.items():
        assert field.description, f"{name} has no description (its --help text)"
        assert SETTING_OPTIONS[name].help.startswith(field.description)


@pytest.mark.parametrize("name", list(SETTING_CASES))
def test_every_run_setting_is_set_from_the_command_line(
    name: str,
    inputs: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A dry run plans device="gpu" only where a GPU answers; it computes nothing there.
    monkeypatch.setattr(pipeline.kernels.backend, "gpu_available", lambda: True)
    arguments, expected = SETTING_CASES[name]
    default = RunConfig().to_mapping()[name]
    if isinstance(expected, str):
        expected = expected.format(tmp=inputs)
    assert expected != default, "a case must set a value other than the default"
    assert _dry_run_config(inputs, arguments, capsys)[name] == expected


@pytest.mark.parametrize("name", list(CLUSTER_CASES))
def test_every_cluster_setting_is_set_from_the_command_line(
    name: str, inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, expected = CLUSTER_CASES[name]
    if isinstance(expected, str):
        expected = expected.format(tmp=inputs)
    assert expected != ClusterSettings().to_mapping()[name]
    assert _dry_run_config(inputs, arguments, capsys)["cluster"][name] == expected


def test_set_wins_over_options_and_options_over_the_config_file(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = inputs / "run.yaml"
    config_file.write_text("win_size: 9\nhist_bins: 20\ncluster:\n  workers: 2\n  cores: 4\n")
    config = _dry_run_config(
        inputs,
        [
            *("--config", str(config_file), "--win-size", "7", "--hist-bins", "30"),
            *("--set", "hist_bins=40", "--set", "cluster.workers=6"),
        ],
        capsys,
    )
    assert config["win_size"] == 7 and config["hist_bins"] == 40
    # A dotted key replaces one entry of a section and keeps the others.
    assert config["cluster"]["workers"] == 6 and config["cluster"]["cores"] == 4


def test_a_real_run_stores_the_settings_given(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = inputs / "real.zarr"
    argv = ["evaluate", str(inputs / "ref"), str(inputs / "gen"), "--out", str(out), "--quiet"]
    argv += ["--window", "uniform", "--win-size", "5", "--covariance", "sample", "--k1", "0.02"]
    argv += ["--data-range", "200", "--color-mode", "luma", "--regions", "1x2", "--hist-bins", "40"]
    argv += ["--chunks", "1,48,48", "--batch-images", "2", "--zarr-format", "2"]
    argv += ["--engine", "reference", "--set", "data_ranges.uint8=250"]
    assert main(argv) == 0, capsys.readouterr().err
    ds = sp.open_results(out)
    stored = json.loads(ds.attrs["config"])
    expected = {
        "window": "uniform",
        "win_size": 5,
        "covariance": "sample",
        "k1": 0.02,
        "data_range": 200.0,
        "color_mode": "luma",
        "regions": "1x2",
        "hist_bins": 40,
        "chunks": [1, 48, 48],
        "batch_images": 2,
        "zarr_format": 2,
        "engine": "reference",
        "data_ranges": {"uint8": 250.0},
    }
    assert {key: stored[key] for key in expected} == expected
    assert ds.sizes["bin"] == 40 and ds.attrs["ssim_win_size"] == 5


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("novalue", r"--set needs KEY=VALUE, such as --set cluster.workers=4 \(got 'novalue'\)"),
        (
            "win-size=7",
            r"--set: unknown setting 'win-size' in key 'win-size'; did you mean 'win_size'",
        ),
        ("regoins=2x2", r"unknown setting 'regoins' .*did you mean 'regions'\?"),
        ("hist_bins.x=3", r"setting 'hist_bins' is not a section, so 'hist_bins.x'"),
        ("cluster.memory.x=1", r"'cluster.memory.x' names an entry inside 'memory'"),
        ("win_size=[7", r"--set win_size: the value '\[7' is not valid YAML"),
        ("cluster.workers=0", r"--set: cluster.workers must be a positive integer \(got 0\)"),
    ],
)
def test_set_errors_name_the_key(
    argument: str, message: str, inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(inputs / "ref"), str(inputs / "gen"), "--set", argument, "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_replace_dotted_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'regoins' in key 'regoins'"):
        RunConfig().replace_dotted({"regoins": "2x2"})
    with pytest.raises(ValueError, match=r"setting 'win_size' is not a section"):
        RunConfig(win_size=7).replace_dotted({"win_size.a": 1})
    with pytest.raises(ValueError, match=r"'cluster.scheduler.a' names an entry inside"):
        RunConfig().replace_dotted({"cluster.scheduler.a": 1})
    config = RunConfig().replace_dotted({"label_names.2": "sky", "regions": "all"})
    assert config.label_names == {2: "sky"}
