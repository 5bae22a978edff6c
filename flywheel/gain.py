"""What the corrected labels waiting are expected to buy: street OKS AP against labels, from a measured curve.

    from flywheel.gain import GainCurve
    curve = GainCurve.measured(read_history("metrics/history.csv"))  # this project's own, else the shipped one
    curve.gain(used=279, waiting=300)   # expected street OKS AP gain of a retrain on all 579 labels

The shipped curve (`flywheel/gain_curve.json`) is written by `benchmarks/flywheel_turns.py`: production's
street OKS AP after each turn of the wheel against the corrected labels it was trained on, measured from a
fresh clone at the default parameters. Once a project has promoted three models trained on different
label counts, its own production history is the curve instead: its data, its annotators.

Between measured points the curve is a straight line; beyond the last one it goes on with the slope of
the last segment (never negative), and says so, because nothing was measured there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from posewheel import atomic

SHIPPED = Path(__file__).with_name("gain_curve.json")
OWN_HISTORY_POINTS = 3  # promotions on distinct label counts before a project's own history is the curve


class GainCurveError(ValueError):
    """A curve file that cannot be read as (labels, street OKS AP) points."""


@dataclass(frozen=True)
class GainCurve:
    labels: tuple[int, ...]  # corrected labels a production model was trained on, increasing
    street_ap: tuple[float, ...]  # its street OKS AP
    source: str  # where the points were measured, for the operator

    def __post_init__(self) -> None:
        if len(self.labels) < 2 or len(self.labels) != len(self.street_ap):
            raise GainCurveError(f"{self.source}: a curve needs at least 2 (labels, street AP) points")
        if any(b <= a for a, b in zip(self.labels, self.labels[1:], strict=False)):
            raise GainCurveError(f"{self.source}: label counts must increase, got {list(self.labels)}")

    def at(self, labels: float) -> float:
        """Street OKS AP expected of a model trained on `labels` corrected labels."""
        xs, ys = self.labels, self.street_ap
        if labels <= xs[0]:
            return ys[0]
        for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
            if labels <= x1:
                return y0 + (y1 - y0) * (labels - x0) / (x1 - x0)
        slope = max(0.0, (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]))
        return ys[-1] + slope * (labels - xs[-1])

    def gain(self, used: int, waiting: int) -> float:
        """Expected street OKS AP gain of retraining on `used + waiting` labels over a model trained on `used`."""
        return self.at(used + waiting) - self.at(used)

    def extrapolates(self, labels: int) -> bool:
        """True when `labels` lies beyond the last measured point."""
        return labels > self.labels[-1]

    @classmethod
    def load(cls, path: Path = SHIPPED) -> GainCurve:
        """A curve file: {"source": str, "points": [{"labels": int, "street_ap": float}, ...]}."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            points = sorted((int(p["labels"]), float(p["street_ap"])) for p in data["points"])
            source = str(data.get("source", path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GainCurveError(f"{path}: not a gain curve ({exc})") from exc
        return cls(tuple(x for x, _ in points), tuple(y for _, y in points), source)

    @classmethod
    def from_history(cls, rows: list[dict[str, str]]) -> GainCurve | None:
        """The project's own curve from its production history, or None with too few label counts."""
        best: dict[int, float] = {}
        for row in rows:
            try:
                labels, ap = int(row["feedback_labels"]), float(row["street_oks_ap"])
            except (KeyError, ValueError):
                continue
            best[labels] = ap  # a later promotion on the same labels replaces the earlier one
        if len(best) < OWN_HISTORY_POINTS:
            return None
        xs = sorted(best)
        return cls(tuple(xs), tuple(best[x] for x in xs), "this project's production history (metrics/history.csv)")

    @classmethod
    def measured(cls, history: list[dict[str, str]], shipped: Path = SHIPPED) -> GainCurve:
        """This project's own curve when its history has enough points, else the shipped benchmark's."""
        return cls.from_history(history) or cls.load(shipped)


def write_curve(path: Path, points: list[tuple[int, float]], source: str) -> None:
    """Write a curve file atomically (what `benchmarks/flywheel_turns.py` leaves for `flywheel status`)."""
    body = {"source": source, "points": [{"labels": x, "street_ap": round(y, 4)} for x, y in sorted(points)]}
    atomic.write_text(path, json.dumps(body, indent=2) + "\n")
