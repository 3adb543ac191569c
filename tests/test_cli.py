"""The command line through ``main([...])``: every subcommand, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pipeline as sp
import pipeline.folders as folders
from pipeline.cli import main


def _folders(
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
def pair(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    return _folders(tmp_path / "data", rng)


def test_evaluate_ok_prints_summary_and_progress(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.zarr"
    assert main(["evaluate", str(pair[0]), str(pair[1]), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "ok" in captured.out and "worst pairs" in captured.out
    assert "lonely.png" in captured.out  # unpaired file listed in the summary
    assert "batches" in captured.err  # the progress bar
    ds = sp.open_results(out)
    assert (ds.status.values == "ok").all() and ds.sizes["image"] == 4


def test_failed_pairs_exit_1_and_are_listed(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, gen = _folders(tmp_path / "data", rng, bad=True)
    code = main(["evaluate", str(ref), str(gen), "--out", str(tmp_path / "r.zarr"), "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # --quiet: no table
    assert "img1.png" in captured.err and "empty file" in captured.err
    assert "batches" not in captured.err  # --quiet: no progress bar


def test_json_summary_parses(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.csv"
    assert main(["evaluate", *map(str, pair), "--out", str(out), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] == 4 and summary["failed"] == 0
    assert summary["unpaired"]["reference"] == ["lonely.png"]
    assert summary["results"] == str(out) and out.is_file()


def test_config_file_and_overrides(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("profile: skimage\nregions: 2x2\n")
    out = tmp_path / "r.zarr"
    args = ["evaluate", *map(str, pair), "--out", str(out), "--config", str(config)]
    assert main([*args, "--regions", "1x2", "--quiet"]) == 0
    ds = sp.open_results(out)
    assert ds.region.values.tolist() == ["all", "r0c0", "r0c1"]
    stored = json.loads(ds.attrs["config"])
    assert stored["profile"] == "skimage" and stored["regions"] == "1x2"


def test_dry_run_computes_nothing(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("decoded during a dry run")

    monkeypatch.setattr(folders, "decode_batch", refuse)
    out = tmp_path / "r.zarr"
    args = ["evaluate", *map(str, pair), "--out", str(out), "--regions", "2x2", "--dry-run"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "pairs found: 4" in text and "unpaired: 1 reference" in text
    assert "32x40x3 uint8" in text and "estimated work" in text and "regions: 2x2" in text
    assert not out.exists()
    assert main([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["pairs"] == 4 and plan["size_groups"][0]["shape"] == [32, 40, 3]
    assert plan["config"]["regions"] == "2x2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{ref}", "{missing}", "--out", "{tmp}/r.zarr"], "generated folder not found"),
        (["evaluate", "{ref}", "{gen}", "--out", "{tmp}/r.zarr", "--regions", "x"], "regions must"),
        (["evaluate", "{ref}", "{gen}"], "--out RESULTS is required"),
        (["evaluate", "{ref}", "{gen}", "--out", "{file}/r.zarr"], "cannot be written"),
        (["evaluate", "{ref}", "{gen}", "--out", "{tmp}/r.txt"], "cannot tell the output format"),
        (
            ["evaluate", "{ref}", "{gen}", "--out", "{tmp}/r.zarr", "--config", "{tmp}/no.yaml"],
            "cannot read configuration file",
        ),
        (
            ["evaluate", "{ref}", "{gen}", "--out", "{tmp}/r.zarr", "--scheduler", "bogus"],
            "cluster.scheduler must be one of",
        ),
        (["report", "{tmp}/none.zarr"], "results not found"),
        (["ingest", "{missing}", "--out", "{tmp}/s.zarr"], "not found"),
        (["frobnicate"], "invalid choice"),
        ([], "usage"),
    ],
)
def test_usage_errors_exit_2_without_traceback(
    argv: list[str],
    message: str,
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "afile").write_text("x")
    names = {
        "ref": pair[0],
        "gen": pair[1],
        "missing": tmp_path / "missing",
        "tmp": tmp_path,
        "file": tmp_path / "afile",
    }
    assert main([a.format(**{k: str(v) for k, v in names.items()}) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_existing_output_is_refused_then_resumed(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", *map(str, pair), "--out", str(tmp_path / "r.zarr"), "--quiet"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert main([*args, "--overwrite"]) == 0


def test_report_and_ingest(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.zarr"
    assert main(["evaluate", *map(str, pair), "--out", str(out), "--quiet"]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").is_file()
    assert main(["ingest", str(pair[0]), "--out", str(tmp_path / "s.zarr"), "--quiet"]) == 0
    assert (tmp_path / "s.zarr" / "32x40x3_uint8" / "images").is_dir()


def test_module_demo_and_console_script(tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--out", str(tmp_path / "demo"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    ds = sp.open_results(tmp_path / "demo" / "results.zarr")
    assert (ds.status.values == "ok").all()
    assert ds.attrs["unpaired_reference"] == ["people/unpaired_coins.png"]
    script = Path(sys.executable).with_name("ssim-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline"]
    help_run = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert help_run.returncode == 0 and "evaluate" in help_run.stdout
