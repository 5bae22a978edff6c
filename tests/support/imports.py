"""The first-party code a module runs, read with `ast` (nothing is imported).

    files = code_files("flywheel.stages.train")   # {"flywheel/stages/train.py", "training/train.py", ...}

Every `import`, `from ... import` and `importlib.import_module("...")` counts, at any depth (a lazy
import inside a function still runs), except under `if TYPE_CHECKING:`, which never runs. A package's
`__init__.py` counts when it holds more than its docstring (importing a submodule runs it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("posewheel", "training", "labeling", "serving", "flywheel")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """`a.b.c` -> a/b/c.py or a/b/c/__init__.py under `root`; None when it is not first-party code."""
    if module.split(".")[0] not in FIRST_PARTY:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes_that_run(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node`, skipping the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _nodes_that_run(other)
            continue
        yield child
        yield from _nodes_that_run(child)


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """Dotted names `path` (the file of `module`) imports at run time; `from a import b` gives a and a.b."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _nodes_that_run(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            name = ".".join(p for p in (base, node.module or "") if p)
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)  # a submodule, when it is one
        elif isinstance(node, ast.Call) and _called_name(node) == "import_module" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def _runs_code(init: Path) -> bool:
    body = ast.parse(init.read_text(encoding="utf-8")).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def code_files(module: str, root: Path = ROOT) -> set[str]:
    """The first-party files (relative to `root`) that running `module` can execute, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            dotted = ".".join(parts[:depth])
            path = module_file(dotted, root)
            if path is None:
                continue
            relative = str(path.relative_to(root))
            if relative in seen:
                continue
            if path.name == "__init__.py" and not _runs_code(path) and depth < len(parts):
                seen.add(relative)  # a docstring-only package marker: visited, not reported
                continue
            seen.add(relative)
            todo.extend(imported_modules(path, dotted))
    return {f for f in seen if not f.endswith("__init__.py") or _runs_code(root / f)}


def module_files(path: Path, root: Path = ROOT) -> set[str]:
    """The Python files (relative to `root`) a file or folder holds, docstring-only package markers left out."""
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return {
        str(f.relative_to(root))
        for f in files
        if "__pycache__" not in f.parts and (f.name != "__init__.py" or _runs_code(f))
    }
