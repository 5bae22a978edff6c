"""Project paths, from the environment (`POSEWHEEL_*`) with defaults under the project root.

One convention for every path setting of every package: unset means its default place under its
parent folder (the project root, or `var/` for run-time state), a relative value is under that same
parent, an absolute value is used as it is (`under`). So `POSEWHEEL_ROOT` moves everything and
`POSEWHEEL_VAR_DIR` moves all run-time state, Label Studio's folders included. Each path is read by
one class: the shared ones here (`ServingSettings` extends this class), Label Studio's own in
`labeling.settings.LabelStudioSettings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _find_project_root() -> Path:
    """The nearest folder above the working directory holding `params.yaml`, else the cwd."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "params.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    return cwd


def under(base: Path, value: Path | None, default: str) -> Path:
    """The convention: unset (None or `Path()`) -> `base/default`; relative -> `base/value`; absolute as is."""
    if value is None or value == Path():
        return base / default
    return value if value.is_absolute() else base / value


class ProjectSettings(BaseSettings):
    """Where the project's data, models, metrics and run-time state live (absolute paths)."""

    model_config = SettingsConfigDict(env_prefix="POSEWHEEL_", extra="ignore")

    # Path() (the default) means "the default place"; relative values are under their parent folder.
    root: Path = Path()  # the nearest folder above the working directory holding params.yaml and pyproject.toml
    var_dir: Path = Path()  # run-time state ignored by git; default <root>/var
    image_store_dir: Path = Path()  # content-addressed images; default <var>/images
    outbox_dir: Path = Path()  # review items waiting for Label Studio; default <var>/outbox
    truth_dir: Path = Path()  # synthetic ground truth, for the simulated annotator only; <var>/truth
    predictions_dir: Path = Path()  # the server's prediction log, one JSONL file a day; default <var>/predictions

    def model_post_init(self, __context: object) -> None:
        self.root = (self.root if self.root != Path() else _find_project_root()).resolve()
        self.var_dir = under(self.root, self.var_dir, "var")
        self.image_store_dir = under(self.var_dir, self.image_store_dir, "images")
        self.outbox_dir = under(self.var_dir, self.outbox_dir, "outbox")
        self.truth_dir = under(self.var_dir, self.truth_dir, "truth")
        self.predictions_dir = under(self.var_dir, self.predictions_dir, "predictions")

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def wandb_dir(self) -> Path:
        """W&B writes its offline runs to `<this>/wandb`."""
        return self.root
