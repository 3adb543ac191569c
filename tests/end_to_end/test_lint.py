"""The README's test command also runs the linters, the type checker and the import contracts.

The import contracts (``[tool.importlinter]`` in pyproject.toml, explained in
docs/architecture.md) keep the stages layered; the citation check keeps every comment,
docstring and message readable from the repository alone.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import background_runs
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra")
def test_ruff_lint_is_clean():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra")
def test_ruff_format_is_clean():
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


MYPY = [sys.executable, "-m", "mypy"]


@background_runs.starter("test_lint.py::test_mypy_is_clean")
def _start_mypy() -> None:
    # The longest check here (a cold cache type-checks the typed dependencies too): it
    # is queued when collected and runs beside the tests ahead of it (tests/background_runs.py).
    if importlib.util.find_spec("mypy") is not None:
        background_runs.start("mypy", MYPY, cwd=ROOT)


def test_mypy_is_clean():
    pytest.importorskip("mypy")
    result = background_runs.result("mypy", MYPY, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_are_kept():
    """``lint-imports``: stages import only downward; torch, CuPy, dask stay where they belong."""
    pytest.importorskip("importlinter")
    # The console script may not be on PATH (a virtual environment not activated): run its
    # function with this interpreter, and analyse this checkout's ``pipeline``, not an
    # installed copy.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = run(
        sys.executable,
        "-c",
        "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())",
        "--no-cache",
        "--no-logo",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# A file outside the repository (the reader cannot open it) or an issue number (the reader
# cannot follow it) cited in a comment, docstring or message: say the reason instead.
CITATION = re.compile(r"\b(?:DESIGN|FACTS|STYLE)\.md\b|\bissue\s*#?\s*\d+", re.IGNORECASE)


def test_no_citations_of_outside_files_or_issue_numbers():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked files")
    listed = run("git", "ls-files", "-z")
    assert listed.returncode == 0, listed.stderr
    this_file = Path(__file__).resolve()
    found = []
    for name in filter(None, listed.stdout.split("\0")):
        path = ROOT / name
        if path.resolve() == this_file or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file (figure, image fixture)
        for number, line in enumerate(text.splitlines(), 1):
            if CITATION.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "cites a file outside the repository or an issue number:\n" + "\n".join(found)


def _documents() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "benchmarks").glob("*.md")),
    ]


def test_documents_name_tests_and_modules_that_exist():
    # The error catalogue and the architecture page name tests (path::function, a bare
    # ::function continuing the previous path) and modules; a move must carry them along.
    tests = ROOT / "tests"
    missing = []
    for document in _documents():
        text = document.read_text()
        last = None
        for match in re.finditer(r"((?:tests/)?(?:[a-z_]+/)*test_\w+\.py)?::(test_\w+)", text):
            path = match.group(1)
            if path:
                last = tests / path.removeprefix("tests/")
            if last is None:
                continue
            source = last.read_text() if last.is_file() else ""
            if not re.search(rf"^(?:async )?def {match.group(2)}\b", source, re.M):
                missing.append(f"{document.name}: {last.relative_to(ROOT)}::{match.group(2)}")
        for match in re.finditer(r"(?<![\w/.])(pipeline|tests)/([\w/]+)\.py\b", text):
            if not (ROOT / match.group(1) / f"{match.group(2)}.py").is_file():
                missing.append(f"{document.name}: {match.group(0)}")
    assert not missing, "documents name tests or modules that do not exist:\n" + "\n".join(missing)
