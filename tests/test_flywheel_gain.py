"""`posewheel flywheel status` says what the labels waiting are expected to buy, from a measured curve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.gain import SHIPPED, GainCurve, GainCurveError, write_curve
from flywheel.promotion import append_history

POSEWHEEL = str(Path(sys.executable).with_name("posewheel"))
CURVE = GainCurve((0, 300, 600), (0.40, 0.52, 0.58), "test")


def test_the_curve_is_a_straight_line_between_measured_points() -> None:
    assert CURVE.at(0) == pytest.approx(0.40)
    assert CURVE.at(150) == pytest.approx(0.46)
    assert CURVE.at(600) == pytest.approx(0.58)
    assert CURVE.gain(used=300, waiting=150) == pytest.approx(0.03)
    assert CURVE.gain(used=0, waiting=0) == 0.0


def test_beyond_the_last_point_the_curve_keeps_its_last_slope_but_never_falls() -> None:
    assert CURVE.at(900) == pytest.approx(0.64)  # slope 0.06 / 300 labels
    assert CURVE.extrapolates(601) and not CURVE.extrapolates(600)
    falling = GainCurve((0, 100), (0.5, 0.45), "test")
    assert falling.gain(used=100, waiting=500) == 0.0


def test_status_shows_pck_only_for_the_holdouts_that_have_it_and_real_photos_as_agreement() -> None:
    from flywheel.status import FlywheelStatus, format_status

    metrics = {
        "street": {"oks_ap": 0.576, "pck@0.1": 0.807},
        "street_scenes": {"oks_ap": 0.142, "box_ap": 0.165},
        "real_photos": {
            "agreement@0.05": 0.377,
            "median_error": 0.05,
            "one_person_agreement@0.05": 0.6,
            "small_people_agreement@0.05": 0.5,
        },
    }
    text = format_status(FlywheelStatus(0, 0, 898, "m-1", production_metrics=metrics))
    assert "  street         OKS AP 0.576  PCK@0.1 0.807" in text.splitlines()
    assert "  street_scenes  OKS AP 0.142" in text.splitlines() and "nan" not in text
    line = (
        "  real_photos    agreement with the pretrained MoveNet 0.377 (photographs of one person 0.600),"
        " people pasted smaller 0.500"
    )
    assert line in text.splitlines()


def test_a_project_with_three_promotions_on_different_labels_uses_its_own_history() -> None:
    rows = [
        {"feedback_labels": "0", "street_oks_ap": "0.3"},
        {"feedback_labels": "200", "street_oks_ap": "0.5"},
    ]
    assert GainCurve.from_history(rows) is None
    assert GainCurve.measured(rows).source == GainCurve.load(SHIPPED).source
    rows.append({"feedback_labels": "400", "street_oks_ap": "0.6"})
    own = GainCurve.measured(rows)
    assert own.labels == (0, 200, 400) and "history" in own.source
    assert own.gain(used=200, waiting=100) == pytest.approx(0.05)


def test_the_shipped_curve_was_measured_by_the_turns_benchmark() -> None:
    shipped = GainCurve.load(SHIPPED)
    assert "flywheel_turns" in shipped.source
    assert shipped.labels[0] == 0 and len(shipped.labels) >= 3
    assert shipped.street_ap[-1] > shipped.street_ap[0]  # the wheel paid, as measured


def test_an_unreadable_curve_says_which_file(tmp_path: Path) -> None:
    bad = tmp_path / "curve.json"
    bad.write_text('{"points": [{"labels": 1}]}')
    with pytest.raises(GainCurveError, match=str(bad)):
        GainCurve.load(bad)
    with pytest.raises(GainCurveError, match="must increase"):
        GainCurve((0, 0), (0.1, 0.2), "test")
    write_curve(bad, [(300, 0.5), (0, 0.4)], "written")
    assert GainCurve.load(bad).labels == (0, 300)


def test_status_shows_the_labels_waiting_and_whether_a_retrain_is_worth_it(tmp_path: Path) -> None:
    """The real CLI on a project whose production was trained on 279 labels and 579 are exported."""
    (tmp_path / "params.yaml").write_text("promote:\n  street_margin: 0.01\n  studio_tolerance: 0.02\n")
    history = tmp_path / "metrics" / "history.csv"
    history.parent.mkdir()
    for version, labels, street in (("m-1", 0, 0.46), ("m-2", 279, 0.52)):
        row = {"version": version, "feedback_labels": labels, "studio_oks_ap": 0.97, "street_oks_ap": street}
        append_history(history, row)
    feedback = tmp_path / "data" / "feedback"
    feedback.mkdir(parents=True)
    (feedback / "annotations.json").write_text(json.dumps({"annotations": [{"id": i} for i in range(579)]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSEWHEEL_")}
    env["POSEWHEEL_ROOT"] = str(tmp_path)

    shown = subprocess.run([POSEWHEEL, "flywheel", "status"], env=env, capture_output=True, text=True, check=True)
    expected = GainCurve.load(SHIPPED).gain(used=279, waiting=300)
    assert "labels waiting for a retrain: 300 (production was trained on 279)" in shown.stdout
    verdict = "worth a retrain" if expected >= 0.01 else "not yet worth a retrain"
    assert f"expected street OKS AP gain {expected:+.3f}: {verdict}" in shown.stdout

    as_json = subprocess.run([POSEWHEEL, "flywheel", "status", "--json"], env=env, capture_output=True, text=True)
    outlook = json.loads(as_json.stdout)["retrain"]
    assert outlook["labels_waiting"] == 300 and outlook["expected_street_gain"] == pytest.approx(expected, abs=1e-4)
