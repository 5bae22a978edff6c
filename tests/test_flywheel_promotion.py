"""The promotion rule promotes only a model that is better on street and not worse on studio."""

from __future__ import annotations

from pathlib import Path

from flywheel.promotion import append_history, decide, read_history


def _m(studio: float, street: float) -> dict[str, dict[str, float]]:
    return {"studio": {"oks_ap": studio}, "street": {"oks_ap": street}}


def test_first_candidate_is_promoted_when_there_is_no_production() -> None:
    assert decide(_m(0.5, 0.1), None, 0.01, 0.02).promote


def test_candidate_better_on_street_within_studio_tolerance_is_promoted() -> None:
    decision = decide(_m(0.89, 0.60), _m(0.90, 0.30), street_margin=0.01, studio_tolerance=0.02)
    assert decision.promote and "street" in decision.reason


def test_candidate_losing_too_much_studio_is_refused() -> None:
    decision = decide(_m(0.80, 0.60), _m(0.90, 0.30), street_margin=0.01, studio_tolerance=0.02)
    assert not decision.promote and "studio" in decision.reason


def test_candidate_not_better_on_street_by_the_margin_is_refused() -> None:
    decision = decide(_m(0.90, 0.305), _m(0.90, 0.30), street_margin=0.01, studio_tolerance=0.02)
    assert not decision.promote and "margin" in decision.reason


def test_history_keeps_every_production_model_in_order(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    append_history(path, {"version": "m-1", "studio_oks_ap": 0.9, "street_oks_ap": 0.3, "feedback_labels": 0})
    append_history(path, {"version": "m-2", "studio_oks_ap": 0.9, "street_oks_ap": 0.6, "feedback_labels": 300})
    rows = read_history(path)
    assert [r["version"] for r in rows] == ["m-1", "m-2"]
    assert rows[1]["street_oks_ap"] == "0.6" and rows[1]["feedback_labels"] == "300"
    assert sum(line.startswith("version,") for line in path.read_text().splitlines()) == 1
