"""pipeline.cli.parser: the command's grammar, its setting options and their help texts.

Every run setting from the command line: each field of RunConfig and ClusterSettings.
The walk is over the settings model's fields, so a new setting without a command-line
route (or without a case here) fails this file. Each case goes through
``main([... "--dry-run", "--json"])`` and reads the value back from the effective
configuration the dry run prints (``RunConfig.to_mapping``, the mapping a results
store records); one real run checks the results' ``config`` attr itself. A mistyped
option is reported by its subcommand with the closest valid one. How ``--set`` and a
configuration file combine with the options is the command's (test_main.py); the
``inputs`` folders and ``dry_run_config`` are fixtures of conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pipeline as sp
import pipeline.kernels.backend
from pipeline.cli.main import main
from pipeline.cli.parser import SETTING_OPTIONS
from pipeline.engine.schedulers import ClusterSettings
from pipeline.engine.settings import RunConfig

DryRunConfig = Callable[[Path, list[str], pytest.CaptureFixture[str]], dict[str, Any]]

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
    "mean_maps": (["--set", "mean_maps=true"], True),
    "output": (["--out", "{tmp}/other.nc"], "{tmp}/other.nc"),
    "output_format": (["--format", "netcdf"], "netcdf"),
    "zarr_format": (["--zarr-format", "2"], 2),
    "resume": (["--resume"], True),
    "overwrite": (["--overwrite"], True),
    "engine": (["--engine", "reference"], "reference"),
    "device": (["--device", "gpu"], "gpu"),
    "cluster": (["--set", "cluster.workers=3"], {**ClusterSettings(workers=3).to_mapping()}),
    # Values read as YAML; a secret is shown as *** wherever the settings are printed.
    "storage_options": (
        [
            "--storage-option",
            "anon=false",
            "--storage-option",
            "secret=s3cr3t-Do-Not-Print-7f3a9c1e5b",
            "--set",
            "storage_options.client_kwargs.region_name=eu-west-1",
        ],
        {"anon": False, "secret": "***", "client_kwargs": {"region_name": "eu-west-1"}},
    ),
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
    dry_run_config: DryRunConfig,
) -> None:
    # A dry run plans device="gpu" only where a GPU answers; it computes nothing there.
    monkeypatch.setattr(pipeline.kernels.backend, "gpu_available", lambda: True)
    arguments, expected = SETTING_CASES[name]
    default = RunConfig().to_mapping()[name]
    if isinstance(expected, str):
        expected = expected.format(tmp=inputs)
    assert expected != default, "a case must set a value other than the default"
    assert dry_run_config(inputs, arguments, capsys)[name] == expected


@pytest.mark.parametrize("name", list(CLUSTER_CASES))
def test_every_cluster_setting_is_set_from_the_command_line(
    name: str, inputs: Path, capsys: pytest.CaptureFixture[str], dry_run_config: DryRunConfig
) -> None:
    arguments, expected = CLUSTER_CASES[name]
    if isinstance(expected, str):
        expected = expected.format(tmp=inputs)
    assert expected != ClusterSettings().to_mapping()[name]
    assert dry_run_config(inputs, arguments, capsys)["cluster"][name] == expected


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


def test_mistyped_option_shows_the_subcommand_usage_and_the_closest_option(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", *map(str, pair), "--out", str(tmp_path / "r.zarr"), "--win-sise", "7"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: ssim-pipeline evaluate" in err
    assert "unrecognized option --win-sise; did you mean --win-size?" in err
    assert main(["ingest", str(pair[0]), "--out", str(tmp_path / "s.zarr"), "--overwrit"]) == 2
    err = capsys.readouterr().err
    assert "usage: ssim-pipeline ingest" in err and "did you mean --overwrite?" in err


def test_storage_option_needs_key_and_value(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["evaluate", "a", "b", "--storage-option", "anon"]) == 2
    assert "--storage-option needs KEY=VALUE, such as --storage-option anon=true" in (
        capsys.readouterr().err
    )


def test_ingest_takes_storage_options() -> None:
    from pipeline.cli.parser import build_parser, parse_command_line

    args = parse_command_line(
        build_parser(),
        ["ingest", "s3://b/photos", "--out", "x.zarr", "--storage-option", "anon=true"],
    )
    assert args.assignments == ["storage_options.anon=true"]
