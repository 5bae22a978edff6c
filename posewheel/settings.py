"""Project paths and shared settings, from the environment (`POSEWHEEL_*`) with local defaults.

Each package with its own knobs (serving, labeling) keeps them in its own settings class with the
same `POSEWHEEL_` prefix; this class holds what every package agrees on: where things live.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _find_project_root() -> Path:
    """The nearest folder above the working directory holding `params.yaml`, else the cwd."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "params.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    return cwd


class ProjectSettings(BaseSettings):
    """Where the project's data, models, metrics and run-time state live."""

    model_config = SettingsConfigDict(env_prefix="POSEWHEEL_", extra="ignore")

    root: Path = Path()

    def model_post_init(self, __context: object) -> None:
        if self.root == Path():
            self.root = _find_project_root()

    @cached_property
    def data_dir(self) -> Path:
        return self.root / "data"

    @cached_property
    def models_dir(self) -> Path:
        return self.root / "models"

    @cached_property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @cached_property
    def var_dir(self) -> Path:
        """Run-time state ignored by git: prediction log, image store, outbox, secrets."""
        return self.root / "var"

    @cached_property
    def image_store_dir(self) -> Path:
        return self.var_dir / "images"

    @cached_property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @cached_property
    def truth_dir(self) -> Path:
        """Synthetic ground truth keyed by image content hash, for the simulated annotator only."""
        return self.var_dir / "truth"

    @cached_property
    def wandb_dir(self) -> Path:
        return self.root
