"""`posewheel flywheel status`: where the loop stands, read from the files each part leaves."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.pipeline import PipelinePaths, running_pipeline
from flywheel.promotion import read_history
from posewheel import artifact
from posewheel.dataset import ANNOTATIONS_FILE
from posewheel.review import Outbox
from posewheel.settings import ProjectSettings


@dataclass
class FlywheelStatus:
    review_queue_pending: int
    review_items_delivered: int
    feedback_labels_exported: int
    production_version: str | None
    production_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    last_decision: dict[str, Any] | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    pipeline_run: str | None = None  # "pid N since T" while a run holds var/flywheel.lock
    last_watch_decision: str | None = None  # the last line of var/log/flywheel-watch.log


def read_status(settings: ProjectSettings | None = None) -> FlywheelStatus:
    settings = settings or ProjectSettings()
    paths = PipelinePaths.from_settings(settings)
    outbox = Outbox(settings.outbox_dir)
    ann = paths.feedback / ANNOTATIONS_FILE
    exported = len(json.loads(ann.read_text(encoding="utf-8"))["annotations"]) if ann.is_file() else 0
    version, metrics = None, {}
    if artifact.production_dir(paths.models).exists():
        card = artifact.load_card(artifact.production_dir(paths.models))
        version, metrics = card.version, card.metrics
    decision = json.loads(paths.promotion.read_text(encoding="utf-8")) if paths.promotion.is_file() else None
    if decision:
        decision = {k: decision[k] for k in ("promoted", "reason", "candidate_version", "feedback_labels")}
    return FlywheelStatus(
        review_queue_pending=outbox.depth(),
        review_items_delivered=outbox.delivered(),
        feedback_labels_exported=exported,
        production_version=version,
        production_metrics=metrics,
        last_decision=decision,
        history=read_history(paths.history),
        pipeline_run=running_pipeline(paths),
        last_watch_decision=_last_line(paths.watch_log),
    )


def _last_line(path: Path) -> str | None:
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return lines[-1] if lines else None


def format_status(status: FlywheelStatus) -> str:
    lines = [
        f"review queue: {status.review_queue_pending} pending, "
        f"{status.review_items_delivered} delivered to Label Studio",
        f"corrected labels exported: {status.feedback_labels_exported}",
        f"production model: {status.production_version or 'none yet (run `posewheel flywheel repro`)'}",
    ]
    for holdout, values in sorted(status.production_metrics.items()):
        ap, pck = values.get("oks_ap", float("nan")), values.get("pck@0.1", float("nan"))
        lines.append(f"  {holdout:<7} OKS AP {ap:.3f}  PCK@0.1 {pck:.3f}")
    if status.last_decision:
        d = status.last_decision
        verdict = "promoted" if d["promoted"] else "not promoted"
        lines.append(f"last candidate {d['candidate_version']}: {verdict} ({d['reason']})")
    lines.append(f"pipeline: {'running, ' + status.pipeline_run if status.pipeline_run else 'no run under way'}")
    if status.last_watch_decision:
        lines.append(f"last watch poll: {status.last_watch_decision}")
    if status.history:
        lines.append("production history (version, feedback labels, studio AP, street AP):")
        for h in status.history:
            lines.append(f"  {h['version']}  {h['feedback_labels']:>5}  {h['studio_oks_ap']}  {h['street_oks_ap']}")
    return "\n".join(lines)


def status_json(status: FlywheelStatus) -> str:
    return json.dumps(asdict(status), indent=2)
