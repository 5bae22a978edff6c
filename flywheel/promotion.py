"""The promotion rule: a candidate replaces production only when it is better where it matters.

Better means: street OKS AP (the production traffic) up by at least `street_margin`, and studio OKS AP
(what the first model was built for) down by no more than `studio_tolerance`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from posewheel import atomic

Metrics = dict[str, dict[str, float]]  # holdout name -> metric name -> value


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(candidate: Metrics, production: Metrics | None, street_margin: float, studio_tolerance: float) -> Decision:
    """Compare the candidate's and production's OKS AP on both holdouts."""
    if production is None:
        return Decision(True, "no production model yet: the first candidate is promoted")
    street_gain = candidate["street"]["oks_ap"] - production["street"]["oks_ap"]
    studio_loss = production["studio"]["oks_ap"] - candidate["studio"]["oks_ap"]
    if street_gain < street_margin:
        return Decision(False, f"street OKS AP gain {street_gain:+.4f} is below the margin {street_margin}")
    if studio_loss > studio_tolerance:
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
