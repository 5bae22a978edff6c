"""DVC stage `promote`: make the candidate production only if it beats production on the holdouts.

    python -m flywheel.stages.promote       # reads params.yaml:promote; run by `dvc repro`

Production is re-evaluated on the current holdouts (not trusted from its card), so both models are
compared on exactly the same data. Where the candidate starts from the pretrained MoveNet and has a person
detector, the pretrained network it started from is scored now too, on the small real people as served, for the
rule's floor (`promote.served_floor`: a few seconds, the network rebuilt from the pinned weights). The decision
and the models' metrics are written either way.

`models/production` is this stage's DVC output (`persist: true`: it stays what it was unless the
candidate wins), so dvc.lock records the production model of every commit and `dvc pull` brings it
back. A promotion writes `models/<version>` and repoints the `models/production` symlink at it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from flywheel.pipeline import REAL_PHOTOS, SCENES_HOLDOUT, SMALL_PEOPLE_SERVED_AGREEMENT, PipelinePaths, load_params
from flywheel.promotion import REAL_PEOPLE_RECORDED, Floor, Metrics, append_history, decide, real_tolerance
from flywheel.tracking import log_iteration
from posewheel import artifact, atomic
from posewheel.dataset import ANNOTATIONS_FILE

log = logging.getLogger("flywheel.promote")


def _candidate_metrics(paths: PipelinePaths) -> Metrics:
    """The candidate's metrics per holdout, the street scenes' (informative) and the real photos' (the rule reads
    them with `real_tolerance`); a missing or unreadable file gives no metrics for it (never promoted without both
    holdouts, nor without the real photos where the rule reads them)."""
    metrics: Metrics = {}
    for name in [*paths.holdouts(), SCENES_HOLDOUT, REAL_PHOTOS]:
        path = paths.candidate_metrics / f"{name}.json"
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("candidate metrics %s unreadable: %s", path, exc)
            continue
        if isinstance(values, dict):
            metrics[name] = values
    return metrics


def _production_metrics(paths: PipelinePaths) -> Metrics | None:
    """Production scored now as the candidate was: both holdouts and the real photos."""
    from flywheel.stages.evaluate import real_photo_agreement
    from training.evaluate import evaluate_artifact

    if not paths.production.exists():
        return None
    metrics = {name: evaluate_artifact(paths.production, holdout) for name, holdout in paths.holdouts().items()}
    return metrics | {REAL_PHOTOS: real_photo_agreement(paths.production)}


def served_floor(setting: object, candidate: artifact.ModelCard, production: bool = True) -> Floor | None:
    """`promote.served_floor` (`setting`, a fraction) of the small people as served by the pretrained network the
    `candidate`'s lineage started from, scored now. None where the setting is null, where there is no `production`
    yet (the first model is promoted whatever its real people; the setting is checked all the same), or where the
    candidate has no person detector (nothing is served through one) or starts from no pretrained network (nothing
    real to keep)."""
    if setting is None:
        log.warning("params.yaml's promote.served_floor is null: no floor under the small people as served")
        return None
    if isinstance(setting, bool) or not isinstance(setting, int | float) or not 0 < setting <= 1:
        raise ValueError(f"params.yaml's promote.served_floor must be a fraction in (0, 1] or null, not {setting!r}")
    if not production:
        return None
    if candidate.pretrained is None or candidate.detector is None:
        log.info("the candidate has no pretrained start or no person detector: no floor under the people as served")
        return None
    model = candidate.pretrained.model
    return Floor(float(setting), start_served(model), model)


def start_served(model: str) -> float:
    """The pretrained `model`'s (its own detector's) small people as served, against the original's answers."""
    from training.evaluate_persons import served_small_people_agreement
    from training.pretrained import export_pretrained

    with tempfile.TemporaryDirectory() as scratch:
        figures = served_small_people_agreement(export_pretrained(model, Path(scratch)))
    log.info("the pretrained %s: small people as served %.3f", model, figures[SMALL_PEOPLE_SERVED_AGREEMENT])
    return figures[SMALL_PEOPLE_SERVED_AGREEMENT]


def _real_people(metrics: Metrics) -> dict[str, float]:
    """The real people the history records (`REAL_PEOPLE_RECORDED`); those not scored are left out."""
    real = metrics.get(REAL_PHOTOS, {})
    return {key: round(float(real[key]), 3) for key in REAL_PEOPLE_RECORDED if isinstance(real.get(key), int | float)}


def _feedback_labels(paths: PipelinePaths) -> int:
    ann = paths.feedback / ANNOTATIONS_FILE
    return len(json.loads(ann.read_text(encoding="utf-8"))["annotations"]) if ann.is_file() else 0


def run(paths: PipelinePaths) -> dict[str, object]:
    """Decide, promote when the rule says so, write metrics/promotion.json; returns that record."""
    rule = load_params(paths.root)["promote"]
    card = artifact.load_card(paths.candidate)
    candidate = _candidate_metrics(paths)
    production_version = artifact.production_version(paths.models)
    production = _production_metrics(paths)
    margin, tolerance = float(rule["street_margin"]), float(rule["studio_tolerance"])
    real = real_tolerance(rule.get("real_tolerance"), None if production is None else paths.production)
    floor = served_floor(rule.get("served_floor"), card, production is not None)
    decision = decide(candidate, production, margin, tolerance, real, floor)
    labels = _feedback_labels(paths)
    if decision.promote:
        _install(paths, card, candidate)
        append_history(
            paths.history,
            {
                "version": card.version,
                "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "parent_version": card.parent_version or "",
                "feedback_labels": labels,
                "studio_oks_ap": round(float(candidate["studio"]["oks_ap"]), 4),
                "street_oks_ap": round(float(candidate["street"]["oks_ap"]), 4),
                **_real_people(candidate),
            },
        )
    record: dict[str, object] = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "candidate_version": card.version,
        "production_version_before": production_version,
        "production_version_after": card.version if decision.promote else production_version,
        "feedback_labels": labels,
        "candidate": candidate,
        "production": production,
    }
    if floor is not None:
        record["floor"] = {"model": floor.model, "start": round(floor.start, 6), "fraction": floor.fraction}
    atomic.write_json(paths.promotion, record)
    log.info("%s %s: %s", "promoted" if decision.promote else "kept production over", card.version, decision.reason)
    log_iteration(paths.root, record, paths.candidate)
    return record


def _install(paths: PipelinePaths, card: artifact.ModelCard, metrics: Metrics) -> None:
    """Copy the candidate to models/<version> with its metrics in the card, then flip production."""
    target = paths.models / artifact.check_version(card.version)
    with atomic.staged_dir(target) as stage:
        for item in Path(paths.candidate).iterdir():
            shutil.copy2(item, stage / item.name)
        card.metrics = {name: dict(values) for name, values in metrics.items()}
        artifact.save_card(stage, card)
    if paths.production.is_dir() and not paths.production.is_symlink():
        _replace_folder_with_link(paths, card.version)
    else:
        artifact.promote(paths.models, card.version)


def _replace_folder_with_link(paths: PipelinePaths, version: str) -> None:
    """Swap the plain folder `dvc pull` / `dvc checkout` leave at models/production for a symlink to
    `version`, in one atomic exchange (readers see the old model or the new one, never none)."""
    artifact.load_card(paths.models / version)  # as artifact.promote: only a valid artifact becomes production
    link = paths.models / f".{paths.production.name}.{os.getpid()}.link"
    link.unlink(missing_ok=True)
    os.symlink(version, link)
    atomic.replace_dir(link, paths.production)  # the link takes the folder's place; the folder is removed


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(PipelinePaths.from_settings())


if __name__ == "__main__":
    main()
