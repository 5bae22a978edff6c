"""A throwaway copy of the project's pipeline, so tests run the real `dvc repro` without touching the checkout.

def test_x(flywheel_project: FlywheelProject) -> None:
    flywheel_project.repro()
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.pipeline import repro
from flywheel.tracking import wandb_environ

REPO = Path(__file__).resolve().parents[2]
# What DVC and the settings need to find the project, and the packages whose files dvc.yaml's stages
# list as deps (whole, so the copy imports itself consistently: `python -m` puts the copy first).
# the evaluate stage scores real-photo agreement on the check set, a data dep of the pipeline
CHECK_SET = "tests/fixtures/real_photos"
PIPELINE_FILES = ("dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvcignore", ".dvc/config", CHECK_SET)
PIPELINE_CODE = ("posewheel", "training", "labeling", "flywheel")

# Small enough for the test suite on 2 cores; the loop still has to show a real street gain.
SHORT_PARAMS: dict[str, dict[str, Any]] = {
    "synth": {"seed_count": 400, "holdout_count": 80, "scenes_count": 40},
    # the from-scratch cpu network (its lr): the loop's machinery is what these tests check, in minutes;
    # MoveNet's own training is tested in tests/test_movenet.py and measured by the demo.
    "train": {
        "config": "cpu",
        "lr": 0.002,
        "finetune_lr": 0.004,
        "finetune_frozen_stages": 0,  # params.yaml's 1 was measured on MoveNet; this network trains whole
        "max_minutes": 2.0,
        "finetune_max_minutes": 1.5,
        "num_workers": 0,
        "wandb": False,
    },
}


@dataclass
class FlywheelProject:
    root: Path
    env: dict[str, str]

    def repro(self, *args: str) -> subprocess.CompletedProcess[str]:
        return repro(self.root, *args, extra_env=self.env)

    def params(self) -> dict[str, Any]:
        return dict(yaml.safe_load((self.root / "params.yaml").read_text()))


def make_project(root: Path, overrides: dict[str, dict[str, Any]] | None = None) -> FlywheelProject:
    """Copy the pipeline into `root` (a fresh git repo), with `overrides` merged into params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in (*PIPELINE_FILES, *PIPELINE_CODE):
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in (overrides or {}).items():
        params.setdefault(section, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    env = {"POSEWHEEL_ROOT": str(root), **wandb_environ(root)}
    return FlywheelProject(root=root, env=env)


@pytest.fixture
def flywheel_project(tmp_path: Path) -> Iterator[FlywheelProject]:
    project = make_project(tmp_path / "project", SHORT_PARAMS)
    saved = dict(os.environ)
    os.environ.update(project.env)
    try:
        yield project
    finally:
        os.environ.clear()
        os.environ.update(saved)
