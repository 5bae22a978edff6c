"""Does the wheel keep paying? `posewheel demo --loops K` from a fresh first model, measured per turn.

    .venv/bin/python benchmarks/flywheel_turns.py [--loops 3] [--labels 300] [--work DIR]

Clones this repository's HEAD into a fresh folder (the project's virtualenvs linked in, nothing else
carried over), runs `posewheel demo --loops K` there: the first model is built by `dvc repro`, then each
turn sends fresh street traffic (seed + turn) to the running server, the simulated annotator labels
up to `--labels` persons in Label Studio, `dvc repro` retrains, evaluates and promotes, and the server
hot-swaps the promoted model. Reads the demo's report (var/log/demo-<time>.json) and prints one JSON
line per turn (studio, street and no-box street-scene OKS AP of the candidate, labels so far, minutes,
promoted) and the bars of the several-loops issue: street OKS AP of production after K turns >= 0.6,
studio no more than 0.02 below the first model, each turn at most 15 minutes. The baseline is the
first model, measured in the same run. Heavy (about 15 minutes a turn on 2 cores): run it alone.

Also writes the measured curve that `posewheel flywheel status` reads to say what labels waiting are
expected to buy (`--curve`, default flywheel/gain_curve.json: production's street OKS AP against the
labels it was trained on). `--from-results FILE` rewrites that curve from an earlier run's JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from flywheel.gain import SHIPPED as SHIPPED_CURVE
from flywheel.gain import write_curve
from tests.support.figures import emit as emit_figure
from tests.support.waiting import free_port

emit = partial(emit_figure, benchmark="flywheel_turns")
ROOT = Path(__file__).resolve().parents[1]
VENVS = (".venv", ".venv-labelstudio", ".venv-serve")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=3, help="turns of the wheel")
    parser.add_argument("--labels", type=int, default=300, help="most persons labeled per turn")
    parser.add_argument("--traffic", type=int, default=900, help="street images per turn")
    parser.add_argument("--work", type=Path, help="folder for the clone (default: a new temporary one)")
    parser.add_argument("--curve", type=Path, default=SHIPPED_CURVE, help="where to write the measured gain curve")
    parser.add_argument("--from-results", type=Path, help="only rewrite the curve from this run's JSON lines")
    args = parser.parse_args()
    if args.from_results:
        lines = args.from_results.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        commit = next(r["commit"] for r in rows if r["figure"] == "setup")
        write_gain_curve(args.curve, [r for r in rows if r["figure"] == "turn"], commit)
        return

    work = (args.work or Path(tempfile.mkdtemp(prefix="flywheel-turns-"))).resolve()
    clone = work / "posewheel"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for venv in VENVS:
        (clone / venv).symlink_to(ROOT / venv)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True)
    commit = head.stdout.strip()
    emit("setup", commit=commit, loops=args.loops, labels=args.labels, traffic=args.traffic, work=str(work))

    command = [str(clone / ".venv" / "bin" / "posewheel"), "demo", "--loops", str(args.loops)]
    command += ["--labels", str(args.labels), "--traffic", str(args.traffic), "--port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": str(clone), "WANDB_MODE": "offline", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("POSEWHEEL_ROOT", None)
    started = time.monotonic()
    with open(work / "demo.out", "wb") as out:
        code = subprocess.run(command, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    minutes = (time.monotonic() - started) / 60
    reports = sorted((clone / "var" / "log").glob("demo-*.json"))
    if code != 0 or not reports:
        emit("failed", exit_code=code, output=str(work / "demo.out"))
        sys.exit(1)
    report = json.loads(reports[-1].read_text(encoding="utf-8"))
    first = report["metrics_before"]
    emit("turn", turn=0, **_aps(first), labels=0, promoted=True, version=report["before_version"])
    production = first
    turns = [{"labels": 0, "promoted": True, **_aps(first)}]  # turn 0, then one per turn
    for turn in report["turns"]:
        candidate = turn["candidate"]
        if turn["promoted"]:
            production = candidate
        emit(
            "turn",
            turn=turn["number"],
            **_aps(candidate),
            labels=turn["labels"],
            images=turn["images"],
            promoted=turn["promoted"],
            reason=turn["reason"],
            minutes=turn["minutes"],
            production=turn["production"],
        )
        turns.append(
            {"turn": turn["number"], "labels": turn["labels"], "promoted": turn["promoted"], **_aps(candidate)}
        )
    write_gain_curve(args.curve, turns, commit)
    emit("demo", minutes=round(minutes, 1), log=report["log_file"])
    street, studio = production["street"]["oks_ap"], production["studio"]["oks_ap"]
    emit("goal", name="street_ap_after_turns", value=round(street, 4), need=">= 0.6", passed=street >= 0.6)
    drop = first["studio"]["oks_ap"] - studio
    emit("goal", name="studio_drop_vs_first_model", value=round(drop, 4), need="<= 0.02", passed=drop <= 0.02)
    slowest = max(t["minutes"] for t in report["turns"])
    emit("goal", name="slowest_turn_minutes", value=slowest, need="<= 15", passed=slowest <= 15)


def write_gain_curve(path: Path, turns: list[dict[str, Any]], commit: str) -> None:
    """Production's street OKS AP against the labels it was trained on: the first model, then every promotion."""
    points = [(int(t["labels"]), float(t["street_ap"])) for t in turns if t["promoted"] and t["street_ap"] is not None]
    source = f"benchmarks/flywheel_turns.py, {len(turns) - 1} turns from a fresh clone of {commit[:7]}"
    write_curve(path, points, source)
    emit("gain_curve", path=str(path), points=len(points))


def _aps(metrics: dict[str, dict[str, float]]) -> dict[str, float | None]:
    def ap(holdout: str) -> float | None:
        value = metrics.get(holdout, {}).get("oks_ap")
        return None if value is None else round(float(value), 4)

    return {"studio_ap": ap("studio"), "street_ap": ap("street"), "scenes_ap_no_boxes": ap("street_scenes")}


if __name__ == "__main__":
    main()
