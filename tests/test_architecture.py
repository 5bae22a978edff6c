"""The import rules of docs/architecture.md hold in the code, read with `ast` (nothing is imported).

Every `import`, `from ... import` and `importlib.import_module("...")` in a package counts, at any
depth (inside functions too: a lazy import is still a dependency of the install that runs it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("posewheel", "training", "labeling", "serving", "flywheel")

# First-party packages each package may import (besides itself): the table in docs/architecture.md.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "posewheel": frozenset(),
    "training": frozenset({"posewheel"}),
    "labeling": frozenset({"posewheel"}),
    "serving": frozenset({"posewheel", "labeling"}),
    "flywheel": frozenset({"posewheel", "training", "labeling", "serving"}),
}
# The training stack: absent from a serving-only install (pyproject's `serve` extra, the Docker
# serving image), so neither the server nor the core it imports may touch it.
TRAINING_STACK = frozenset(
    {"torch", "torchvision", "lightning", "pytorch_lightning", "onnx", "onnxscript", "wandb", "dvc"}
)
MAY_NOT_IMPORT_THIRD_PARTY: dict[str, frozenset[str]] = {
    "posewheel": TRAINING_STACK,
    "serving": TRAINING_STACK,
    "labeling": TRAINING_STACK,
}


@dataclass(frozen=True)
class Import:
    """One imported top-level module name and where it is imported."""

    module: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def imports_in_source(source: str, filename: str, own_package: str) -> Iterator[Import]:
    """Top-level module names imported anywhere in `source`; relative imports resolve to `own_package`."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name.split(".")[0], filename, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            top = own_package if node.level > 0 else (node.module or "").split(".")[0]
            yield Import(top, filename, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(node.args[0].value.split(".")[0], filename, node.lineno)


def imports_of_package(package: str) -> list[Import]:
    """Every import in every module of `package` (a top-level folder of the repository)."""
    found: list[Import] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        found.extend(imports_in_source(path.read_text(encoding="utf-8"), relative, package))
    return found


def violations(package: str, found: list[Import]) -> list[Import]:
    """The imports of `package` that break the rules above."""
    allowed = MAY_IMPORT[package] | {package}
    banned = MAY_NOT_IMPORT_THIRD_PARTY.get(package, frozenset())
    return [imp for imp in found if (imp.module in FIRST_PARTY and imp.module not in allowed) or imp.module in banned]


@pytest.mark.parametrize("package", FIRST_PARTY)
def test_package_imports_only_what_the_architecture_allows(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file(), f"package folder {package}/ is missing"
    bad = violations(package, imports_of_package(package))
    assert not bad, f"{package} breaks the import rules of docs/architecture.md:\n" + "\n".join(map(str, bad))


def test_serving_never_reaches_the_training_stack() -> None:
    found = imports_of_package("serving")
    assert found, "serving/ has no imports at all: is the package there?"
    bad = [imp for imp in found if imp.module in TRAINING_STACK | {"training"}]
    assert not bad, "the server must run from the artifact alone:\n" + "\n".join(map(str, bad))


@pytest.mark.parametrize(
    ("package", "source", "caught"),
    [
        ("serving", "def load():\n    import torch\n", "torch"),
        ("serving", "from training.model import PoseNet\n", "training"),
        ("serving", "import importlib\nm = importlib.import_module('lightning.pytorch')\n", "lightning"),
        ("posewheel", "from serving import app\n", "serving"),
        ("labeling", "from training import export\n", "training"),
        ("labeling", "import serving.outbox\n", "serving"),
    ],
)
def test_checker_catches_a_forbidden_import(package: str, source: str, caught: str) -> None:
    bad = violations(package, list(imports_in_source(source, "example.py", package)))
    assert [imp.module for imp in bad] == [caught]


def test_checker_allows_relative_and_permitted_imports() -> None:
    source = "from . import engine\nfrom .settings import ServingSettings\nimport posewheel.schema\nimport labeling\n"
    assert violations("serving", list(imports_in_source(source, "example.py", "serving"))) == []


# Scripts (benchmarks/*.py, scripts/*.py) are run, never imported: shared helpers live in
# tests/support (or the packages).
SCRIPT_IMPORTS_TO_SWITCH: frozenset[str] = frozenset()


def script_imports(path: Path, scripts: set[str]) -> list[str]:
    """Modules `path` imports that are scripts: `benchmarks.x`, `scripts.x`, or a sibling script by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in {"benchmarks", "scripts"} or n in scripts]


def test_no_script_imports_another_script() -> None:
    scripts = {p.stem for folder in ("benchmarks", "scripts") for p in (ROOT / folder).glob("*.py")}
    files = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").rglob("*.py")]
    bad = []
    for path in sorted(files):
        relative = str(path.relative_to(ROOT))
        found = script_imports(path, scripts if path.parent.name in {"benchmarks", "scripts"} else set())
        if found and relative not in SCRIPT_IMPORTS_TO_SWITCH:
            bad.append(f"{relative} imports {found}")
    assert not bad, "import shared helpers from tests.support instead:\n" + "\n".join(bad)
