"""The promotion rule: a candidate replaces production only when it is better where it matters.

Better means: street OKS AP (the production traffic) up by at least `street_margin`, studio OKS AP
(what the first model was built for) down by no more than `studio_tolerance`, and, where a
`real_tolerance` is given, the real people kept: the candidate's agreement with the pretrained MoveNet
on the check set's photographs of one person and on the same people pasted smaller
(`metrics/candidate/real_photos.json`, training/realphotos.py) down by no more than it, each; and, where a
`Floor` is given, the small people as served (the candidate's detector finds each, its network reads the crop)
at least a fraction of the pretrained start's: the turn-by-turn tolerance lets a slow drift pass, the floor
does not. A metric that is missing or not finite (NaN: an empty holdout) never promotes.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from flywheel.pipeline import ONE_PERSON_AGREEMENT, REAL_PHOTOS, SMALL_PEOPLE_AGREEMENT, SMALL_PEOPLE_SERVED_AGREEMENT
from posewheel import artifact, atomic

Metrics = dict[str, dict[str, float]]  # holdout name -> metric name -> value
log = logging.getLogger("flywheel.promote")

# The real people a candidate must keep (`real_tolerance`), as the rule names them. The whole check set's figure is
# not among them: it moves by up to 0.16 with which of ascent's two climbers a model answers without a box.
REAL_PEOPLE = {ONE_PERSON_AGREEMENT: "one-person", SMALL_PEOPLE_AGREEMENT: "small-people"}
# What the production history records of each model: the rule's, and the small people as served (the detector's
# crop of each person; since session 50). The rule reads the whole-picture figure, the harder one: a fine-tune at the
# defaults loses 0.04-0.06 of it a turn and at most about 0.01 as served (docs/real-photos.md).
REAL_PEOPLE_RECORDED = {**REAL_PEOPLE, SMALL_PEOPLE_SERVED_AGREEMENT: "small-people as served"}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class Floor:
    """The least of the small people as served a candidate keeps, over any number of turns: `fraction` of `start`,
    the pretrained network its lineage started from (`model`), scored now as the candidate was
    (`promote.served_floor`)."""

    fraction: float
    start: float
    model: str

    @property
    def value(self) -> float:
        return self.fraction * self.start

    def describe(self) -> str:
        return f"{self.value:.3f} ({self.fraction:g} of the pretrained {self.model}'s {self.start:.3f})"


def _metric(metrics: Metrics | None, holdout: str, who: str, key: str = "oks_ap") -> tuple[float | None, str]:
    """`metrics[holdout][key]` when it is a finite number, else (None, why not)."""
    values = metrics.get(holdout) if isinstance(metrics, dict) else None
    value = values.get(key) if isinstance(values, dict) else None
    name = "OKS AP" if key == "oks_ap" else key
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{who} has no {holdout} {name} ({value!r:.40})"
    if not math.isfinite(value):
        # oks_ap is NaN for an empty holdout; NaN < x and NaN > x are both false, so it must be caught here
        return None, f"{who}'s {holdout} {name} is {value} (an empty or broken holdout?)"
    return float(value), ""


def decide(
    candidate: Metrics,
    production: Metrics | None,
    street_margin: float,
    studio_tolerance: float,
    real_tolerance: float | None = None,
    floor: Floor | None = None,
) -> Decision:
    """Compare the candidate's and production's OKS AP on both holdouts and, with a `real_tolerance`, their
    agreement on the real people (`REAL_PEOPLE`, under `REAL_PHOTOS`); with a `floor`, hold the candidate's small
    people as served to it. The first candidate (no production) is promoted whatever the real people.

    A missing or non-finite metric (NaN from an empty holdout) never promotes: the decision says which.
    """
    rule = [street_margin, studio_tolerance] + ([] if real_tolerance is None else [real_tolerance])
    rule += [] if floor is None else [floor.value]
    if not all(math.isfinite(value) for value in rule):
        return Decision(
            False,
            f"not promoted: the rule's margin {street_margin} / tolerances {studio_tolerance}"
            f"{'' if real_tolerance is None else f', {real_tolerance}'}"
            f"{'' if floor is None else f' / floor {floor.fraction} x {floor.start}'} must be finite numbers",
        )
    who = [("candidate", candidate)] + ([("production", production)] if production is not None else [])
    values: dict[tuple[str, str], float] = {}
    for name, metrics in who:
        for holdout in ("street", "studio"):
            value, why = _metric(metrics, holdout, name)
            if value is None:
                return Decision(False, f"not promoted: {why}")
            values[(name, holdout)] = value
    if production is None:
        return Decision(True, "no production model yet: the first candidate is promoted")
    street_gain = values[("candidate", "street")] - values[("production", "street")]
    studio_loss = values[("production", "studio")] - values[("candidate", "studio")]
    if not street_gain >= street_margin:
        return Decision(False, f"street OKS AP gain {street_gain:+.4f} is below the margin {street_margin}")
    if not studio_loss <= studio_tolerance:
        return Decision(False, f"studio OKS AP loss {studio_loss:.4f} exceeds the tolerance {studio_tolerance}")
    kept = ""
    if real_tolerance is not None:
        for key, people in REAL_PEOPLE.items():
            now, was = (_metric(metrics, REAL_PHOTOS, name, key) for name, metrics in who)
            if now[0] is None or was[0] is None:
                return Decision(False, f"not promoted: {now[1] or was[1]}")
            real_loss = was[0] - now[0]
            if not real_loss <= real_tolerance:
                return Decision(
                    False,
                    f"{people} real-photo agreement loss {real_loss:.4f} ({was[0]:.3f} -> {now[0]:.3f}) exceeds the"
                    f" tolerance {real_tolerance}: the candidate forgot real people (train.finetune_distill_weight,"
                    " finetune_upper_fraction and finetune_interpolation keep them: docs/real-photos.md)",
                )
            kept += f", {people} real photos {now[0] - was[0]:+.3f}"
    if floor is not None:
        served, why = _metric(candidate, REAL_PHOTOS, "candidate", SMALL_PEOPLE_SERVED_AGREEMENT)
        if served is None:
            return Decision(False, f"not promoted: {why}")
        if not served >= floor.value:
            return Decision(
                False,
                f"small people as served {served:.3f} is below the floor {floor.describe()}: over its turns the"
                " wheel forgot real people (promote.served_floor; docs/real-photos.md)",
            )
        kept += f", small people as served {served:.3f} (floor {floor.value:.3f})"
    return Decision(True, f"street OKS AP {street_gain:+.4f}, studio {-studio_loss:+.4f}{kept}: within the rule")


def real_tolerance(setting: object, production: Path | None) -> float | None:
    """`promote.real_tolerance` (`setting`) where the `production` artifact's lineage starts from the pretrained
    MoveNet (its card's `pretrained`), or where there is no production yet: only such a model knows real people to
    forget. None where the setting is null, or production is a from-scratch network: its agreement with the
    pretrained one on real people is chance (0.03-0.11 for the suite's `cpu` network), and would refuse candidates
    at random."""
    if setting is None:
        log.warning("params.yaml's promote.real_tolerance is null: the rule does not read real photos")
        return None
    if production is not None and artifact.load_card(production).pretrained is None:
        log.info("production does not start from the pretrained MoveNet: the rule does not read real photos")
        return None
    return float(setting)  # type: ignore[arg-type]  # params.yaml's number


# The real people of each production model (`REAL_PEOPLE_RECORDED`) are its last columns (since session 49; as served
# since session 50): the rule holds each turn to the production before it, so a slow drift over many turns shows
# here and in `flywheel status`.
HISTORY_FIELDS = (
    "version",
    "promoted_at",
    "parent_version",
    "feedback_labels",
    "studio_oks_ap",
    "street_oks_ap",
    *REAL_PEOPLE_RECORDED,
)


def append_history(path: Path, row: dict[str, object]) -> None:
    """Add one production model to the history CSV (atomically rewritten; header once). A history written before
    a column was added is rewritten under today's header, its rows' new columns empty."""
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    header = existing.partition("\n")[0]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    if header != ",".join(HISTORY_FIELDS):
        writer.writeheader()
        writer.writerows({k: old.get(k) or "" for k in HISTORY_FIELDS} for old in read_history(path))
        existing = ""
    writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    atomic.write_text(path, existing + buffer.getvalue())


def read_history(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Every production model so far, oldest first."""
    if not Path(path).is_file():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
