"""pipeline.cli.main: the command through ``main([...])``, subcommands, exit codes, messages.

Also covers :mod:`pipeline.cli.progress`, whose bar the command draws on stderr
(``--quiet`` leaves it out), and ``pipeline/__main__.py``: ``python -m pipeline`` is
run in ``test_module_demo_and_console_script`` (one line calling ``main``, no module of
its own to test). The grammar and the setting options are tested in test_parser.py;
the ``pair``, ``make_folders``, ``inputs`` and ``dry_run_config`` fixtures are in
conftest.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import background_runs
import numpy as np
import pytest
from PIL import Image

import pipeline as sp
import pipeline.inputs.folders as folders
from pipeline.cli.main import main
from pipeline.engine.settings import RunConfig

MakeFolders = Callable[..., tuple[Path, Path]]
DryRunConfig = Callable[[Path, list[str], pytest.CaptureFixture[str]], dict[str, Any]]


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
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, gen = make_folders(tmp_path / "data", rng, bad=True)
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


_DEMO: list[Path] = []


def _demo_command() -> tuple[list[str], Path]:
    """``python -m pipeline demo`` into a fresh folder (the same one for the early start)."""
    if not _DEMO:
        _DEMO.append(Path(tempfile.mkdtemp(prefix="demo-")) / "demo")
    out = _DEMO[0]
    return [sys.executable, "-m", "pipeline", "demo", "--out", str(out), "--quiet"], out


@background_runs.starter("cli/test_main.py::test_module_demo_and_console_script")
def _start_demo() -> None:
    # A whole demo run and report in a new interpreter: queued when collected, it runs
    # beside the tests ahead of it (tests/background_runs.py).
    background_runs.start("demo", _demo_command()[0])


def test_module_demo_and_console_script() -> None:
    command, out = _demo_command()
    try:
        demo = background_runs.result("demo", command, timeout=300)
        assert demo.returncode == 0, demo.stderr
        assert (out / "report" / "report.html").is_file()
        ds = sp.open_results(out / "results.zarr")
        assert (ds.status.values == "ok").all()
        assert ds.attrs["unpaired_reference"] == ["people/unpaired_coins.png"]
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    script = Path(sys.executable).with_name("ssim-pipeline")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline"]
    help_run = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert help_run.returncode == 0 and "evaluate" in help_run.stdout


# ---------------------------------------------------------------------------
# Messages in the command line's language


def test_refusals_name_the_options_not_the_keywords(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for out in (tmp_path / "r.zarr", tmp_path / "r.csv"):
        args = ["evaluate", *map(str, pair), "--out", str(out), "--quiet"]
        assert main(args) == 0
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "=True" not in err and "--overwrite" in err, err
    assert "pass --overwrite to replace it" in err  # the CSV output
    args = ["evaluate", *map(str, pair), "--out", str(tmp_path / "r.zarr"), "--quiet"]
    assert main(args) == 2
    assert "pass --resume to finish it or --overwrite to start again" in capsys.readouterr().err
    # An option value that the library names as a keyword argument.
    assert main([*args, "--overwrite", "--regions", "labels"]) == 2
    assert "--regions labels needs labels" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--ms-weights", "0.5,0.5"]) == 2
    assert "but ms_ssim is false; set --ms-ssim" in capsys.readouterr().err


def test_ingest_names_its_own_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s.zarr")]) == 2
    err = capsys.readouterr().err
    assert f"folder to ingest not found: {tmp_path / 'nowhere'}" in err
    assert "reference" not in err
    (tmp_path / "afile").write_text("x")
    assert main(["ingest", str(tmp_path / "afile"), "--out", str(tmp_path / "s.zarr")]) == 2
    assert "folder to ingest must be a folder of images, got a file" in capsys.readouterr().err


def test_existing_ingest_output_says_overwrite_option(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "s.zarr").mkdir()
    assert main(["ingest", str(pair[0]), "--out", str(tmp_path / "s.zarr"), "--quiet"]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Dry run


def test_dry_run_counts_size_groups_from_the_readable_pairs(
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, gen = make_folders(tmp_path / "data", rng, bad=True)  # img1's generated file is empty
    assert main(["evaluate", str(ref), str(gen), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["pairs"] == 4 and len(plan["failed_from_headers"]) == 1
    assert [group["pairs"] for group in plan["size_groups"]] == [3]
    assert plan["pixels"] == 3 * 32 * 40 * 3
    for name in ("img0.png", "img2.png", "img3.png"):
        (gen / name).write_bytes(b"")
    assert main(["evaluate", str(ref), str(gen), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "pairs found: 4 (4 already failed from headers)" in text
    assert "none: no pair can be read" in text and "uint8" not in text.split("size groups")[1]


def test_dry_run_warns_when_the_output_would_be_refused(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.zarr"
    base = ["evaluate", *map(str, pair), "--out", str(out)]
    assert main([*base, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert main([*base, "--quiet"]) == 0
    assert main([*base, "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "already exists and the run would be refused; pass --resume" in captured.out
    assert main([*base, "--dry-run", "--json", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert main([*base, "--dry-run", "--json", "--resume", "--hist-bins", "20"]) == 0
    captured = capsys.readouterr()
    (warning,) = json.loads(captured.out)["warnings"]
    assert "was written with a different configuration" in warning
    assert "warning: --out" in captured.err  # JSON stays clean on stdout
    assert main([*base, "--dry-run", "--json", "--overwrite", "--hist-bins", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    (pair[1] / "img3.png").unlink()  # another pair list: other sources
    assert main([*base, "--dry-run", "--json", "--resume"]) == 0
    (warning,) = json.loads(capsys.readouterr().out)["warnings"]
    assert "was written from different sources (source_fingerprint" in warning
    csv = ["evaluate", *map(str, pair), "--out", str(tmp_path / "r.csv")]
    assert main([*csv, "--quiet"]) == 0
    assert main([*csv, "--dry-run", "--json", "--resume"]) == 0
    (warning,) = json.loads(capsys.readouterr().out)["warnings"]
    assert "a csv output cannot be resumed: pass --overwrite" in warning


# ---------------------------------------------------------------------------
# Skipped files, and names that could drive the terminal


def _with_skipped_files(ref: Path) -> None:
    (ref / ".hidden.png").write_bytes((ref / "img0.png").read_bytes())
    (ref / "notes.txt").write_text("not an image")


def test_skipped_files_are_listed_with_the_folders_as_typed(
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, _ = make_folders(tmp_path / "data", rng, n=2)
    _with_skipped_files(ref)
    monkeypatch.chdir(tmp_path)
    typed = ["evaluate", "data/ref/", "./data/gen"]
    expected = [
        {"path": "data/ref/.hidden.png", "reason": "hidden file"},
        {"path": "data/ref/notes.txt", "reason": "extension '.txt' is not an image type"},
    ]
    assert main([*typed, "--out", "r.zarr", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == expected and summary["skipped_files"] == 2
    assert main([*typed, "--out", "r.zarr", "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "skipped files and folders (2):" in text
    assert "  data/ref/.hidden.png (hidden file)" in text
    assert main([*typed, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == expected
    assert main([*typed, "--dry-run"]) == 0
    assert "  skipped: data/ref/notes.txt (extension '.txt'" in capsys.readouterr().out


def test_names_are_escaped_for_the_terminal(
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, gen = make_folders(tmp_path / "data", rng, n=2)
    clear = "clear\x1b[2J.png"  # an ANSI sequence that would clear the screen
    flipped = "gpj.\u202eevil.png"  # a right-to-left override
    bell = "bell\x07.png"
    for name in (clear, flipped, bell):
        (ref / name).write_bytes((ref / "img0.png").read_bytes())
    (gen / flipped).write_bytes((gen / "img0.png").read_bytes())
    (gen / bell).write_bytes(b"")  # a failed pair, listed on stderr under --quiet
    raw = ("\x1b", "\u202e", "\x07")

    def clean(text: str) -> None:
        assert not any(char in text for char in raw), repr(text)

    out = str(tmp_path / "r.zarr")
    assert main(["evaluate", str(ref), str(gen), "--out", out]) == 1
    captured = capsys.readouterr()
    clean(captured.out)
    clean(captured.err)
    assert "clear\\x1b[2J.png" in captured.out and "gpj.\\u202eevil.png" in captured.out
    assert "bell\\x07.png" in captured.out  # failed pairs in the table
    assert main(["evaluate", str(ref), str(gen), "--out", out, "--overwrite", "--quiet"]) == 1
    captured = capsys.readouterr()
    clean(captured.err)
    assert "failed: bell\\x07.png: " in captured.err
    assert main(["evaluate", str(ref), str(gen), "--out", out, "--overwrite", "--json"]) == 1
    captured = capsys.readouterr()
    clean(captured.out)
    clean(captured.err)
    summary = json.loads(captured.out)  # JSON's own escapes give back the exact names
    assert summary["unpaired"]["reference"] == [clear, "lonely.png"]
    assert [f["image"] for f in summary["failures"]] == [bell]
    for flags in ([], ["--json"]):
        assert main(["evaluate", str(ref), str(gen), "--dry-run", *flags]) == 0
        captured = capsys.readouterr()
        clean(captured.out)
    assert main(["evaluate", str(ref / "img0.png"), str(gen / clear), "--dry-run"]) == 2
    err = capsys.readouterr().err  # an error message naming the file
    clean(err)
    assert "generated image file not found: " in err and "clear\\x1b[2J.png" in err


# ---------------------------------------------------------------------------
# Two image files


def _photograph_pair(root: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A crop of scikit-image's bundled camera photograph and a JPEG-compressed copy."""
    from skimage import data

    x = data.camera()[100:164, 200:280]
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x).save(root / "camera.png")
    Image.fromarray(x).save(root / "camera.jpg", quality=30)
    y = np.asarray(Image.open(root / "camera.jpg"))
    return root / "camera.png", root / "camera.jpg", x, y


def test_evaluate_two_image_files_is_one_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skimage.metrics import structural_similarity

    reference, generated, x, y = _photograph_pair(tmp_path / "files")
    out = tmp_path / "r.zarr"
    assert main(["evaluate", str(reference), str(generated), "--out", str(out), "--quiet"]) == 0
    ds = sp.open_results(out)
    assert ds.image.values.tolist() == ["camera.png"]
    assert ds.status.values.tolist() == ["ok"]
    # scikit-image 0.24+ with the wang2004 profile's settings (Gaussian 11x11, sigma 1.5,
    # population covariance), the reference that profile is tested against.
    expected = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert float(ds.ssim.sel(region="all").values[0]) == pytest.approx(expected, abs=1e-6)
    assert expected < 0.99  # the JPEG copy is not the same image


def test_evaluate_two_image_files_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, _, _, _ = _photograph_pair(tmp_path / "files")
    out = str(tmp_path / "r.zarr")
    assert main(["evaluate", str(reference), str(tmp_path / "no.png"), "--out", out]) == 2
    assert "generated image file not found: " in capsys.readouterr().err
    assert main(["evaluate", str(reference), str(tmp_path), "--out", out]) == 2
    assert "reference must be a folder of images, got a file" in capsys.readouterr().err
    broken = tmp_path / "files" / "broken.png"
    broken.write_bytes(b"")
    assert main(["evaluate", str(reference), str(broken), "--out", out, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: camera.png: " in err and "empty file" in err
    small = tmp_path / "files" / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    assert main(["evaluate", str(reference), str(small), "--out", out, "--overwrite"]) == 1
    assert "shape mismatch" in capsys.readouterr().out


def test_ingest_lists_skipped_files_under_the_folder_as_typed(
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref, _ = make_folders(tmp_path / "data", rng, n=1)
    _with_skipped_files(ref)
    (ref / "x\x1b[2J.txt").write_text("not an image either")
    monkeypatch.chdir(tmp_path)
    assert main(["ingest", "data/ref/", "--out", "s.zarr", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "skipped: data/ref/.hidden.png (hidden file)" in err
    assert "skipped: data/ref/notes.txt (extension '.txt' is not an image type)" in err
    assert "skipped: data/ref/x\\x1b[2J.txt (" in err and "\x1b" not in err


# ---------------------------------------------------------------------------
# --set KEY=VALUE: after the options and the configuration file


def test_set_wins_over_options_and_options_over_the_config_file(
    inputs: Path, capsys: pytest.CaptureFixture[str], dry_run_config: DryRunConfig
) -> None:
    config_file = inputs / "run.yaml"
    config_file.write_text("win_size: 9\nhist_bins: 20\ncluster:\n  workers: 2\n  cores: 4\n")
    config = dry_run_config(
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


# The errors of RunConfig.replace_dotted that --set relays (pipeline.engine.settings);
# its tests are in tests/engine/test_settings.py, where this one may move.
def test_replace_dotted_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'regoins' in key 'regoins'"):
        RunConfig().replace_dotted({"regoins": "2x2"})
    with pytest.raises(ValueError, match=r"setting 'win_size' is not a section"):
        RunConfig(win_size=7).replace_dotted({"win_size.a": 1})
    with pytest.raises(ValueError, match=r"'cluster.scheduler.a' names an entry inside"):
        RunConfig().replace_dotted({"cluster.scheduler.a": 1})
    config = RunConfig().replace_dotted({"label_names.2": "sky", "regions": "all"})
    assert config.label_names == {2: "sky"}


def test_evaluate_to_a_bucket_prints_the_url_and_json_without_credentials(
    pair: tuple[Path, Path],
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from s3_server import SECRET_KEY

    url = f"s3://{s3_bucket}/r.zarr"
    assert main(["evaluate", str(pair[0]), str(pair[1]), "--out", url, "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["results"] == url and summary["pairs"] == 4
    assert (sp.open_results(url).status.values == "ok").all()
    # The dry run reads the store's attrs: the run would be refused without --resume.
    args = ["evaluate", str(pair[0]), str(pair[1]), "--out", url, "--dry-run"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"output: {url}" in captured.out
    assert f"--out {url} already exists and the run would be refused" in captured.err
    # A URL given with user info (not a bucket name S3 accepts): refused, redacted.
    with_secret = f"s3://reader:{SECRET_KEY}@{s3_bucket}/r.zarr"
    assert main(["evaluate", str(pair[0]), str(pair[1]), "--out", with_secret]) == 2
    err = capsys.readouterr().err
    assert "s3://***@" in err and SECRET_KEY not in err
    assert (
        main(["evaluate", str(pair[0]), str(pair[1]), "--out", "https://example.org/r.zarr"]) == 2
    )
    assert "--out: https://example.org/r.zarr is read-only (HTTP)" in capsys.readouterr().err
    # report reads the bucket with the filesystem's options given on its command line.
    import s3fs

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    s3fs.S3FileSystem.clear_instance_cache()
    endpoint = f"endpoint_url={s3_server.endpoint}"
    report = tmp_path / "report"
    assert main(["report", url, "--out", str(report), "--storage-option", endpoint]) == 0
    assert (report / "report.html").is_file()


def test_several_generated_folders_are_one_run_reported_per_model(
    tmp_path: Path,
    rng: np.random.Generator,
    make_folders: MakeFolders,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref, gen = make_folders(tmp_path / "data", rng)
    worse = tmp_path / "data" / "worse"
    worse.mkdir()
    for path in sorted(gen.iterdir()):
        image = np.asarray(Image.open(path)).astype(int)
        noisy = np.clip(image + rng.integers(-60, 61, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(worse / path.name)
    (worse / "img1.png").write_bytes(b"")
    out = tmp_path / "r.zarr"
    code = main(["evaluate", str(ref), str(gen), str(worse), "--out", str(out)])
    assert code == 1  # one pair of model "worse" failed
    captured = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in captured.out.splitlines() if line}
    assert rows["gen"][3:5] == ["4", "0"] and rows["worse"][3:5] == ["3", "1"]
    assert float(rows["gen"][1]) > float(rows["worse"][1])  # mean SSIM per model
    assert "worse: img1.png" in captured.out and "empty file" in captured.out
    ds = sp.open_results(out)
    assert ds.model.values.tolist() == ["gen", "worse"]
    assert main(["evaluate", str(ref), str(gen), str(worse), "--out", str(out), "--json"]) == 2
    capsys.readouterr()  # refused: the store exists
    json_out = tmp_path / "j.zarr"
    main(["evaluate", str(ref), str(gen), str(worse), "--out", str(json_out), "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in summary["models"]] == ["gen", "worse"]
    assert [m["ok"] for m in summary["models"]] == [4, 3]
    assert summary["pairs"] == 8 and summary["failed"] == 1
    assert summary["models"][0]["unpaired"]["reference"] == ["lonely.png"]
