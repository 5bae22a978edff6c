"""Write the table of every `POSEWHEEL_*` variable into docs/architecture.md, from the settings classes.

    .venv/bin/python scripts/export_settings_doc.py            # rewrite the table in place
    .venv/bin/python scripts/export_settings_doc.py --check    # exit 1 when the table is stale

The table sits between the `<!-- settings:begin -->` and `<!-- settings:end -->` markers. Every
pydantic-settings class in the project's packages is found by reading the sources (a class whose
base is `BaseSettings` or another `...Settings` class, checked once imported), so a new setting
shows up here without editing this script. A field is listed under the class that declares it (a
class that extends `ProjectSettings` reads the project's paths through it, not a second time).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("posewheel", "serving", "labeling", "training", "flywheel")
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def settings_classes() -> list[Any]:
    """Every BaseSettings subclass defined in the project's packages, in package then file order."""
    from pydantic_settings import BaseSettings

    sys.path.insert(0, str(ROOT))
    found: list[Any] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            names = [
                node.name
                for node in tree.body
                if isinstance(node, ast.ClassDef)
                and any(isinstance(b, ast.Name) and b.id.endswith("Settings") for b in node.bases)
            ]
            if names:
                module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
                classes = (getattr(module, name) for name in names)
                found.extend(c for c in classes if isinstance(c, type) and issubclass(c, BaseSettings))
    return found


def own_fields(cls: Any) -> dict[str, Any]:
    """The fields `cls` declares itself (inherited ones belong to the class that declares them)."""
    return {name: field for name, field in cls.model_fields.items() if name in inspect.get_annotations(cls)}


def field_comments(cls: Any) -> dict[str, str]:
    """The `# comment` written on a field's lines in the class source, by field name."""
    source = inspect.getsource(cls)
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            text = " ".join(comments[line] for line in lines if line in comments)
            if text:
                found[node.target.id] = text
    return found


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path) and value == Path():
        return "(derived)"
    return f"`{value}`"


def table() -> str:
    """The markdown table: variable, class, default, meaning."""
    rows = ["| variable | read by | default | meaning |", "|---|---|---|---|"]
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        owner = f"`{cls.__module__}.{cls.__name__}`"
        comments = field_comments(cls)
        for name, field in own_fields(cls).items():
            meaning = field.description or comments.get(name, "")
            meaning = meaning.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") or "-"
            rows.append(f"| `{(prefix + name).upper()}` | {owner} | {_default(field)} | {meaning} |")
    return "\n".join(rows)


def render(doc: str) -> str:
    """`doc` with the text between the markers replaced by the current table."""
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: the markers {BEGIN} and {END} are missing")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, compare) the settings table; returns the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the table is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if current != wanted:
            print(
                f"{DOC}: settings table is stale: run `.venv/bin/python scripts/export_settings_doc.py`",
                file=sys.stderr,
            )
            return 1
        print(f"{DOC}: settings table is up to date")
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    print(f"wrote the settings table of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
