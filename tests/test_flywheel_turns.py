"""benchmarks/flywheel_turns.py's own parts: a setting for one run (--set), its curve, real-photo agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.benchmarks import load_benchmark

turns = load_benchmark("flywheel_turns")


def test_a_set_value_is_read_as_yaml_and_a_malformed_one_is_refused_with_a_sentence() -> None:
    assert turns.parse_override("train.finetune_interpolation=0.75") == ("train", "finetune_interpolation", 0.75)
    assert turns.parse_override("train.config=movenet-thunder") == ("train", "config", "movenet-thunder")
    for bad in ("train.finetune_interpolation", "finetune_interpolation=0.75", ".x=1"):
        with pytest.raises(SystemExit, match=r"expected SECTION\.KEY=VALUE"):
            turns.parse_override(bad)


def test_set_params_changes_only_the_named_keys(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"train": {"lr": 0.1, "finetune_interpolation": 1.0}, "promote": {"margin": 0.01}})
    )
    turns.set_params(params, [("train", "finetune_interpolation", 0.75), ("labels", "noise_px", 2)])
    assert yaml.safe_load(params.read_text()) == {
        "train": {"lr": 0.1, "finetune_interpolation": 0.75},
        "promote": {"margin": 0.01},
        "labels": {"noise_px": 2},
    }


def test_each_turn_reads_real_photo_agreement_from_the_evaluate_stages_metrics() -> None:
    metrics = {"street": {"oks_ap": 0.5}, "real_photos": {"agreement@0.05": 0.37681, "keypoints": 69.0}}
    assert turns.real_agreement(metrics) == 0.377
    assert turns.real_agreement({"street": {"oks_ap": 0.5}}) is None  # a report from before the stage scored it
    metrics["real_photos"]["small_people_agreement@0.05"] = 0.91254
    assert turns.real_agreement(metrics, "small_people_agreement@0.05") == 0.913


def test_a_run_at_a_setting_never_rewrites_the_shipped_curve_unasked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "turns.jsonl"
    rows = [
        {"figure": "setup", "commit": "abc1234", "train.finetune_interpolation": 0.75},
        {"figure": "turn", "turn": 0, "labels": 0, "promoted": True, "street_ap": 0.46},
        {"figure": "turn", "turn": 1, "labels": 300, "promoted": True, "street_ap": 0.55},
    ]
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr("sys.argv", ["flywheel_turns.py", "--from-results", str(results)])
    with pytest.raises(SystemExit, match="not the default"):
        turns.main()
    curve = tmp_path / "curve.json"
    monkeypatch.setattr("sys.argv", ["flywheel_turns.py", "--from-results", str(results), "--curve", str(curve)])
    turns.main()
    assert "abc1234" in json.loads(curve.read_text())["source"]
