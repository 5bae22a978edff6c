"""One W&B run per loop iteration, in the same project as the training runs.

Offline by default (runs under `wandb/`, `wandb sync` uploads them); online when WANDB_API_KEY is set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
WANDB_PROJECT_DEFAULT = "posewheel"


def wandb_environ(root: Path) -> dict[str, str]:
    """W&B settings that keep its files inside the project's ignored folders."""
    env = {
        "WANDB_DIR": str(root),
        "WANDB_DATA_DIR": str(root / "var" / "wandb-data"),
        "WANDB_CACHE_DIR": str(root / "var" / "wandb-cache"),
        "WANDB_CONFIG_DIR": str(root / "var" / "wandb-config"),
    }
    if not os.environ.get("WANDB_API_KEY"):
        env["WANDB_MODE"] = os.environ.get("WANDB_MODE", "offline")
    return env


def log_iteration(root: Path, record: dict[str, Any]) -> str | None:
    """Log a promotion decision with both models' metrics; returns the run folder, None if disabled."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return None
    import wandb

    for key, value in wandb_environ(root).items():
        os.environ.setdefault(key, value)
        if key.endswith("_DIR"):
            Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"promoted": int(bool(record["promoted"])), "feedback_labels": record["feedback_labels"]}
    for model in ("candidate", "production"):
        metrics = record.get(model) or {}
        for holdout, values in metrics.items():
            for name, value in values.items():
                summary[f"{model}/{holdout}/{name}"] = value
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", WANDB_PROJECT_DEFAULT),
        job_type="flywheel-iteration",
        name=f"loop-{record['candidate_version']}",
        config={
            "candidate_version": record["candidate_version"],
            "production_version_before": record["production_version_before"],
            "reason": record["reason"],
        },
        dir=str(root),
    )
    run.log(summary)
    run.summary.update(summary)
    folder = str(run.dir)
    run.finish()
    log.info("loop iteration logged to W&B: %s", folder)
    return folder
