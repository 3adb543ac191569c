"""The regions grammar: parsed in one place, without NumPy or Dask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.reductions.region_spec import RegionSpec, parse_region_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", RegionSpec("all", "all")),
        ("labels", RegionSpec("labels", "labels")),
        ("4x3", RegionSpec("4x3", "grid", rows=4, cols=3)),
        ("256px", RegionSpec("256px", "tile", tile=256)),
    ],
)
def test_forms(text: str, expected: RegionSpec) -> None:
    assert parse_region_spec(text) == expected
    assert parse_region_spec(expected) is expected


@pytest.mark.parametrize("bad", ["4by4", "3x", "px", "x4", "", " all", 4, None])
def test_other_text_is_refused_with_the_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"regions must be 'all', a grid 'RxC' such as '4x4'"):
        parse_region_spec(bad)


@pytest.mark.parametrize("bad", ["0x4", "4x0", "0px"])
def test_sizes_below_one_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=rf"regions needs sizes of at least 1 \(got '{bad}'\)"):
        parse_region_spec(bad)


def test_imports_nothing_heavy() -> None:
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; import pipeline.reductions.region_spec; "
        "print([m for m in ('numpy', 'dask') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"
