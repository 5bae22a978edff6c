"""Flywheel learning curve: street OKS AP against the number of corrected street labels.

    .venv/bin/python benchmarks/flywheel_curve.py                       # 0/50/100/200/400 labels, 2 seeds
    .venv/bin/python benchmarks/flywheel_curve.py --base models/production --epochs 2   # quicker
    .venv/bin/python benchmarks/flywheel_curve.py --counts 100 300 --epochs 12 --jobs 2  # a loop's real budget
    .venv/bin/python benchmarks/flywheel_curve.py --replot a.jsonl b.jsonl --out DIR   # one curve from two runs

One studio-only model is the starting point (trained here for `--base-minutes`, or `--base ARTIFACT`).
It predicts a pool of street traffic; then, for each seed and each selection strategy, the first N
persons of the pool in that strategy's order get their true keypoints (what the simulated annotator
writes back through Label Studio; `tests/test_flywheel_loop.py` covers that path for real) and the
model is fine-tuned on the studio seed set plus those N, exactly as the `train` stage does
(warm start, feedback weight and fine-tune learning rate from params.yaml), with the same epoch budget for every point.
Strategies: `uncertainty` (least confident first, Label Studio's order until session 12),
`random` (a seeded shuffle) and `power` (stochastic uncertainty sampling: drawn without replacement
with probability proportional to 1 - confidence, Kirsch et al. 2023, "Stochastic Batch Acquisition";
it leans towards the unsure like `uncertainty` without spending the whole budget on its worst tail).
The baseline (N = 0) is the starting model itself. The loop's fine-tune makes 574-654 steps of 32 in
its 9 minutes (session 16): about 12 epochs of the seed set (1,425 persons after validation) plus
the labels. `--jobs 2` runs two fine-tunes at once, one thread each (the same steps, slower each).
`--replot` redraws the CSVs and the plot from the JSON lines of runs that share a base model.

Writes `<out>/flywheel_curve.csv` (every point), `<out>/flywheel_curve_<strategy>.csv` (mean over
seeds, the data `dvc plots show` draws) and `<out>/flywheel_curve.png`; one JSON line per point.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import training  # noqa: F401  (passive OpenMP waits, before torch loads)
from flywheel.experiment import base_model, generate_missing, pipeline_sets, street_pool, subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit as emit_figure

STRATEGIES = ("uncertainty", "random", "power")
emit = partial(emit_figure, benchmark="flywheel_curve")


def selection_order(strategy: str, confidence: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the pool in the order a strategy sends them to annotators."""
    if strategy == "uncertainty":
        return np.argsort(confidence, kind="stable")
    rng = np.random.default_rng(seed)
    if strategy == "power":  # Gumbel top-k: a draw without replacement, p proportional to 1 - confidence
        unsure = np.clip(1.0 - np.asarray(confidence, dtype=np.float64), 1e-6, None)
        return np.argsort(-(np.log(unsure) + rng.gumbel(size=len(unsure))), kind="stable")
    return rng.permutation(len(confidence))


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for strategy, colour in zip(STRATEGIES, ("tab:red", "tab:blue", "tab:green"), strict=True):
        mine = [r for r in rows if r["strategy"] in (strategy, "baseline")]
        if len(mine) < 2:
            continue
        counts = sorted({r["labels"] for r in mine})
        for seed in sorted({r["seed"] for r in mine if r["seed"] is not None}):
            series = [next(r for r in mine if r["labels"] == n and r["seed"] in (seed, None)) for n in counts]
            ax.plot(counts, [r["street_oks_ap"] for r in series], color=colour, alpha=0.3, linewidth=1)
        means = [np.mean([r["street_oks_ap"] for r in mine if r["labels"] == n]) for n in counts]
        ax.plot(counts, means, color=colour, marker="o", label=f"{strategy} (mean of seeds)")
    ax.set_xlabel("corrected street labels")
    ax.set_ylabel("street OKS AP")
    ax.set_title("Flywheel: street AP against labels")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)


def mean_street_ap(rows: list[dict[str, Any]], strategy: str, labels: int) -> float:
    """Street OKS AP of `strategy` at `labels` corrected labels, averaged over seeds."""
    return float(np.mean([r["street_oks_ap"] for r in rows if r["strategy"] == strategy and r["labels"] == labels]))


def torch_threads(threads: int | None) -> None:
    """A job's start: one intra-op thread when several fine-tunes share the cores."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def fine_tune(tune: Any, sources: list[tuple[Path, float]], work: Path, base: Path, name: str) -> tuple[Path, float]:
    """The train stage's warm-started fine-tune of `base` on `sources`; returns (artifact, minutes)."""
    from training.train import train

    start = time.monotonic()
    artifact = train(tune, sources, work / "models", warm_start=base, version=f"m-{name}", log_dir=work / "logs" / name)
    return artifact, round((time.monotonic() - start) / 60, 2)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    from posewheel import atomic

    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    atomic.write_text(path, "\n".join(lines) + "\n")


def recorded_points(paths: list[Path]) -> list[dict[str, Any]]:
    """The `point` lines of earlier runs' JSON output (one baseline kept: the runs must share it)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if row.get("figure") != "point":
                continue
            if row["strategy"] == "baseline":
                earlier = next((r for r in rows if r["strategy"] == "baseline"), None)
                if earlier is not None:
                    # the first model's path where both lines record it (they do since session 17), and its score
                    bases = {earlier.get("base"), row.get("base")} - {None}
                    if len(bases) > 1 or earlier["street_oks_ap"] != row["street_oks_ap"]:
                        raise SystemExit(f"{path}: its baseline differs from an earlier file's: not one curve")
                    continue
            rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], strategies: list[str], out: Path) -> None:
    """CSVs (every point; mean over seeds per strategy), the plot, and each strategy against random."""
    out.mkdir(parents=True, exist_ok=True)
    keys = ["labels", "strategy", "seed", "street_oks_ap", "studio_oks_ap", "street_pck@0.1"]
    write_csv(out / "flywheel_curve.csv", keys, [[r[k] if r[k] is not None else "" for k in keys] for r in rows])
    for strategy in strategies:
        mine = [r for r in rows if r["strategy"] in (strategy, "baseline")]
        counts = sorted({r["labels"] for r in mine})
        means = [
            [n, *(round(float(np.mean([r[k] for r in mine if r["labels"] == n])), 4) for k in keys[3:5])]
            for n in counts
        ]
        write_csv(out / f"flywheel_curve_{strategy}.csv", ["labels", "street_oks_ap", "studio_oks_ap"], means)
    plot(rows, out / "flywheel_curve.png")
    if "random" in strategies:
        for n in sorted({r["labels"] for r in rows if r["strategy"] == "random"}):
            random_ap = round(mean_street_ap(rows, "random", n), 4)
            for strategy in (s for s in strategies if s != "random"):
                ap = round(mean_street_ap(rows, strategy, n), 4)
                emit(
                    f"{strategy}_vs_random",
                    labels=n,
                    **{strategy: ap},
                    random=random_ap,
                    difference=round(ap - random_ap, 4),
                )
    emit("files", csv=str(out / "flywheel_curve.csv"), png=str(out / "flywheel_curve.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 50, 100, 200, 400])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs per point (same for all)")
    parser.add_argument("--pool", type=int, default=800, help="street traffic images per seed")
    parser.add_argument("--jobs", type=int, default=1, help="fine-tunes at once (one thread each when > 1)")
    parser.add_argument("--base", type=Path, default=None, help="start from this artifact instead of training one")
    parser.add_argument("--base-minutes", type=float, default=None, help="training budget of the base model")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("var/bench/flywheel_curve"), help="data and models")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="CSV and PNG go here")
    parser.add_argument(
        "--replot", type=Path, nargs="+", default=None, help="only redraw CSVs and plot from these runs' JSON lines"
    )
    args = parser.parse_args()
    if args.replot:
        report(recorded_points(args.replot), args.strategies, args.out)
        return

    from posewheel import dataset as coco
    from posewheel.decoding import pose_score
    from posewheel.params import load_params
    from training.config import TrainConfig
    from training.evaluate import evaluate_artifact, predict

    params = load_params(args.params)
    synth = params.get("synth", {})
    work = args.work
    pools = {f"pool_{s}": street_pool(synth, args.pool, index=100 * s) for s in args.seeds}
    generate_missing({**pipeline_sets(synth), **pools}, work, size=int(synth.get("image_size", 256)))

    base = base_model(args.base, args.base_minutes, params, work)

    def measure(artifact: Path) -> dict[str, float]:
        street = evaluate_artifact(artifact, work / "holdout_street")
        studio = evaluate_artifact(artifact, work / "holdout_studio")
        return {
            "street_oks_ap": round(street["oks_ap"], 4),
            "studio_oks_ap": round(studio["oks_ap"], 4),
            "street_pck@0.1": round(street["pck@0.1"], 4),
        }

    rows: list[dict[str, Any]] = [{"labels": 0, "strategy": "baseline", "seed": None, **measure(base)}]
    emit("point", **rows[0], base=str(base))
    # the train stage's fine-tune settings (finetune_lr, ...), on an epoch budget instead of minutes
    tune = dataclasses.replace(
        TrainConfig.from_params(params, fine_tune=True), wandb=False, epochs=args.epochs, max_minutes=120.0
    )
    if args.jobs > 1:
        tune = dataclasses.replace(tune, num_workers=1)
    weight = tune.feedback_weight
    points = []  # (strategy, seed, n, mean confidence of the chosen, training sources)
    for seed in args.seeds:
        pool = coco.load(work / f"pool_{seed}")
        seen = predict(base, work / f"pool_{seed}")
        confidence = pose_score(seen.joint_scores)
        for strategy in args.strategies:
            order = selection_order(strategy, confidence, seed)
            for n in sorted(c for c in args.counts if c > 0):
                chosen = [seen.annotation_ids[i] for i in order[:n]]
                feedback = subset(pool, chosen, work / "feedback" / f"{strategy}-{seed}-{n}")
                chosen_confidence = round(float(confidence[order[:n]].mean()), 4)
                points.append((strategy, seed, n, chosen_confidence, [(work / "seed", 1.0), (feedback, weight)]))

    context = multiprocessing.get_context("spawn")  # a fresh interpreter per job: torch's threads set before use
    initializer = partial(torch_threads, 1 if args.jobs > 1 else None)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context, initializer=initializer) as jobs:
        runs = {
            jobs.submit(fine_tune, tune, sources, work, base, f"{strategy}-{seed}-{n}"): (strategy, seed, n, chosen)
            for strategy, seed, n, chosen, sources in points
        }
        for done in as_completed(runs):
            strategy, seed, n, chosen = runs[done]
            artifact, minutes = done.result()
            row = {"labels": n, "strategy": strategy, "seed": seed, **measure(artifact)}
            row["mean_confidence_of_chosen"] = chosen
            rows.append(row)
            emit("point", **row, train_minutes=minutes)

    report(rows, args.strategies, args.out)


if __name__ == "__main__":
    main()
