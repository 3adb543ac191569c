"""Start-up: ``import pipeline`` and ``ssim-pipeline --help`` load no numeric stack.

A behaviour-level file, named for what it checks rather than for one module: what a
fresh interpreter imports for ``import pipeline`` (``pipeline/__init__.py``: lazy
public names), for ``--help`` and ``evaluate --help`` (:mod:`pipeline.cli.main` and
:mod:`pipeline.cli.parser`, which adds the settings options of ``evaluate`` only when
``evaluate`` is used), and for the ``ds.review`` accessor, registered whichever of
``pipeline`` and ``xarray`` is imported first (:mod:`pipeline.review.accessor`).

Each check runs in a fresh interpreter (``sys.modules`` of this test process holds
everything already). Timing is left to ``benchmarks/bench_startup.py``: these
tests check what is imported, which is what makes ``--help`` fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "xarray", "dask", "numba", "matplotlib", "zarr", "scipy", "PIL")


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def test_import_pipeline_loads_no_numeric_stack() -> None:
    out = _python(
        f"""
        import json, sys
        import pipeline
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )
    assert json.loads(out) == []


def test_help_loads_neither_the_numeric_stack_nor_the_settings_model() -> None:
    out = _python(
        f"""
        import contextlib, io, json, sys
        from pipeline.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as text:
            code = main(["--help"])
        loaded = [m for m in {HEAVY!r} + ("pydantic", "yaml") if m in sys.modules]
        print(json.dumps({{"code": code, "loaded": loaded, "help": text.getvalue()}}))
        """
    )
    result = json.loads(out)
    assert result["code"] == 0 and result["loaded"] == []
    assert "evaluate" in result["help"] and "ingest" in result["help"]


def test_evaluate_help_lists_the_settings_without_the_numeric_stack() -> None:
    out = _python(
        f"""
        import contextlib, io, json, sys
        from pipeline.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as text:
            code = main(["evaluate", "--help"])
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        print(json.dumps({{"code": code, "loaded": loaded, "help": text.getvalue()}}))
        """
    )
    result = json.loads(out)
    assert result["code"] == 0 and result["loaded"] == []
    assert "--win-size N" in result["help"] and "(default wang2004)" in result["help"]


@pytest.mark.parametrize("first", ["pipeline", "xarray"])
def test_review_accessor_after_import_pipeline_and_xarray(first: str, tmp_path: Path) -> None:
    # Results written by evaluate, then opened in a fresh process with plain xarray.
    out = tmp_path / "r.zarr"
    x = __import__("numpy").zeros((2, 16, 16), dtype="uint8")
    pipeline.evaluate(x, x + 1, output=str(out))
    second = "xarray" if first == "pipeline" else "pipeline"
    printed = _python(
        f"""
        import warnings
        warnings.filterwarnings("error", message="registration of accessor")
        import {first}
        import {second}
        import xarray
        ds = xarray.open_zarr({str(out)!r}, consolidated=False)
        print(type(ds.review).__name__, len(ds.review.image_ids))
        import pipeline.review.accessor  # the real module: no second registration warning
        print(type(xarray.open_zarr({str(out)!r}, consolidated=False).review).__name__)
        """
    )
    assert printed.split() == ["ReviewAccessor", "2", "ReviewAccessor"]


def test_public_names_are_listed_and_load_on_first_use() -> None:
    assert set(pipeline.__all__) <= set(dir(pipeline))
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
    assert pipeline.RunConfig.__name__ == "RunConfig"
    with pytest.raises(AttributeError, match=r"module 'pipeline' has no attribute 'nope'"):
        _ = pipeline.nope  # type: ignore[attr-defined]
