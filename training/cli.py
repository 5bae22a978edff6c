"""Commands that training adds to the `posewheel` CLI: `train`, `train-detector` and `evaluate`.

    posewheel train --data data/seed --data data/feedback --warm-start auto   # what the DVC stage runs
    posewheel train-detector --model models/candidate --data data/seed --data data/feedback
    posewheel evaluate --model models/production --data data/holdout/studio --out metrics/

Heavy imports (torch, Lightning, ONNX Runtime) happen inside the commands so `posewheel --help`
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posewheel.artifact import ArtifactError, production_dir
from posewheel.cli import fail
from posewheel.dataset import DatasetError


def parse_data(specs: list[str], extra_weight: float) -> list[tuple[Path, float]]:
    """`DIR[:WEIGHT]` strings -> (folder, weight); the first defaults to 1, the rest to `extra_weight`."""
    out: list[tuple[Path, float]] = []
    for n, spec in enumerate(specs):
        folder, sep, weight = spec.rpartition(":")
        if not sep or not weight.replace(".", "", 1).isdigit():
            folder, weight = spec, ""
        value = float(weight) if weight else (1.0 if n == 0 else extra_weight)
        if value <= 0:
            raise ValueError(f"--data {spec!r}: the weight after ':' must be positive")
        if not Path(folder).is_dir():
            raise ValueError(f"--data {spec!r}: folder {folder} not found")
        out.append((Path(folder), value))
    return out


def resolve_warm_start(value: str | None, models_dir: Path) -> Path | None:
    """`auto` -> models/production when it exists (else None); a path must be an artifact folder."""
    if value is None:
        return None
    if value == "auto":
        link = production_dir(models_dir)
        return link.resolve() if link.exists() else None
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"--warm-start {value!r}: artifact folder not found")
    return path


def train_command(
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="dataset folder, optionally DIR:WEIGHT (sampling weight; "
            "first default 1, others train.feedback_weight); repeatable",
        ),
    ],
    params: Annotated[Path, typer.Option(help="params.yaml whose `train` section configures the run")] = Path(
        "params.yaml"
    ),
    models_dir: Annotated[Path, typer.Option(help="where the artifact folder models/<version> is written")] = Path(
        "models"
    ),
    warm_start: Annotated[
        str | None, typer.Option(help="artifact folder to fine-tune, or 'auto' for models/production if it exists")
    ] = None,
    version: Annotated[str | None, typer.Option(help="artifact version (default: m-YYYYmmdd-HHMMSS, UTC)")] = None,
) -> None:
    """Train a pose model on COCO keypoint datasets and export it; prints the artifact folder last."""
    from posewheel.params import load_params
    from training.config import TrainConfig
    from training.train import train

    try:
        values = load_params(params)
        first = TrainConfig.from_params(values)
        start = resolve_warm_start(warm_start, models_dir) if first.warm_start or warm_start != "auto" else None
        config = TrainConfig.from_params(values, fine_tune=start is not None)  # as the DVC `train` stage builds it
        sources = parse_data(data, config.feedback_weight)
        folder = train(config, sources, models_dir, warm_start=start, version=version)
    except (DatasetError, ArtifactError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(str(folder))


def train_detector_command(
    model: Annotated[Path, typer.Option(help="artifact folder whose person detector is fine-tuned")],
    data: Annotated[
        list[str],
        typer.Option("--data", help="dataset folder of whole images, optionally DIR:WEIGHT; repeatable"),
    ],
    params: Annotated[Path, typer.Option(help="params.yaml: its optional `detector` section")] = Path("params.yaml"),
    out: Annotated[
        Path | None, typer.Option(help="write a new artifact folder (its name is the version); default: in place")
    ] = None,
) -> None:
    """Fine-tune an artifact's person detector on every image of the datasets; prints the artifact folder last."""
    from posewheel.params import load_params
    from training.config import TrainConfig
    from training.detector_training import detector_kind, train_detector

    try:
        config = TrainConfig.for_detector(load_params(params) if params.is_file() else {}, kind=detector_kind(model))
        folder = train_detector(config, parse_data(data, config.feedback_weight), model, out=out)
    except (DatasetError, ArtifactError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc
    typer.echo(str(folder))


def evaluate_command(
    model: Annotated[Path, typer.Option(help="artifact folder (model.onnx + card.json)")],
    data: Annotated[list[Path], typer.Option("--data", help="dataset folder to evaluate on; repeatable")],
    out: Annotated[Path, typer.Option(help="metrics folder: <out>/<dataset>.json and <out>/plots/*.csv")] = Path(
        "metrics"
    ),
    params: Annotated[Path, typer.Option(help="params.yaml (its `evaluate` section)")] = Path("params.yaml"),
    persons: Annotated[
        bool,
        typer.Option(
            help="when the model has a person detector, also score it without boxes (OKS AP with its own boxes, "
            "box AP, missed and phantom persons) into <out>/<dataset>_without_boxes.json"
        ),
    ] = True,
) -> None:
    """Score an exported model with ONNX Runtime on ground-truth boxes (OKS AP, PCK, pixel error) and, with a
    detector, on the people it finds itself."""
    from posewheel import atomic, console
    from posewheel.artifact import load_card
    from posewheel.params import load_params, section
    from training.evaluate import write_evaluation
    from training.evaluate_persons import evaluate_without_boxes

    try:
        with console.stage(f"evaluate {model.name} on {', '.join(path.name for path in data)}") as step:
            batch = int(section(load_params(params), "evaluate").get("batch_size", 64)) if params.is_file() else 64
            step.status("ground-truth boxes")
            results = write_evaluation(model, data, out, batch_size=batch)
            if persons and load_card(model).detector is not None:
                for path in data:
                    step.status(f"{path.name}, the people its detector finds")
                    found = evaluate_without_boxes(model, path, batch, true_boxes=False)
                    rounded = {k: round(v, 6) for k, v in found.items()}
                    atomic.write_json(out / f"{path.name}_without_boxes.json", rounded)
                    results[f"{path.name} without boxes"] = found
    except (DatasetError, ArtifactError, ValueError) as exc:
        raise fail(str(exc)) from exc
    for name, values in results.items():
        typer.echo(f"{name}: " + " ".join(f"{k}={v:.4g}" for k, v in values.items()))


def register(app: typer.Typer) -> None:
    """Add training's commands to the CLI."""
    app.command("train")(train_command)
    app.command("train-detector")(train_detector_command)
    app.command("evaluate")(evaluate_command)
