"""`posewheel flywheel status`: where the loop stands, read from the files each part leaves."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.gain import GainCurve, GainCurveError
from flywheel.pipeline import (
    AGREEMENT,
    ONE_PERSON_AGREEMENT,
    SMALL_PEOPLE_AGREEMENT,
    SMALL_PEOPLE_SERVED_AGREEMENT,
    PipelinePaths,
    load_params,
    running_pipeline,
)
from flywheel.promotion import REAL_PEOPLE_RECORDED, Floor, read_history
from posewheel import artifact
from posewheel.dataset import ANNOTATIONS_FILE
from posewheel.params import ParamsError
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
    retrain: RetrainOutlook | None = None  # what the labels waiting are expected to buy


@dataclass
class RetrainOutlook:
    """Corrected labels production has not been trained on, and the street OKS AP they are expected to add."""

    labels_waiting: int
    labels_used: int  # what production was trained on
    expected_street_gain: float | None  # None when no curve could be read
    worth_it_from: float | None  # promote.street_margin (a smaller gain would not be promoted); None unreadable
    curve: str  # where the expected gain comes from, or why there is none
    extrapolated: bool = False  # beyond the last measured point of the curve


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
    history = read_history(paths.history)
    if decision:
        kept = ("promoted", "reason", "candidate_version", "feedback_labels", "floor")  # floor: since session 51
        decision = {k: decision[k] for k in kept if k in decision}
    return FlywheelStatus(
        review_queue_pending=outbox.depth(),
        review_items_delivered=outbox.delivered(),
        feedback_labels_exported=exported,
        production_version=version,
        production_metrics=metrics,
        last_decision=decision,
        history=history,
        pipeline_run=running_pipeline(paths),
        last_watch_decision=_last_line(paths.watch_log),
        retrain=retrain_outlook(paths, exported, history),
    )


def retrain_outlook(paths: PipelinePaths, exported: int, history: list[dict[str, str]]) -> RetrainOutlook:
    """The labels exported since production was trained, and their expected gain on the measured curve."""
    used = int(history[-1]["feedback_labels"]) if history and history[-1].get("feedback_labels") else 0
    waiting = max(0, exported - used)
    try:
        margin: float | None = float(load_params(paths.root)["promote"]["street_margin"])
    except (ParamsError, KeyError, TypeError, ValueError):
        margin = None  # the outlook still shows the gain; only the verdict needs the rule
    try:
        curve = GainCurve.measured(history)
    except GainCurveError as exc:
        return RetrainOutlook(waiting, used, None, margin, f"no curve: {exc}")
    gain = round(curve.gain(used, waiting), 4)
    return RetrainOutlook(waiting, used, gain, margin, curve.source, curve.extrapolates(used + waiting))


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
    width = max((len(h) for h in status.production_metrics), default=0)
    for holdout, values in sorted(status.production_metrics.items()):
        if AGREEMENT in values:  # real_photos: no labels, agreement with the pretrained MoveNet
            line = f"  {holdout:<{width}}  agreement with the pretrained MoveNet {values[AGREEMENT]:.3f}"
            if ONE_PERSON_AGREEMENT in values:
                line += f" (photographs of one person {values[ONE_PERSON_AGREEMENT]:.3f})"
            if SMALL_PEOPLE_AGREEMENT in values:
                line += f", people pasted smaller {values[SMALL_PEOPLE_AGREEMENT]:.3f}"
            if SMALL_PEOPLE_SERVED_AGREEMENT in values:
                line += f" ({values[SMALL_PEOPLE_SERVED_AGREEMENT]:.3f} as served)"
            lines.append(line)
            continue
        line = f"  {holdout:<{width}}  OKS AP {values.get('oks_ap', float('nan')):.3f}"
        if "pck@0.1" in values:  # a holdout scored without boxes (street_scenes) has no PCK
            line += f"  PCK@0.1 {values['pck@0.1']:.3f}"
        lines.append(line)
    if status.last_decision:
        d = status.last_decision
        verdict = "promoted" if d["promoted"] else "not promoted"
        lines.append(f"last candidate {d['candidate_version']}: {verdict} ({d['reason']})")
        if isinstance(d.get("floor"), dict):
            lines.append(f"  floor under the small people as served: {Floor(**d['floor']).describe()}")
    if status.retrain:
        lines.extend(_outlook_lines(status.retrain))
    lines.append(f"pipeline: {'running, ' + status.pipeline_run if status.pipeline_run else 'no run under way'}")
    if status.last_watch_decision:
        lines.append(f"last watch poll: {status.last_watch_decision}")
    if status.history:
        lines.append(
            "production history (version, feedback labels, studio AP, street AP,"
            " real people: one, small, small as served):"
        )
        for h in status.history:
            real = "  ".join(h.get(key) or "-" for key in REAL_PEOPLE_RECORDED)
            lines.append(
                f"  {h['version']}  {h['feedback_labels']:>5}  {h['studio_oks_ap']}  {h['street_oks_ap']}  {real}"
            )
        lines.extend(_drift_lines(status.history))
    return "\n".join(lines)


def _drift_lines(history: list[dict[str, str]]) -> list[str]:
    """Real people from the first production model that scored them to the last, each figure from the first row
    that has it (older rows lack the later columns): the promotion rule holds each turn to the production before
    it, so a slow drift passes it and is shown here."""
    since: dict[str, list[str]] = {}  # first version -> the moves of the figures it starts
    for key, people in REAL_PEOPLE_RECORDED.items():
        scored = [(h["version"], value) for h in history if (value := _number(h.get(key))) is not None]
        if len(scored) >= 2:
            (first, was), (_, now) = scored[0], scored[-1]
            since.setdefault(first, []).append(f"{people} {was:.3f} -> {now:.3f} ({now - was:+.3f})")
    if not since:
        return []
    return [
        *(f"real people since {first}: {', '.join(moves)}" for first, moves in since.items()),
        "  (each promotion is held to the production before it, not to the first: docs/real-photos.md)",
    ]


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _outlook_lines(r: RetrainOutlook) -> list[str]:
    lines = [f"labels waiting for a retrain: {r.labels_waiting} (production was trained on {r.labels_used})"]
    if r.expected_street_gain is None:
        return [*lines, f"  expected gain unknown: {r.curve}"]
    if r.worth_it_from is None:
        verdict = "(params.yaml's promote.street_margin unreadable: no verdict)"
    elif r.expected_street_gain >= r.worth_it_from:
        verdict = f"worth a retrain (promotion needs {r.worth_it_from:+.3f})"
    else:
        verdict = f"not yet worth a retrain (promotion needs {r.worth_it_from:+.3f})"
    beyond = ", beyond the last measured point" if r.extrapolated else ""
    lines.append(f"  expected street OKS AP gain {r.expected_street_gain:+.3f}: {verdict}")
    lines.append(f"  curve: {r.curve}{beyond}")
    return lines


def status_json(status: FlywheelStatus) -> str:
    return json.dumps(asdict(status), indent=2)
