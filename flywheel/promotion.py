"""The promotion rule: a candidate replaces production only when it is better where it matters.

Better means: street OKS AP (the production traffic) up by at least `street_margin`, and studio OKS AP
(what the first model was built for) down by no more than `studio_tolerance`. A metric that is
missing or not finite (NaN: an empty holdout) never promotes.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from posewheel import atomic

Metrics = dict[str, dict[str, float]]  # holdout name -> metric name -> value


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _metric(metrics: Metrics | None, holdout: str, who: str) -> tuple[float | None, str]:
    """`metrics[holdout]["oks_ap"]` when it is a finite number, else (None, why not)."""
    values = metrics.get(holdout) if isinstance(metrics, dict) else None
    value = values.get("oks_ap") if isinstance(values, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{who} has no {holdout} OKS AP ({value!r:.40})"
    if not math.isfinite(value):
        # oks_ap is NaN for an empty holdout; NaN < x and NaN > x are both false, so it must be caught here
        return None, f"{who}'s {holdout} OKS AP is {value} (an empty or broken holdout?)"
    return float(value), ""


def decide(candidate: Metrics, production: Metrics | None, street_margin: float, studio_tolerance: float) -> Decision:
    """Compare the candidate's and production's OKS AP on both holdouts.

    A missing or non-finite metric (NaN from an empty holdout) never promotes: the decision says which.
    """
    if not (math.isfinite(street_margin) and math.isfinite(studio_tolerance)):
        return Decision(
            False,
            f"not promoted: the rule's margin {street_margin} / tolerance {studio_tolerance} must be finite numbers",
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
    return Decision(True, f"street OKS AP {street_gain:+.4f}, studio {-studio_loss:+.4f}: within the rule")


HISTORY_FIELDS = ("version", "promoted_at", "parent_version", "feedback_labels", "studio_oks_ap", "street_oks_ap")


def append_history(path: Path, row: dict[str, object]) -> None:
    """Add one production model to the history CSV (atomically rewritten; header once)."""
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    if not existing:
        writer.writeheader()
    writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    atomic.write_text(path, existing + buffer.getvalue())


def read_history(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Every production model so far, oldest first."""
    if not Path(path).is_file():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
