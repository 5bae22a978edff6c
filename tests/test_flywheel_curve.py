"""benchmarks/flywheel_curve.py: the selection strategies' orders and the curve redrawn from recorded runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def curve() -> ModuleType:
    return load_benchmark("flywheel_curve")


def test_each_strategy_orders_the_whole_pool_and_only_power_and_uncertainty_lean_to_the_unsure(
    curve: ModuleType,
) -> None:
    confidence = np.random.default_rng(3).uniform(size=400)
    orders = {s: curve.selection_order(s, confidence, seed=0) for s in curve.STRATEGIES}
    for order in orders.values():
        assert sorted(order.tolist()) == list(range(400))
    assert np.all(np.diff(confidence[orders["uncertainty"]]) >= 0)
    first = {s: float(confidence[o[:100]].mean()) for s, o in orders.items()}
    assert first["uncertainty"] < first["power"] < first["random"] - 0.05
    assert first["power"] > first["uncertainty"] + 0.05  # not the worst tail only
    assert np.array_equal(curve.selection_order("power", confidence, 0), orders["power"])  # seeded
    assert not np.array_equal(curve.selection_order("power", confidence, 1), orders["power"])


def point(labels: int, strategy: str, seed: int | None, street: float) -> str:
    row = {"benchmark": "flywheel_curve", "figure": "point", "labels": labels, "strategy": strategy, "seed": seed}
    return json.dumps({**row, "street_oks_ap": street, "studio_oks_ap": 0.96, "street_pck@0.1": 0.8})


def test_runs_that_share_a_base_model_make_one_curve_and_others_are_refused(
    curve: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text(
        "\n".join(
            [point(0, "baseline", None, 0.47)]
            + [point(100, s, k, 0.5 + k / 100) for s in ("random", "power") for k in (0, 1)]
        )
    )
    second = tmp_path / "b.jsonl"
    second.write_text(
        "\n".join(
            [point(0, "baseline", None, 0.47), "not json", point(200, "random", 0, 0.55), point(200, "random", 1, 0.57)]
        )
        + "\n"
        + "\n".join(point(200, "power", k, 0.60) for k in (0, 1))
    )
    rows = curve.recorded_points([first, second])
    assert len(rows) == 9 and sum(r["strategy"] == "baseline" for r in rows) == 1

    curve.report(rows, ["random", "power"], tmp_path / "out")
    with open(tmp_path / "out" / "flywheel_curve_random.csv") as f:
        means = {int(r["labels"]): float(r["street_oks_ap"]) for r in csv.DictReader(f)}
    assert means == {0: 0.47, 100: 0.505, 200: 0.56}
    assert (tmp_path / "out" / "flywheel_curve.png").stat().st_size > 1000
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    against = {r["labels"]: r["difference"] for r in lines if r["figure"] == "power_vs_random"}
    assert against == {100: 0.0, 200: 0.04}

    other = tmp_path / "c.jsonl"
    other.write_text(point(0, "baseline", None, 0.40))
    with pytest.raises(SystemExit, match="baseline differs"):
        curve.recorded_points([first, other])
    # the same score from another first model: the recorded paths tell them apart
    here, elsewhere = ({**json.loads(point(0, "baseline", None, 0.47)), "base": b} for b in ("m-a", "m-b"))
    (tmp_path / "d.jsonl").write_text(json.dumps(here))
    (tmp_path / "e.jsonl").write_text(json.dumps(elsewhere))
    with pytest.raises(SystemExit, match="baseline differs"):
        curve.recorded_points([tmp_path / "d.jsonl", tmp_path / "e.jsonl"])
    assert len(curve.recorded_points([tmp_path / "d.jsonl", tmp_path / "d.jsonl"])) == 1
