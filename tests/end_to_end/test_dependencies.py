"""Every third-party module that ``pipeline`` imports is declared in pyproject.toml.

A package that arrives only as another one's dependency (scipy through scikit-image,
pandas through xarray) can vanish when that one changes: each import names its own
distribution. Modules imported when ``pipeline`` is imported (module level) must come
from ``[project] dependencies``; the optional ones (CuPy, torch, distributed, ...) belong
to an extra and are imported inside the function that needs them.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

# Import names that differ from their distribution's name.
DISTRIBUTION = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "cupy": "cupy-cuda12x",
    "cupyx": "cupy-cuda12x",
}
# Extras that ``pipeline`` itself may import from (lazily); test, bench and notebooks
# serve the tests, benchmarks and notebooks only.
RUNTIME_EXTRAS = ("cluster", "gpu", "torch")


def normalise(name: str) -> str:
    """A distribution name as pip compares it (``dask_cuda`` and ``Dask-CUDA`` alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, f"pyproject.toml: cannot read the requirement {requirement!r}"
    return normalise(match.group(0))


def declared() -> tuple[set[str], set[str]]:
    """(core distributions, distributions of the runtime extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    extras = project.get("optional-dependencies", {})
    optional = {requirement_name(r) for extra in RUNTIME_EXTRAS for r in extras.get(extra, [])}
    return core, optional


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level module name, line, imported at module level) of each absolute import."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(
                    (a.name.split(".")[0], child.lineno, module_level) for a in child.names
                )
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0 and child.module:
                    found.append((child.module.split(".")[0], child.lineno, module_level))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and is_type_checking(child):
                visit(child, False)  # read by type checkers only
            else:
                # class bodies, if/try/with blocks at module level still run at import
                visit(child, module_level)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), True)
    return found


def third_party() -> list[tuple[str, str, int, bool]]:
    """(import name, file, line, module level) of each third-party import under pipeline/."""
    local = {"pipeline"}
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, line, module_level in imports(path):
            if name in sys.stdlib_module_names or name in local:
                continue
            out.append((name, str(path.relative_to(ROOT)), line, module_level))
    return out


def distribution(name: str) -> str:
    return normalise(DISTRIBUTION.get(name, name))


def test_the_walk_sees_the_known_imports():
    """The AST walk finds module-level and function-level imports alike."""
    seen = {(name, module_level) for name, _, _, module_level in third_party()}
    assert ("numpy", True) in seen
    assert ("torch", False) in seen  # inside a function of pipeline/nn
    assert ("torch", True) not in seen


def test_every_import_is_declared():
    core, optional = declared()
    undeclared = [
        f"{file}:{line}: imports {name} (distribution {distribution(name)})"
        for name, file, line, _ in third_party()
        if distribution(name) not in core | optional
    ]
    assert not undeclared, (
        "add these to [project] dependencies (or, imported lazily, to an extra) in "
        "pyproject.toml, or name the distribution in DISTRIBUTION:\n" + "\n".join(undeclared)
    )


def test_optional_packages_are_imported_lazily():
    """``import pipeline`` must work with the core dependencies alone."""
    core, _ = declared()
    eager = [
        f"{file}:{line}: imports {name} at module level, but {distribution(name)} is not"
        " in [project] dependencies"
        for name, file, line, module_level in third_party()
        if module_level and distribution(name) not in core
    ]
    assert not eager, "move these imports into the function that needs them:\n" + "\n".join(eager)
