"""Regenerate the README's figures from the notebooks' own code.

Runs the code cells of ``notebooks/gan_checkpoints.ipynb`` in this process (in a
temporary folder, IPython magics skipped) and saves the figure the notebook shows
for the worst pair of the late checkpoint: reference, generated output and the
saved SSIM, luminance, contrast and structure maps.

Usage::

    python docs/make_figures.py          # writes docs/figures/gan_worst_pair_maps.png
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "gan_checkpoints.ipynb"
FIGURES = ROOT / "docs" / "figures"


def run_notebook_code(path: Path, workdir: Path) -> dict[str, Any]:
    """Execute the code cells of a notebook in ``workdir``; return its namespace."""
    notebook = nbformat.read(path, as_version=4)
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            source = "\n".join(
                line for line in cell.source.splitlines() if not line.lstrip().startswith("%")
            )
            exec(compile(source, f"{path.name}[{index}]", "exec"), namespace)
    finally:
        os.chdir(previous)
    return namespace


def main() -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        namespace = run_notebook_code(NOTEBOOK, Path(workdir))
        previous = Path.cwd()
        os.chdir(workdir)  # the results name their files relative to the notebook's folder
        try:
            ds_late = namespace["ds_late"]
            figure = ds_late.review.show_pair(ds_late.review.worst(1).index[0])
        finally:
            os.chdir(previous)
        target = FIGURES / "gan_worst_pair_maps.png"
        figure.savefig(target, dpi=64)
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
