"""dvc.yaml is the map of the pipeline: every stage is a small script in flywheel/stages/, and its deps
list exactly the first-party code that script runs, so a change reruns what it affects and no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.imports import FIRST_PARTY, ROOT, code_files, module_files

STAGES: dict[str, Any] = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def declared_code(deps: list[Any]) -> set[str]:
    """The first-party Python files a stage's deps cover (a folder covers every module below it)."""
    covered: set[str] = set()
    for dep in deps:
        path = str(dep if isinstance(dep, str) else next(iter(dep)))
        if path.split("/")[0] in FIRST_PARTY:
            covered |= module_files(ROOT / path)
    return covered


def test_every_stage_runs_its_own_script_in_flywheel_stages() -> None:
    for name, stage in STAGES.items():
        assert stage["cmd"] == f"python -m flywheel.stages.{name}", f"dvc.yaml stage {name}: {stage['cmd']}"
        assert (ROOT / "flywheel" / "stages" / f"{name}.py").is_file()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_lists_exactly_the_code_it_runs(name: str) -> None:
    runs = code_files(f"flywheel.stages.{name}")
    declared = declared_code(STAGES[name].get("deps", []))
    assert declared == runs, (
        f"dvc.yaml stage {name}: undeclared {sorted(runs - declared)}, not run {sorted(declared - runs)}; "
        "`.venv/bin/python scripts/pipeline_deps.py` rewrites the code deps of every stage"
    )


def test_editing_the_evaluation_does_not_retrain() -> None:
    assert "training/evaluate.py" not in declared_code(STAGES["train"]["deps"])
    assert "training/evaluate.py" in declared_code(STAGES["promote"]["deps"])


def test_the_import_walk_follows_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    (tmp_path / "flywheel").mkdir()
    (tmp_path / "flywheel" / "__init__.py").write_text('"""docstring only."""\n')
    (tmp_path / "flywheel" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flywheel import c\n"
        "def f():\n    from . import b\n"
    )
    (tmp_path / "flywheel" / "b.py").write_text("import os\n")
    (tmp_path / "flywheel" / "c.py").write_text("")
    assert code_files("flywheel.a", tmp_path) == {"flywheel/a.py", "flywheel/b.py"}
