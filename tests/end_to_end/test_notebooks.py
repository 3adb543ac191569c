"""The notebooks in notebooks/ run top to bottom in a real Jupyter kernel and are stored clean.

The kernel is ``python3`` as ipykernel (in the ``test`` extra, through ``notebooks``)
provides it: its wheel installs the kernelspec into ``sys.prefix/share/jupyter``, and
jupyter_client falls back to ipykernel's own copy when none is found; the spec's
``python`` is replaced by ``sys.executable``, so the kernel runs in the environment of
the tests. Each notebook runs in its own temporary working folder, which it must
leave empty: its data goes to the system's temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import background_runs
import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Per notebook; each makes its own small data and runs in well under a minute.
CELL_TIMEOUT_S = 120
# Modules of an extra other than notebooks that a notebook imports: where one is missing
# (.ci/run's second run installs the test extras without PyTorch), that notebook skips.
NEEDS = {"train_msssim_loss.ipynb": ("torch",)}


def test_the_notebooks_are_there():
    names = {path.name for path in NOTEBOOKS}
    assert {"gan_checkpoints.ipynb", "zarr_stack.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; strip them before committing"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


def _python3_kernel_runs_this_python() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    program = spec.argv[0]
    same = program in {"python", "python3", f"python3.{sys.version_info[1]}"}
    same = same or Path(program).resolve() == Path(sys.executable).resolve()
    assert same, (
        f"the 'python3' Jupyter kernel runs {program!r}, not this Python ({sys.executable}); "
        f"remove the kernelspec at {spec.resource_dir} or reinstall it with "
        f"'{sys.executable} -m ipykernel install --user'"
    )


# Runs one notebook with nbclient in a fresh interpreter, from the folder given, and
# stores the executed notebook (outputs included) for the test to check.
RUN_NOTEBOOK = """
import sys
import nbclient, nbformat
path, executed, folder, timeout = sys.argv[1:]
notebook = nbformat.read(path, as_version=4)
client = nbclient.NotebookClient(
    notebook, timeout=int(timeout), kernel_name="python3",
    resources={"metadata": {"path": folder}},
)
try:
    client.execute()  # raises CellExecutionError, with the traceback, at the first failure
finally:
    nbformat.write(notebook, executed)
"""

_FOLDERS: dict[Path, Path] = {}


def _run_command(path: Path) -> tuple[list[str], Path, dict[str, Any]]:
    """The command that runs notebook ``path``, the (fresh) folder it runs in, Popen options.

    The notebook's system temporary folder (``TMPDIR``) is a fresh one too: its data
    never meets another run's of the same notebook.
    """
    if path not in _FOLDERS:
        _FOLDERS[path] = Path(tempfile.mkdtemp(prefix=f"notebook-{path.stem}-"))
    folder = _FOLDERS[path]
    run_in, temporary = folder / "cwd", folder / "tmp"
    run_in.mkdir(exist_ok=True)
    temporary.mkdir(exist_ok=True)
    command = [
        sys.executable, "-c", RUN_NOTEBOOK, str(path), str(folder / "executed.ipynb"),
        str(run_in), str(CELL_TIMEOUT_S),
    ]  # fmt: skip
    return command, run_in, {"env": {**os.environ, "TMPDIR": str(temporary)}}


def _can_run(path: Path) -> bool:
    needed = ("ipykernel", "nbclient", *NEEDS.get(path.name, ()))
    return all(importlib.util.find_spec(name) is not None for name in needed)


def _starter(path: Path) -> None:
    # Each notebook is queued when collected and runs in its own kernel beside the tests
    # ahead of it (tests/background_runs.py); the test checks what it left.
    @background_runs.starter(f"test_notebook_runs_in_a_jupyter_kernel[{path.name}]")
    def begin() -> None:
        if _can_run(path):
            command, _, options = _run_command(path)
            background_runs.start(f"notebook {path.name}", command, **options)


for _path in NOTEBOOKS:
    _starter(_path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_a_jupyter_kernel(path):
    for name in ("ipykernel", "nbclient", *NEEDS.get(path.name, ())):
        pytest.importorskip(name)
    _python3_kernel_runs_this_python()
    command, run_in, options = _run_command(path)
    try:
        finished = background_runs.result(
            f"notebook {path.name}",
            command,
            timeout=CELL_TIMEOUT_S * len(_code_cells(path)),
            **options,
        )
        assert finished.returncode == 0, finished.stderr[-6000:]
        notebook = nbformat.read(run_in.parent / "executed.ipynb", as_version=4)
        errors = [
            output
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
            if output.output_type == "error"
        ]
        assert not errors, errors
        figures = sum(
            "image/png" in output.get("data", {})
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
        )
        assert figures >= 2, f"{path.name} displayed {figures} figures"
        # Run from its own folder, a notebook leaves nothing there (a checkout stays clean).
        left = sorted(p.name for p in run_in.iterdir())
        assert not left, f"{path.name} wrote {left} into the folder it ran in"
    finally:
        shutil.rmtree(run_in.parent, ignore_errors=True)


def _code_cells(path: Path) -> list[object]:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
