"""Run tracking: W&B (offline unless WANDB_API_KEY is set) plus a CSV log for `dvc plots`.

A run records the parameters, the data versions, metrics per epoch, a table of the worst
validation examples with predicted (red) and true (green) skeletons, and the exported artifact.
Offline runs land in `$WANDB_DIR/wandb/offline-run-*` (the project root by default); `wandb sync`
uploads them later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from posewheel.draw import draw_poses
from posewheel.imagestore import read_rgb
from posewheel.settings import ProjectSettings

WANDB_PROJECT = "posewheel"
TRUTH_COLOUR, PREDICTED_COLOUR = (0, 200, 0), (230, 0, 0)


def configure_wandb_env(settings: ProjectSettings | None = None) -> bool:
    """Point W&B's folders into the project and pick its mode; True when the run will be online.

    Keeps any WANDB_DIR / WANDB_DATA_DIR / WANDB_CACHE_DIR / WANDB_MODE already set.
    """
    settings = settings or ProjectSettings()
    os.environ.setdefault("WANDB_DIR", str(settings.wandb_dir))
    os.environ.setdefault("WANDB_DATA_DIR", str(settings.var_dir / "wandb-data"))
    os.environ.setdefault("WANDB_CACHE_DIR", str(settings.var_dir / "wandb-cache"))
    online = bool(os.environ.get("WANDB_API_KEY"))
    os.environ.setdefault("WANDB_MODE", "online" if online else "offline")
    for key in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    return os.environ["WANDB_MODE"] == "online"


def make_loggers(run_name: str, csv_dir: Path, use_wandb: bool, config: dict[str, Any]) -> list[Logger]:
    """CSV logger writing `csv_dir/metrics.csv` and, when `use_wandb`, a W&B logger for the run."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(csv_dir.parent), name=csv_dir.name, version="")]
    if use_wandb:
        online = configure_wandb_env()
        wandb_logger = WandbLogger(
            name=run_name,
            project=WANDB_PROJECT,
            save_dir=os.environ["WANDB_DIR"],
            offline=not online,
            job_type="train",
            config=config,
        )
        loggers.append(wandb_logger)
    return loggers


def wandb_logger(loggers: list[Logger]) -> WandbLogger | None:
    return next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)


def worst_examples_table(
    images: list[tuple[Path, tuple[int, int]]], pred: np.ndarray, truth: np.ndarray, boxes: np.ndarray, count: int
) -> Any:
    """A wandb.Table of the `count` persons with the largest box-normalised mean joint error.

    images: each person's image file and its record's (width, height); pred (N, 17, 2) and truth (N, 17, 3) in
    image pixels; boxes (N, 4).
    """
    import wandb

    err = np.linalg.norm(pred - truth[..., :2], axis=-1)
    labeled = truth[..., 2] > 0
    mean_err = np.where(labeled.any(1), (err * labeled).sum(1) / np.maximum(labeled.sum(1), 1), 0.0)
    normalised = mean_err / np.maximum(boxes[:, 2:].max(axis=1), 1.0)
    table = wandb.Table(columns=["image", "file", "mean_px_error", "error_per_box_size"])
    for i in np.argsort(-normalised)[:count]:
        predicted = np.concatenate([pred[i, :, :2], np.full((len(pred[i]), 1), 2.0)], axis=1)
        path, size = images[i]
        drawn = draw_poses(read_rgb(path, size), [truth[i], predicted], colors=[TRUTH_COLOUR, PREDICTED_COLOUR])
        table.add_data(wandb.Image(drawn), path.name, float(mean_err[i]), float(normalised[i]))
    return table


def log_run_outputs(logger: WandbLogger, table: Any | None, artifact_dir: Path, card: dict[str, Any]) -> None:
    """Log the worst-examples table and the artifact folder (as a W&B 'model' artifact) to the run."""
    import wandb

    run = logger.experiment
    parent = card.get("parent_version")
    if parent and not run.offline:  # lineage: the model fine-tuned here; W&B 0.31 refuses use_artifact offline
        try:
            run.use_artifact(f"pose-model:{parent}")
        except (ValueError, wandb.errors.CommError) as exc:  # a parent no W&B run logged (a pretrained install)
            wandb.termwarn(f"parent model pose-model:{parent} is not in W&B, lineage not recorded: {exc}")
    if table is not None:
        run.log({"val/worst_examples": table})
    log_real_photos(run, artifact_dir)
    model_artifact = wandb.Artifact(name="pose-model", type="model", metadata=card)
    model_artifact.add_dir(str(artifact_dir))
    run.log_artifact(model_artifact, aliases=[card["version"], "latest"])


def log_real_photos(run: Any, artifact_dir: Path) -> None:
    """The model on the real-photo check set (training/realphotos.py): agreement with the original MoveNet
    as summary figures, and the overlay grid as an image, so a person sees at once if it still finds people."""
    import tempfile

    import wandb

    from training.realphotos import CHECK_SET, agreement, overlay_grid

    if not (CHECK_SET / "reference.json").is_file():
        return
    real = agreement(artifact_dir)
    run.summary.update({f"real_photos/{k}": v for k, v in real.items()})
    with tempfile.TemporaryDirectory() as tmp:
        grid = overlay_grid(artifact_dir, Path(tmp) / "real_photos.png")
        run.log({"real_photos/overlays": wandb.Image(str(grid))})
