"""Fine-tune an artifact's person detector (CenterNet or MoveNet MultiPose) on whole images, put it back in it.

The detector starts from the artifact's own fine-tuned weights (`detector.pt`, so each loop builds on
the last) or, for an artifact carrying a pretrained detector, from the cached pretrained
weights; it trains in Lightning (training.lightning_module.DetectorModel) on every image of the
datasets, people-free ones included, and is exported to ONNX where the pretrained one goes
(`detector.onnx` + the card's `detector` section); the card's `params.detector` records the run.

One CPU, after the pose network was trained (params.yaml's optional `detector` section; the train
section's hardware keys apply):
    posewheel train-detector --model models/candidate --data data/seed --data data/feedback
Into a new artifact version, leaving the old one as it is:
    posewheel train-detector --model models/production --data data/street_groups --out models/m-det-1
In Python (the flywheel's `train` stage, after `train(...)` built the candidate):
    from training.detector_training import train_detector
    config = TrainConfig.for_detector(params, kind=detector_kind(built))
    train_detector(config, sets, built)   # replaces built's detector in place
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
from torch import nn

from posewheel.artifact import DetectorCard, check_version, load_card, save_card
from posewheel.atomic import staged_dir
from posewheel.boxes import iou_matrix
from posewheel.detection import detector_input, persons_from_maps
from posewheel.imagestore import read_rgb
from posewheel.settings import ProjectSettings
from training import run_logging
from training.artifact_export import copy_detector, dataset_hash, detector_weights_file, export_detector
from training.config import CENTERNET, TrainConfig
from training.data import DetectorDataModule, Scene
from training.detectors import detector_network
from training.lightning_module import DetectorModel
from training.train import make_trainer

log = logging.getLogger(__name__)


def starting_detector(artifact: Path, kind: str = CENTERNET) -> tuple[nn.Module, DetectorCard, str]:
    """The detector `artifact` carries as a network, its card section, and where its weights came from.

    Fine-tuned weights (`detector.pt`) when the artifact has them, else the pretrained ones of its kind
    (an artifact made by `posewheel pretrained promote` or `posewheel train`); an artifact with
    no detector starts the pretrained detector `kind` with that kind's card section.
    """
    card = load_card(artifact)
    section = card.detector or detector_network(kind).pretrained_card()
    network = detector_network(section.kind)
    weights = Path(artifact) / detector_weights_file(section)
    if card.detector is not None and weights.is_file():
        net = network.build()
        net.load_state_dict(load_weights_file(weights))
        return net, section, f"{card.version}/{weights.name}"
    if section.pretrained is None:
        section = section.model_copy(update={"pretrained": network.pretrained_card().pretrained})
    return network.load_pretrained(), section, f"pretrained {section.kind}"


def detector_kind(artifact: Path) -> str:
    """The kind of detector `artifact` carries (what its fine-tune must configure); CenterNet when it has none."""
    section = load_card(artifact).detector
    return section.kind if section is not None else CENTERNET


def load_weights_file(path: Path) -> dict[str, Any]:
    """A state dict saved by export_detector, on the CPU."""
    import torch

    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def train_detector(
    config: TrainConfig,
    datasets: list[tuple[Path, float]],
    artifact: Path,
    out: Path | None = None,
    log_dir: Path | None = None,
    calibrate: bool = True,
) -> Path:
    """Fine-tune the detector of `artifact` on the weighted `datasets` and write it into `out` (default: in place).

    Stops after `config.epochs` or `config.max_minutes` of wall clock. The pose network, its weights
    and its card are kept; the card's detector section keeps its pretrained provenance and
    `params.detector` records the run (data and hashes, steps, minutes, starting weights, losses).
    `out` other than `artifact` is a new artifact version named after its folder. `log_dir`: the
    CSV log; default `metrics/train_detector` of the project. `calibrate`: re-choose the card's person-score
    threshold on the held-out images (calibrate_threshold). Returns the artifact folder written.
    """
    artifact = Path(artifact)
    target = Path(out) if out is not None else artifact
    version = check_version(target.name) if target.resolve() != artifact.resolve() else load_card(artifact).version
    net, section, started_from = starting_detector(artifact, config.network)
    if section.kind != config.network:
        raise ValueError(
            f"{artifact}: its detector is {section.kind!r}, the configuration fine-tunes {config.network!r} "
            f"(TrainConfig.for_detector(params, kind={section.kind!r}))"
        )
    L.seed_everything(config.seed, workers=True)
    datamodule = DetectorDataModule(config, datasets)
    datamodule.setup("fit")
    model = DetectorModel(config.to_dict())
    model.detector.load_state_dict(net.state_dict())
    data = {str(path): dataset_hash(Path(path)) for path, _ in datasets}
    project = ProjectSettings()
    csv_dir = Path(log_dir) if log_dir is not None else project.metrics_dir / "train_detector"
    run_name = f"{version}-detector"
    loggers = run_logging.make_loggers(run_name, csv_dir, config.wandb, {**config.to_dict(), "data": data})
    trainer = make_trainer(config, loggers, project.var_dir / "lightning", validate=bool(datamodule.val_items))
    start = time.monotonic()
    trainer.fit(model, datamodule=datamodule)
    minutes = (time.monotonic() - start) / 60.0
    validation: dict[str, float] = {}
    if datamodule.val_items:
        validation = {
            k: round(float(v), 6) for k, v in trainer.validate(model, datamodule=datamodule, verbose=False)[0].items()
        }
    record = {
        "started_from": started_from,
        "data": data,
        "data_weights": {str(p): w for p, w in datasets},
        "steps": int(trainer.global_step),
        "minutes": round(minutes, 2),
        "images": len(datamodule.train_items),
        "validation": validation,
        "config": config.to_dict(),
    }
    if trainer.is_global_zero:
        if calibrate and datamodule.val_items:
            floor = detector_network(section.kind).pretrained_card().score_threshold
            threshold, counts = calibrate_threshold(model.detector, datamodule.val_items, section, floor)
            record["threshold_calibration"] = {
                "score_threshold": threshold,
                "before": section.score_threshold,
                **counts,
            }
            section = section.model_copy(update={"score_threshold": threshold})
        replace_detector(artifact, model.detector, section, target, version, record)
        log.info("detector fine-tuned in %d steps (%.1f min); artifact at %s", trainer.global_step, minutes, target)
        wandb_run = run_logging.wandb_logger(loggers)
        if wandb_run is not None:
            wandb_run.experiment.finish()
    return target


THRESHOLDS = np.round(np.arange(0.05, 0.501, 0.025), 3)  # person-score thresholds calibration chooses from
MATCH_IOU = 0.5  # a found box overlapping a true one this much found that person


def calibrate_threshold(
    net: nn.Module, items: list[Scene], section: DetectorCard, floor: float = 0.0
) -> tuple[float, dict[str, float]]:
    """The person-score threshold (of THRESHOLDS, at least `floor`) chosen by choose_threshold on the persons
    the detector finds in `items`, and its counts.

    Fine-tuning moves the person scores away from the pretrained graph's, for which the card's threshold
    was chosen (0.2 MultiPose, 0.3 CenterNet); the threshold is re-chosen on held-out images, people-free
    ones included, so phantoms cost as much as misses. The held-out images are synthetic: what scores as a
    person on a real photograph they cannot show, so train_detector passes the pretrained card's
    threshold, chosen on real photographs, as `floor` (benchmarks/detector_finetune.py: the distilled
    CenterNet fine-tune calibrated to 0.175 counted 8 of 14 real photographs right, 14 of 14 at 0.3;
    docs/detector.md).
    """
    import torch

    spec = section.input_spec()
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per image: scores, boxes, true boxes
    net = net.eval()
    for scene in items:
        batch, window = detector_input(read_rgb(scene.image_path, (scene.width, scene.height)), spec)
        with torch.no_grad():
            maps = {k: v.numpy() for k, v in net(torch.from_numpy(batch)).items()}
        boxes, scores, _, _ = persons_from_maps(maps, window, spec, 0.0, section.max_persons, section.kind)
        found.append((scores, boxes, scene.boxes))
    return choose_threshold(found, floor)


def choose_threshold(
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], floor: float = 0.0
) -> tuple[float, dict[str, float]]:
    """The threshold of THRESHOLDS (at least `floor`) with the best F1 of found persons, and its counts.

    `found`: per image, the scores and boxes found (any score) and the true boxes. A found box matches a
    true one at IoU >= MATCH_IOU, greedily, best score first. From the lowest threshold up, a higher one
    is chosen only when its F1 beats the best so far by more than one person's worth (1 / true persons):
    the held-out split is small (25 images in the demo). Session 11's loop tied 0.3 and 0.325 there, took
    the higher, and found 84 of the 393 street-scene people where 0.3 finds 108.
    """
    true = sum(len(t) for _, _, t in found)
    margin = 1.0 / max(true, 1)
    best: tuple[float, float, dict[str, float]] | None = None
    for threshold in THRESHOLDS[floor - 1e-9 <= THRESHOLDS]:
        matched = kept = 0
        for scores, boxes, truth in found:
            order = np.argsort(-scores, kind="stable")
            keep = boxes[order][scores[order] >= threshold]
            kept += len(keep)
            free = np.ones(len(truth), dtype=bool)
            for row in iou_matrix(keep, truth) if len(truth) else []:  # best first: greedy, as pycocotools
                hits = np.flatnonzero(free & (row >= MATCH_IOU))
                if len(hits):
                    free[hits[np.argmax(row[hits])]] = False
                    matched += 1
        f1 = 2.0 * matched / max(kept + true, 1)
        if best is None or f1 > best[0] + margin:
            counts = {"f1": round(f1, 4), "found": kept, "matched": matched, "true": true, "images": len(found)}
            best = (f1, float(threshold), {k: float(v) for k, v in counts.items()})
    if best is None:
        raise ValueError(f"no person-score threshold of {THRESHOLDS.tolist()} is at least the floor {floor}")
    return best[1], best[2]


def replace_detector(
    artifact: Path, net: nn.Module, section: DetectorCard, out: Path, version: str, record: dict[str, Any]
) -> Path:
    """Write `out`: the files of `artifact` with `net` as its detector (ONNX + weights), atomically.

    The card keeps everything but its version (`version`), its detector section (`section`) and
    `params.detector` (`record`); `out` may be `artifact` itself.
    """
    card = load_card(artifact)
    with tempfile.TemporaryDirectory() as scratch, staged_dir(out) as stage:
        for path in Path(artifact).iterdir():
            if path.is_file() and path.name not in (section.file, detector_weights_file(section)):
                shutil.copyfile(path, stage / path.name)
        copy_detector(export_detector(net.eval(), Path(scratch), section), stage)
        params = {**card.params, "detector": record}
        save_card(stage, card.model_copy(update={"version": version, "detector": section, "params": params}))
    return out
