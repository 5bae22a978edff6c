"""Project paths, from the environment (`POSEWHEEL_*`) with defaults under the project root.

Each package with its own knobs (serving, labeling) keeps them in its own settings class with the
same `POSEWHEEL_` prefix; this class holds what every package agrees on: where things live. Any
folder can be moved by its variable (e.g. `POSEWHEEL_IMAGE_STORE_DIR`), and every package then finds
it at the same place.
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


def _under(base: Path, value: Path, default: str) -> Path:
    if value == Path():
        return base / default
    return value if value.is_absolute() else base / value


class ProjectSettings(BaseSettings):
    """Where the project's data, models, metrics and run-time state live (absolute paths)."""

    model_config = SettingsConfigDict(env_prefix="POSEWHEEL_", extra="ignore")

    # Path() (the default) means "the default place"; relative values are under their parent folder.
    root: Path = Path()
    var_dir: Path = Path()  # run-time state ignored by git; default <root>/var
    image_store_dir: Path = Path()  # content-addressed images; default <var>/images
    outbox_dir: Path = Path()  # review items waiting for Label Studio; default <var>/outbox
    truth_dir: Path = Path()  # synthetic ground truth, for the simulated annotator only; <var>/truth

    def model_post_init(self, __context: object) -> None:
        self.root = (self.root if self.root != Path() else _find_project_root()).resolve()
        self.var_dir = _under(self.root, self.var_dir, "var")
        self.image_store_dir = _under(self.var_dir, self.image_store_dir, "images")
        self.outbox_dir = _under(self.var_dir, self.outbox_dir, "outbox")
        self.truth_dir = _under(self.var_dir, self.truth_dir, "truth")

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
