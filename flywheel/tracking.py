"""One W&B run per loop iteration, in the same project as the training runs.

Offline by default (runs under `wandb/`, `wandb sync` uploads them); online when WANDB_API_KEY is set.

Lineage: the training run logs the candidate as the model artifact `pose-model` (aliases: its
version, `latest`). The iteration's run logs the same files again when the candidate is promoted,
with the alias `production`: W&B keeps one version per content digest, so the alias lands on the
version the training run made. Online, the run also declares the candidate as its input
(`use_artifact`); W&B 0.31 refuses `use_artifact` offline ("Cannot use artifact when in offline
mode") and `link_artifact` too (NotImplementedError), so an offline run records the alias, and
the candidate and parent versions in its config, and `wandb sync` publishes them as they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flywheel.promotion import Floor

log = logging.getLogger(__name__)
WANDB_PROJECT_DEFAULT = "posewheel"
MODEL_ARTIFACT = "pose-model"  # the name training/run_logging.py logs each trained model under
PRODUCTION_ALIAS = "production"


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


def model_artifact(folder: Path) -> Any:
    """The artifact folder as the W&B model artifact `pose-model`, its card as metadata."""
    import wandb

    from posewheel import artifact

    card = artifact.load_card(folder).model_dump(mode="json")
    model = wandb.Artifact(name=MODEL_ARTIFACT, type="model", metadata=card)
    model.add_dir(str(folder))
    return model


def log_iteration(root: Path, record: dict[str, Any], candidate: Path | None = None) -> str | None:
    """Log a promotion decision with both models' metrics; returns the run folder, None if disabled.

    `candidate`: the candidate's artifact folder; promoted, it is logged with the `production` alias.
    """
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
    if isinstance(record.get("floor"), dict):  # the pretrained start under the small people as served
        floor = Floor(**record["floor"])
        summary |= {"floor/start": floor.start, "floor/value": round(floor.value, 6)}
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
    if candidate is not None:
        if not run.offline:
            run.use_artifact(model_artifact(candidate))  # the candidate is this run's input: lineage
        if record["promoted"]:
            run.log_artifact(model_artifact(candidate), aliases=[record["candidate_version"], PRODUCTION_ALIAS])
    folder = str(run.dir)
    run.finish()
    log.info("loop iteration logged to W&B: %s", folder)
    return folder
