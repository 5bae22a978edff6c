"""What `posewheel demo` prints at the end: the before/after table, and one row per turn with --loops."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from flywheel.demo import DemoOptions, DemoReport, Turn, format_report, report_record, summarise_turns
from flywheel.pipeline import REAL_PHOTOS, SCENES_HOLDOUT

REPO = Path(__file__).resolve().parents[1]


def _metrics(studio: float, street: float, scenes: float, real: float = 1.0) -> dict[str, dict[str, float]]:
    return {
        "studio": {"oks_ap": studio},
        "street": {"oks_ap": street},
        SCENES_HOLDOUT: {"oks_ap": scenes, "true_boxes_oks_ap": scenes + 0.1, "box_ap": 0.3},
        REAL_PHOTOS: {
            "agreement@0.05": real,
            "keypoints": 69.0,
            "one_person_agreement@0.05": min(1.0, real + 0.1),
            "small_people_agreement@0.05": real - 0.05,
            "small_people_served_agreement@0.05": 0.95 - (1.0 - real) / 10,
        },
    }


def _turn(number: int, labels: int, street: float, promoted: bool) -> Turn:
    return Turn(
        number=number,
        predictions=900,
        queued=300,
        labels=labels,
        images=labels // 2,
        candidate=_metrics(0.96, street, 0.2 + street / 10, real=0.5 - number / 10),
        promoted=promoted,
        reason="within the rule" if promoted else "street OKS AP gain below the margin",
        production=f"v{number if promoted else number - 1}",
        production_metrics=_metrics(0.97, 0.45, 0.05),
        minutes=14.2 + number / 10,
    )


def test_one_turn_shows_the_street_scenes_without_boxes_before_and_after() -> None:
    report = DemoReport(before_version="v0", after_version="v1", persons=(0, 4), labels_used=298, labeled_images=151)
    report.metrics_before, report.metrics_after = _metrics(0.97, 0.45, 0.05), _metrics(0.96, 0.63, 0.09, real=0.377)
    report.turns = [_turn(1, 298, 0.63, True)]
    text = format_report(report, DemoOptions(), REPO)
    assert "one turn of the flywheel" in text
    assert "street scenes    0.050  ->  0.090  OKS AP without boxes (0-4 people" in text
    assert "real photos      1.000  ->  0.377  agreement with the pretrained MoveNet" in text
    assert "one person       1.000  ->  0.477  the same on its photographs of one person" in text
    assert "small people     0.950  ->  0.327  the same, the check set's single people pasted" in text
    assert "  as served      0.950  ->  0.888  the same pictures as the server reads them" in text
    assert "given the true boxes 0.150  ->  0.190" in text
    assert "298 corrected street persons in 151 images" in text
    assert "turn  labels so far" not in text  # one turn: no per-turn table


def test_several_turns_get_a_row_each_with_labels_so_far_and_the_decision() -> None:
    report = DemoReport(before_version="v0", after_version="v2", persons=(0, 4))
    report.metrics_before = _metrics(0.97, 0.45, 0.05)
    report.turns = [_turn(1, 290, 0.63, True), _turn(2, 580, 0.70, True), _turn(3, 870, 0.705, False)]
    report.minutes = {"start Label Studio": 0.8, "turn 1/3: dvc repro": 14.0, "turn 2/3: dvc repro": 14.0}
    text = format_report(report, DemoOptions(loops=3), REPO)
    assert "3 turns of the flywheel" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:2] in {"0 ", "1 ", "2 ", "3 "}]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert rows[0][1:4] == ["-", "0.970", "0.450"]
    assert (
        rows[3][:3] == ["3", "870", "(435)"]
        and rows[3][4] == "0.705"
        and rows[3][-4:] == ["0.200", "0.300", "no", "14.5"]
    )
    assert rows[0][-2:] == ["1.000", "1.000"]  # the first model's real-photo agreement, whole and on one person
    assert "turn 1/3" not in text.split("minutes", 1)[1].split("\n", 1)[0]  # turns are in the table, not that line
    record = json.loads(json.dumps(report_record(report)))  # what benchmarks/flywheel_turns.py reads
    assert [t["labels"] for t in record["turns"]] == [290, 580, 870]
    assert record["turns"][2]["promoted"] is False


def test_several_turns_end_with_production_not_with_a_candidate_that_was_not_promoted() -> None:
    report = DemoReport(before_version="v0", persons=(0, 4))
    report.metrics_before = _metrics(0.97, 0.45, 0.05)
    report.turns = [_turn(1, 290, 0.63, True), _turn(2, 580, 0.70, True), _turn(3, 870, 0.705, False)]
    summarise_turns(report)
    assert report.after_version == "v2" and report.metrics_after == report.turns[1].candidate
    assert report.reason == "in turn 1, 2 of 3; turn 3 not: street OKS AP gain below the margin"
    text = format_report(report, DemoOptions(loops=3), REPO)
    assert "after v2  (promoted: in turn 1, 2 of 3; turn 3 not:" in text
    assert "street OKS AP    0.450  ->  0.700" in text  # what the server answers with, not turn 3's 0.705


def test_several_turns_none_promoted_end_where_they_began() -> None:
    report = DemoReport(before_version="v0", persons=(0, 4))
    report.metrics_before = _metrics(0.97, 0.45, 0.05)
    turns = [_turn(1, 290, 0.452, False), _turn(2, 580, 0.455, False)]
    report.turns = [replace(t, production="v0") for t in turns]
    summarise_turns(report)
    assert not report.promoted and report.after_version == "v0" and report.metrics_after == report.metrics_before
    assert report.reason.startswith("in turn none of 2; turn 2 not:")


def test_one_turn_shows_its_candidate_and_the_rules_reason() -> None:
    report = DemoReport(before_version="v0", persons=(0, 4))
    report.metrics_before = _metrics(0.97, 0.45, 0.05)
    report.turns = [_turn(1, 290, 0.455, False)]
    summarise_turns(report)
    assert report.metrics_after == report.turns[0].candidate and report.reason == "street OKS AP gain below the margin"
    assert not report.promoted and report.after_version == "v0"
