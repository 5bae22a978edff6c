"""Where the pipeline's folders are and how its parameters are read.

`dvc.yaml` is the map of the pipeline; this module only names the paths it declares, so that the
stages, the demo and `posewheel flywheel status` agree on them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from posewheel.settings import ProjectSettings


@dataclass(frozen=True)
class PipelinePaths:
    """The folders `dvc.yaml` declares, under the project root."""

    root: Path

    @classmethod
    def from_settings(cls, settings: ProjectSettings | None = None) -> PipelinePaths:
        return cls((settings or ProjectSettings()).root)

    @property
    def seed(self) -> Path:
        return self.root / "data" / "seed"

    @property
    def holdout_studio(self) -> Path:
        return self.root / "data" / "holdout" / "studio"

    @property
    def holdout_street(self) -> Path:
        return self.root / "data" / "holdout" / "street"

    @property
    def feedback(self) -> Path:
        return self.root / "data" / "feedback"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def candidate(self) -> Path:
        return self.models / "candidate"

    @property
    def candidate_metrics(self) -> Path:
        return self.root / "metrics" / "candidate"

    @property
    def promotion(self) -> Path:
        return self.root / "metrics" / "promotion.json"

    @property
    def history(self) -> Path:
        return self.root / "metrics" / "history.csv"

    def holdouts(self) -> dict[str, Path]:
        return {"studio": self.holdout_studio, "street": self.holdout_street}


def load_params(root: Path | None = None) -> dict[str, Any]:
    """params.yaml of the project as a dict (sections synth, train, evaluate, promote)."""
    path = (root or ProjectSettings().root) / "params.yaml"
    with open(path, encoding="utf-8") as handle:
        params = yaml.safe_load(handle)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections")
    return params


def dvc_command(*args: str) -> list[str]:
    """The `dvc` of this interpreter's environment (works whether or not the venv is activated)."""
    candidate = Path(sys.executable).with_name("dvc")
    return [str(candidate) if candidate.exists() else (shutil.which("dvc") or "dvc"), *args]


def venv_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH, so DVC stage commands
    (`python -m ...`, `posewheel ...`) run in the project's virtualenv even when it is not activated."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def repro(root: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `dvc repro` in `root` with the project's virtualenv on PATH; output streams to the terminal."""
    return subprocess.run(dvc_command("repro", *args), cwd=root, env=venv_environ(extra_env), text=True, check=False)
