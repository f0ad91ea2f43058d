"""The package layering of docs/ARCHITECTURE.md, read from the import statements of every module: the core
(`infill`) imports no front end and no training code; the front ends (`lsp`, `httpserver`, the CLI) and
`training` sit above it, and only the CLI, the top floor, may import the others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the top-level packages of this repository it must never import
FRONT_ENDS = {"lsp", "httpserver", "infill_cli"}
FORBIDDEN = {
    "infill": FRONT_ENDS | {"training"},
    "lsp": {"httpserver", "infill_cli", "training"},
    "httpserver": {"lsp", "infill_cli", "training"},
    "training": FRONT_ENDS,
}
OURS = {"infill", "training", *FRONT_ENDS}


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports (relative imports stay inside its package and are skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imported_packages_sees_plain_from_and_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom lsp.server import X\n\ndef f():\n    import training.corpus\n")
    assert imported_packages(module) == {"os", "lsp", "training"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules under {package}/"
    offending = {
        str(module.relative_to(ROOT)): sorted(imported_packages(module) & FORBIDDEN[package])
        for module in modules
    }
    assert {name: bad for name, bad in offending.items() if bad} == {}


def test_the_cli_is_the_only_package_that_imports_the_front_ends() -> None:
    importers = {
        module.parent.relative_to(ROOT).parts[0]
        for module in ROOT.glob("*/**/*.py")
        if module.relative_to(ROOT).parts[0] in OURS
        and imported_packages(module) & (FRONT_ENDS - {module.relative_to(ROOT).parts[0]})
    }
    assert importers <= {"infill_cli"}, importers
