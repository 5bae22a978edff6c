"""Run tracking: W&B (offline unless WANDB_API_KEY is set) plus a CSV log for `dvc plots`.

A run records the parameters, the data versions, metrics per epoch, a table of the worst
validation examples with predicted (red) and true (green) skeletons, and the exported artifact.
Offline runs land in `$WANDB_DIR/wandb/offline-run-*` (the project root by default); `wandb sync`
uploads them later.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from PIL import Image, ImageDraw

from posewheel.schema import SKELETON
from posewheel.settings import ProjectSettings

WANDB_PROJECT = "posewheel"


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
            name=run_name, project=WANDB_PROJECT, save_dir=os.environ["WANDB_DIR"], offline=not online,
            job_type="train", config=config,
        )  # fmt: skip
        loggers.append(wandb_logger)
    return loggers


def wandb_logger(loggers: list[Logger]) -> WandbLogger | None:
    return next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)


def _own_draw(image: Image.Image, poses: list[tuple[np.ndarray, tuple[int, int, int]]]) -> Image.Image:
    """Fallback drawing: skeleton lines and joint dots of each (17, 2|3) pose in its colour."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for pts, colour in poses:
        labeled = pts[:, 2] > 0 if pts.shape[1] > 2 else np.ones(len(pts), bool)
        for a, b in SKELETON:
            if labeled[a] and labeled[b]:
                draw.line([tuple(pts[a, :2]), tuple(pts[b, :2])], fill=colour, width=2)
        for p, ok in zip(pts, labeled, strict=True):
            if ok:
                draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)
    return canvas


def drawer() -> Callable[[Image.Image, np.ndarray, np.ndarray], Image.Image]:
    """`draw(image, pred (17, 2), truth (17, 3))`: posewheel.draw.draw_poses when present, else our own."""
    try:
        draw_module = importlib.import_module("posewheel.draw")
        draw_poses = draw_module.draw_poses
    except (ImportError, AttributeError):
        draw_poses = None

    def draw(image: Image.Image, pred: np.ndarray, truth: np.ndarray) -> Image.Image:
        pred3 = np.concatenate([pred[:, :2], np.full((len(pred), 1), 2.0)], axis=1)
        if draw_poses is not None:
            try:
                out = draw_poses(image, [truth, pred3], colors=[(0, 200, 0), (230, 0, 0)])
                if isinstance(out, Image.Image):
                    return out
            except TypeError:  # another signature than expected: keep the table working
                pass
        return _own_draw(image, [(truth, (0, 200, 0)), (pred3, (230, 0, 0))])

    return draw


def worst_examples_table(
    image_paths: list[Path], pred: np.ndarray, truth: np.ndarray, boxes: np.ndarray, count: int
) -> Any:
    """A wandb.Table of the `count` persons with the largest box-normalised mean joint error.

    pred (N, 17, 2) and truth (N, 17, 3) in image pixels; boxes (N, 4).
    """
    import wandb

    err = np.linalg.norm(pred - truth[..., :2], axis=-1)
    labeled = truth[..., 2] > 0
    mean_err = np.where(labeled.any(1), (err * labeled).sum(1) / np.maximum(labeled.sum(1), 1), 0.0)
    normalised = mean_err / np.maximum(boxes[:, 2:].max(axis=1), 1.0)
    draw = drawer()
    table = wandb.Table(columns=["image", "file", "mean_px_error", "error_per_box_size"])
    for i in np.argsort(-normalised)[:count]:
        with Image.open(image_paths[i]) as raw:
            drawn = draw(raw.convert("RGB"), pred[i], truth[i])
        table.add_data(wandb.Image(drawn), image_paths[i].name, float(mean_err[i]), float(normalised[i]))
    return table


def log_run_outputs(logger: WandbLogger, table: Any | None, artifact_dir: Path, card: dict[str, Any]) -> None:
    """Log the worst-examples table and the artifact folder (as a W&B 'model' artifact) to the run."""
    import wandb

    run = logger.experiment
    if table is not None:
        run.log({"val/worst_examples": table})
    model_artifact = wandb.Artifact(name="pose-model", type="model", metadata=card)
    model_artifact.add_dir(str(artifact_dir))
    run.log_artifact(model_artifact, aliases=[card["version"], "latest"])
