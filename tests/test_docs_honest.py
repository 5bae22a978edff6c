"""The docs name only what exists: commands and their options, params keys, settings, files, links, make targets.

Reads the code in README.md and docs/*.md (fenced blocks and `inline spans`) and checks each name
against the real thing: the `posewheel` command tree that `posewheel --help` shows, the keys the
training configuration and params.yaml know, the settings classes, the repository's files.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from posewheel.cli import _register_core, _register_plugins, app
from training.config import FINETUNE_PREFIX, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("posewheel", "training", "serving", "labeling", "flywheel")
# Folders of the repository (run-time folders such as data/ or var/ are not in a checkout).
REPO_FOLDERS = (*PACKAGES, "scripts", "benchmarks", "tests", "docs", ".ci")


def code_lines(doc: Path) -> Iterator[tuple[int, str]]:
    """(line number, code) for each line of a fenced block and each `inline span` of `doc`."""
    fenced = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            yield number, line
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield number, span


def documented(pattern: str) -> list[tuple[str, str]]:
    """(`file:line`, first group) for each match of `pattern` in the docs' code."""
    return [
        (f"{doc.relative_to(ROOT)}:{number}", match[1])
        for doc in DOCS
        for number, code in code_lines(doc)
        for match in re.finditer(pattern, code)
    ]


def command_tree() -> Any:
    """The click command behind `posewheel --help`, with every package's commands registered."""
    _register_core()
    _register_plugins()
    return typer.main.get_command(app)


def test_every_documented_posewheel_command_and_option_exists() -> None:
    root, wrong = command_tree(), []
    for where, words in documented(r"(?:^|[\s(/])posewheel((?: [^\s|;&#>][^\s|;&]*)*)"):
        command, path = root, ["posewheel"]
        args = words.split()
        while args and hasattr(command, "commands") and args[0] in command.commands:
            command = command.commands[args.pop(0)]
            path.append(command.name)
        if len(path) == 1 and args and not args[0].startswith("-"):
            wrong.append(f"{where}: `posewheel {args[0]}` is no command")
            continue
        options = {"--help"} | {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        for option in (a.split("=")[0] for a in args if a.startswith("--")):
            if option not in options:
                wrong.append(f"{where}: `{' '.join(path)}` has no option {option}")
    assert not wrong, "\n".join(wrong)


def params_keys() -> dict[str, set[str]]:
    """Section -> keys the code reads: params.yaml's, and for `train`/`detector` every TrainConfig field."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    keys = {section: set(values or {}) for section, values in params.items()}
    fields = TrainConfig.field_names()
    for section in ("train", "detector"):
        keys[section] = keys.get(section, set()) | fields | {FINETUNE_PREFIX + name for name in fields}
    return keys


def test_every_documented_params_key_is_read() -> None:
    keys = params_keys()
    sections = "|".join(keys)
    wrong = [
        f"{where}: params.yaml has no `{key}` (and the code reads none)"
        for where, key in documented(rf"(?<![\w/.-])((?:{sections})\.[a-z_][a-z0-9_]*)(?![\w/.])")
        if key.split(".")[1] not in keys[key.split(".")[0]] and key.split(".")[1] not in {"py", "sbatch", "onnx"}
    ]
    assert not wrong, "\n".join(wrong)


def setting_names() -> set[str]:
    """Environment variables of the settings classes, plus any POSEWHEEL_* name the packages read directly."""
    from labeling.settings import LabelStudioSettings
    from posewheel.settings import ProjectSettings
    from serving.settings import ServingSettings

    names = {
        (cls.model_config.get("env_prefix", "") + field).upper()
        for cls in (ProjectSettings, ServingSettings, LabelStudioSettings)
        for field in cls.model_fields
    }
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"POSEWHEEL_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    return names


def test_every_documented_setting_exists() -> None:
    names = setting_names()
    found = documented(r"(POSEWHEEL_[A-Z0-9_]*[A-Z0-9])\b")
    wrong = [f"{where}: no setting {name}" for where, name in found if name not in names]
    assert not wrong, "\n".join(wrong)


def test_every_documented_repository_file_exists() -> None:
    folders = "|".join(re.escape(folder) for folder in REPO_FOLDERS)
    wrong = [
        f"{where}: {path} does not exist"
        for where, path in documented(rf"(?<![\w/.-])((?:{folders})/[\w./-]*\w)")
        if not (ROOT / path).exists()
    ]
    assert not wrong, "\n".join(wrong)


def test_every_relative_link_in_the_docs_resolves() -> None:
    wrong = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue  # a URL or an anchor on the same page
                if not (doc.parent / target.split("#")[0]).exists():
                    wrong.append(f"{doc.relative_to(ROOT)}:{number}: the link to {target} goes nowhere")
    assert not wrong, "\n".join(wrong)


def test_every_documented_make_target_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
    wrong = [f"{where}: no make target {t}" for where, t in documented(r"\bmake ([a-z][\w-]*)") if t not in targets]
    assert not wrong, "\n".join(wrong)


def holdout_folders() -> set[str]:
    """The holdout folders the pipeline declares (dvc.yaml outs under data/holdout/)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outs = (
        next(iter(out)) if isinstance(out, dict) else out for stage in stages.values() for out in stage.get("outs", [])
    )
    return {out for out in outs if out.startswith("data/holdout/")}


def test_the_pipeline_keeps_its_holdouts_in_one_folder() -> None:
    """The layout the next test holds docstrings to: data/holdout/<domain>."""
    assert holdout_folders() == {"data/holdout/studio", "data/holdout/street", "data/holdout/street_scenes"}


@pytest.mark.parametrize("package", PACKAGES)
def test_docstrings_use_the_pipelines_holdout_layout(package: str) -> None:
    """Holdouts live in data/holdout/<name> (dvc.yaml); `data/holdout_street` is the old, flat layout."""
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
        for node in nodes:
            for folder in re.findall(r"data/holdout_\w+", ast.get_docstring(node) or ""):
                wrong.append(f"{path.relative_to(ROOT)}: {folder} (the pipeline's are {sorted(holdout_folders())})")
    assert not wrong, "\n".join(wrong)
