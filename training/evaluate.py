"""Evaluate an exported artifact: ONNX Runtime + the core's crop and decoding, ground-truth boxes.

What serves is what is measured: the same `model.onnx`, `crop_box`/`crop_image`/`normalize` and
`decode_to_image` as the server, with the standard top-down protocol (one crop per labeled person,
from its ground-truth box), a person in a group read as the server reads a caller's boxes (crowded ones alone).

    posewheel evaluate --model models/production --data data/holdout/studio --data data/holdout/street --out metrics/
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posewheel import atomic
from posewheel import dataset as coco
from posewheel.artifact import MODEL_FILE, load_card
from posewheel.decoding import Box, crop_box, crop_image, decode_outputs, normalize, pose_score
from posewheel.detection import read_alone as alone_in_crowds
from posewheel.imagestore import read_rgb
from posewheel.schema import KEYPOINT_NAMES
from training import metrics

METRIC_KEYS = ("oks_ap", "ap50", "ap75", "pck@0.05", "pck@0.1", "mean_px_error", "count")


@dataclass
class Predictions:
    """Predictions for the labeled persons of one dataset, in image pixels."""

    dataset: coco.Dataset
    annotation_ids: list[int]
    keypoints: np.ndarray  # (N, 17, 2)
    joint_scores: np.ndarray  # (N, 17)
    truth: np.ndarray  # (N, 17, 3)
    boxes: np.ndarray  # (N, 4)
    alone: np.ndarray  # (N,) bool: read blanked outside its box (a crowded person, `read_alone`)


def predict(artifact: Path, dataset: Path, batch_size: int = 64, read_alone: bool = True) -> Predictions:
    """Run the artifact's ONNX model over every labeled person of `dataset`, cropped from its GT box.

    As the server reads the boxes a caller sends (`serving.engine.ServedModel.read_boxes`): where `read_alone`, a
    person whose crop holds more than a tenth of another labeled person's box is read blanked outside their own
    (`posewheel.detection.read_alone`); a picture of one person is read as cropped either way.
    """
    import onnxruntime as ort

    card = load_card(artifact)
    spec = card.input_spec()
    session = ort.InferenceSession(str(Path(artifact) / MODEL_FILE), providers=["CPUExecutionProvider"])
    names = card.output.names
    ds = coco.load(dataset)
    images = {img.id: img for img in ds.images}
    by_image: dict[int, list[coco.PersonAnnotation]] = {}
    for ann in ds.annotations:
        if ann.num_keypoints > 0 and not ann.iscrowd:
            by_image.setdefault(ann.image_id, []).append(ann)
    anns = [a for people in by_image.values() for a in people]  # the order of the rows below
    points, scores, alone = [], [], []
    pending: list[np.ndarray] = []  # crops of whole images, run when they make a batch
    pending_windows: list[Box] = []

    def run_pending() -> None:
        outputs = session.run(names, {card.input.input_name: np.concatenate(pending)})
        p, s = decode_outputs(dict(zip(names, outputs, strict=True)), pending_windows, spec, card.output.kind)
        points.append(p)
        scores.append(s)
        pending.clear()
        pending_windows.clear()

    for image_id, people in by_image.items():
        windows = [crop_box(a.bbox, spec) for a in people]
        record = images[image_id]
        image = read_rgb(ds.image_path(record), (record.width, record.height))
        crops = normalize(np.stack([crop_image(image, w, spec) for w in windows]), spec)
        blanked = np.zeros(len(people), dtype=bool)
        if read_alone:
            crops, blanked = alone_in_crowds(crops, np.array([a.bbox for a in people], dtype=np.float64), windows, spec)
        alone.append(blanked)
        pending.append(crops)
        pending_windows.extend(windows)
        if len(pending_windows) >= batch_size:
            run_pending()
    if pending:
        run_pending()
    k = len(KEYPOINT_NAMES)
    return Predictions(
        dataset=ds,
        annotation_ids=[a.id for a in anns],
        keypoints=np.concatenate(points) if points else np.zeros((0, k, 2)),
        joint_scores=np.concatenate(scores) if scores else np.zeros((0, k)),
        truth=np.stack([a.keypoints for a in anns]) if anns else np.zeros((0, k, 3)),
        boxes=np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4),
        alone=np.concatenate(alone) if alone else np.zeros(0, dtype=bool),
    )


def score(pred: Predictions) -> dict[str, float]:
    """The metric dict (keys METRIC_KEYS) of a set of predictions."""
    scores = pose_score(pred.joint_scores)
    ap = metrics.oks_ap(pred.dataset, pred.annotation_ids, pred.keypoints, pred.joint_scores, scores)
    return {
        **ap,
        "pck@0.05": metrics.pck(pred.keypoints, pred.truth, pred.boxes, 0.05),
        "pck@0.1": metrics.pck(pred.keypoints, pred.truth, pred.boxes, 0.1),
        "mean_px_error": metrics.mean_px_error(pred.keypoints, pred.truth),
        "count": float(len(pred.annotation_ids)),
    }


def evaluate_artifact(artifact: Path, dataset: Path, batch_size: int = 64) -> dict[str, float]:
    """OKS AP, AP50, AP75, PCK@0.05, PCK@0.1, mean pixel error and person count of `artifact` on `dataset`."""
    return score(predict(Path(artifact), Path(dataset), batch_size))


def write_evaluation(
    artifact: Path, datasets: list[Path], out: Path, batch_size: int = 64
) -> dict[str, dict[str, float]]:
    """Write `<out>/<dataset>.json` (flat DVC metrics) and `<out>/plots/<dataset>_{pck,joint_error}.csv`.

    Returns the metrics per dataset folder name.
    """
    names = [Path(d).name for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"datasets {[str(d) for d in datasets]} share a folder name; their metric files would collide")
    results: dict[str, dict[str, float]] = {}
    load_card(artifact)  # fail early, naming the file, on a folder that is not an artifact
    for path, name in zip(datasets, names, strict=True):
        pred = predict(Path(artifact), Path(path), batch_size)
        values = score(pred)
        results[name] = values
        atomic.write_json(Path(out) / f"{name}.json", {k: round(v, 6) for k, v in values.items()})
        plots = Path(out) / "plots"
        curve = metrics.pck_curve(pred.keypoints, pred.truth, pred.boxes)
        _write_csv(plots / f"{name}_pck.csv", ["threshold", "pck"], zip(metrics.PCK_THRESHOLDS, curve, strict=True))
        joints = metrics.per_joint_error(pred.keypoints, pred.truth)
        joint_rows = zip(KEYPOINT_NAMES, joints, strict=True)
        _write_csv(plots / f"{name}_joint_error.csv", ["joint", "mean_px_error"], joint_rows)
    return results


def _write_csv(path: Path, header: list[str], rows: Iterable[tuple[object, ...]]) -> None:
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    atomic.write_text(path, "\n".join(lines) + "\n")
