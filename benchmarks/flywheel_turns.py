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

`--set train.finetune_interpolation=0.75` (repeatable) measures a setting over real turns before it
becomes a default: the clone's params.yaml gets the value, and the shipped curve is left alone unless
`--curve` names a file. Each turn's line also carries the candidate's real-photo agreement with the
original MoveNet (training/realphotos.py), as the pipeline's evaluate stage scored it, whole, on its photographs
of one person and on its people pasted smaller (read whole, and as served: the detector's crop of each), so a
run shows what the turns cost in real people.
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from flywheel.gain import SHIPPED as SHIPPED_CURVE
from flywheel.gain import write_curve
from flywheel.pipeline import (
    AGREEMENT,
    ONE_PERSON_AGREEMENT,
    REAL_PHOTOS,
    SMALL_PEOPLE_AGREEMENT,
    SMALL_PEOPLE_SERVED_AGREEMENT,
)
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
    parser.add_argument("--curve", type=Path, help="where to write the measured gain curve (default: the shipped one)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a params.yaml value for this run only (YAML value); the shipped curve is then left alone",
    )
    parser.add_argument("--from-results", type=Path, help="only rewrite the curve from this run's JSON lines")
    args = parser.parse_args()
    overrides = [parse_override(text) for text in args.overrides]
    if args.from_results:
        lines = args.from_results.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        setup = next(r for r in rows if r["figure"] == "setup")
        path = curve_path(args.curve, at_default=not any("." in key for key in setup))  # settings: "section.key"
        if path is None:
            sys.exit(f"{args.from_results} ran at a setting that is not the default: name the curve to write (--curve)")
        write_gain_curve(path, [r for r in rows if r["figure"] == "turn"], setup["commit"])
        return
    curve = curve_path(args.curve, at_default=not overrides)

    work = (args.work or Path(tempfile.mkdtemp(prefix="flywheel-turns-"))).resolve()
    clone = work / "posewheel"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for venv in VENVS:
        (clone / venv).symlink_to(ROOT / venv)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True)
    commit = head.stdout.strip()
    set_params(clone / "params.yaml", overrides)
    settings = {f"{section}.{key}": value for section, key, value in overrides}
    emit("setup", commit=commit, loops=args.loops, labels=args.labels, traffic=args.traffic, work=str(work), **settings)

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
    emit(
        "turn",
        turn=0,
        **_aps(first),
        real_agreement=real_agreement(first),
        small_people_agreement=real_agreement(first, SMALL_PEOPLE_AGREEMENT),
        small_people_served_agreement=real_agreement(first, SMALL_PEOPLE_SERVED_AGREEMENT),
        one_person_agreement=real_agreement(first, ONE_PERSON_AGREEMENT),
        labels=0,
        promoted=True,
        version=report["before_version"],
    )
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
            real_agreement=real_agreement(candidate),
            small_people_agreement=real_agreement(candidate, SMALL_PEOPLE_AGREEMENT),
            small_people_served_agreement=real_agreement(candidate, SMALL_PEOPLE_SERVED_AGREEMENT),
            one_person_agreement=real_agreement(candidate, ONE_PERSON_AGREEMENT),
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
    if curve is not None:
        write_gain_curve(curve, turns, commit)
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


def curve_path(named: Path | None, *, at_default: bool) -> Path | None:
    """Where a run's gain curve goes: the named file, else the shipped curve for a run at the defaults only."""
    return named or (SHIPPED_CURVE if at_default else None)


def parse_override(text: str) -> tuple[str, str, Any]:
    """`section.key=value` (value read as YAML) -> (section, key, value); exits with a sentence when malformed."""
    name, sep, value = text.partition("=")
    section, dot, key = name.partition(".")
    if not (sep and dot and section and key):
        sys.exit(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. train.finetune_interpolation=0.75")
    return section, key, yaml.safe_load(value)


def set_params(path: Path, overrides: list[tuple[str, str, Any]]) -> None:
    """Write `overrides` into the params.yaml at `path` (a clone's: never the checkout's)."""
    if not overrides:
        return
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, key, value in overrides:
        params.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def real_agreement(metrics: dict[str, dict[str, float]], key: str = AGREEMENT) -> float | None:
    """A model's agreement with the original MoveNet on the real-photo check set (`key`: or on its small people),
    as the evaluate stage scored it (metrics/candidate/real_photos.json); None for a report from before it did."""
    value = metrics.get(REAL_PHOTOS, {}).get(key)
    return None if value is None else round(float(value), 3)


def _aps(metrics: dict[str, dict[str, float]]) -> dict[str, float | None]:
    def ap(holdout: str) -> float | None:
        value = metrics.get(holdout, {}).get("oks_ap")
        return None if value is None else round(float(value), 4)

    return {"studio_ap": ap("studio"), "street_ap": ap("street"), "scenes_ap_no_boxes": ap("street_scenes")}


if __name__ == "__main__":
    main()
