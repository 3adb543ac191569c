"""The kernels sit at the bottom: they import no other stage and no private name.

A cross-cutting file of the kernels stage: it reads the imports of every module
under pipeline/kernels/, not the behaviour of any one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline

KERNELS = Path(pipeline.__file__).resolve().parent / "kernels"


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import in ``path`` (name None for ``import module``)."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.extend((node.module or "", alias.name) for alias in node.names)
    return found


def test_kernels_import_only_kernels_of_this_package() -> None:
    above = [
        f"{path.relative_to(KERNELS)}: {module}"
        for path in sorted(KERNELS.rglob("*.py"))
        for module, _ in _imports(path)
        if module.split(".")[0] == "pipeline" and not module.startswith("pipeline.kernels")
    ]
    assert above == []


def test_no_kernel_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{path.relative_to(KERNELS)}: {module}.{name}"
        for path in sorted(KERNELS.rglob("*.py"))
        for module, name in _imports(path)
        if module.startswith("pipeline") and name is not None and name.startswith("_")
    ]
    assert private == []
