"""params.yaml, the one place a run's parameters live: read here, once, for every package.

    from posewheel.params import load_params
    params = load_params()              # <project root>/params.yaml
    rule = load_params(root)["promote"] # a folder means its params.yaml

Each DVC stage and each CLI command reads its own section; the defaults the loop runs with are the
values in this file, and the configuration classes are tested to carry the same ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from posewheel.settings import ProjectSettings

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """params.yaml is missing, not YAML, or not a mapping of sections (the message names the file)."""


def params_path(where: str | Path | None = None) -> Path:
    """The params file: `where` itself, `where/params.yaml` for a folder, the project's when None."""
    if where is None:
        return ProjectSettings().root / PARAMS_FILE
    path = Path(where)
    return path / PARAMS_FILE if path.is_dir() else path


def load_params(where: str | Path | None = None) -> dict[str, Any]:
    """params.yaml as a dict of sections (synth, train, evaluate, promote); see `params_path` for `where`."""
    file = params_path(where)
    try:
        params = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParamsError(f"{file}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ParamsError(f"{file}: top level must be a mapping of sections")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of `params` as a dict (empty when absent); raise ParamsError when it is not a mapping."""
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise ParamsError(f"params.yaml: section {name!r} must be a mapping, got {type(value).__name__}")
    return dict(value)
