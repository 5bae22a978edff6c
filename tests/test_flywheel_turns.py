"""benchmarks/flywheel_turns.py's own parts: a setting for one run (--set) and the turns' models from the DVC cache."""

from __future__ import annotations

import hashlib
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


def _cache_dir(cache: Path, files: dict[str, bytes]) -> None:
    """Store `files` as DVC does: each blob under its md5, and a .dir manifest listing them."""
    entries = []
    for relpath, data in files.items():
        md5 = hashlib.md5(data).hexdigest()
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(data)
        entries.append({"md5": md5, "relpath": relpath})
    manifest = json.dumps(entries).encode()
    digest = hashlib.md5(manifest).hexdigest()
    (cache / digest[:2]).mkdir(parents=True, exist_ok=True)
    (cache / digest[:2] / f"{digest[2:]}.dir").write_bytes(manifest)


def test_every_cached_model_is_rebuilt_by_version_even_one_no_longer_in_the_workspace(tmp_path: Path) -> None:
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5"
    _cache_dir(cache, {"card.json": b'{"version": "m-1"}', "model.onnx": b"first"})
    _cache_dir(cache, {"card.json": b'{"version": "m-2"}', "model.onnx": b"refused candidate"})
    _cache_dir(cache, {"annotations.json": b"[]"})  # a dataset, not a model
    models = turns.cached_models(tmp_path)
    assert sorted(models) == ["m-1", "m-2"]
    assert (models["m-2"] / "model.onnx").read_bytes() == b"refused candidate"
    assert json.loads((models["m-1"] / "card.json").read_text()) == {"version": "m-1"}
    assert turns.cached_models(tmp_path) == models  # a second read reuses the folders
    assert turns._real_agreement(models, None) is None
    assert turns._real_agreement(models, "m-3") is None


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
