"""Export a trained network as a model artifact: `model.onnx`, `card.json`, `weights.pt`, and a person
detector beside it (`detector.onnx`, its weights `detector.pt`).

`model.onnx` takes input 'image' (N, 3, H, W) float32 normalised and returns 'heatmaps'
(N, 17, H/4, W/4), with a dynamic batch dimension; a MoveNet also returns 'centers', 'regress' and
'offsets' (the card's `output.kind` says how to decode them). The server needs nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posewheel import atomic
from posewheel.artifact import (
    MODEL_FILE,
    DetectorCard,
    InputCard,
    ModelCard,
    OutputCard,
    PretrainedSource,
    check_version,
    load_card,
    save_card,
)
from posewheel.dataset import ANNOTATIONS_FILE
from posewheel.decoding import OUTPUT_NAMES, InputSpec

WEIGHTS_FILE = "weights.pt"
OPSET = 18


DECODINGS = {
    "heatmaps": "argmax + quarter-pixel offset (posewheel.decoding.decode_heatmaps)",
    "movenet": "centre nearest the input's middle, joint peaks weighted by the regression, plus offsets "
    "(posewheel.decoding.decode_movenet)",
}


class NamedOutputs(nn.Module):
    """A network whose forward returns a dict of maps, as a tuple in the order of `names` (for ONNX)."""

    def __init__(self, net: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.net, self.names = net, names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        return tuple(out[name] for name in self.names) if isinstance(out, dict) else (out,)


def export_detector_onnx(net: nn.Module, names: tuple[str, ...], path: Path, input_size: int) -> None:
    """Write a detector as ONNX: 'image' (N, 3, H, W) -> `names`, (N, C, H/4, W/4) each.

    Batch, height and width are dynamic (height and width multiples of 32); the decoding stays
    outside the graph (posewheel.multipose, posewheel.centernet).
    """
    example = torch.zeros(2, 3, input_size, input_size)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which takes seconds more per export
        warnings.simplefilter("ignore")
        torch.onnx.export(
            NamedOutputs(net.eval().float().cpu(), names),
            (example,),
            str(path),
            input_names=["image"],
            output_names=list(names),
            dynamic_axes={"image": axes, **{n: axes for n in names}},
            opset_version=OPSET,
            dynamo=False,
        )


def export_onnx(net: nn.Module, spec: InputSpec, path: Path, kind: str = "heatmaps") -> None:
    """Write `net` as ONNX with a dynamic batch: 'image' (N, 3, H, W) -> OUTPUT_NAMES[kind], (N, C, H/4, W/4) each."""
    names = OUTPUT_NAMES[kind]
    net = NamedOutputs(net.eval().float().cpu().to(memory_format=torch.contiguous_format), names)
    example = torch.zeros(2, 3, spec.height, spec.width)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which takes ~6 s more per export
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["image"],
            output_names=list(names),
            dynamic_axes={"image": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            opset_version=OPSET,
            dynamo=False,
        )


def dataset_hash(folder: Path) -> str:
    """A content hash of a dataset: DVC's md5 from a `<folder>.dvc` file if there is one, else md5 of annotations."""
    dvc_file = folder.with_name(folder.name + ".dvc")
    if dvc_file.is_file():
        for line in dvc_file.read_text(encoding="utf-8").splitlines():
            key, _, value = line.strip().lstrip("- ").partition(":")
            if key == "md5":
                return f"dvc:{value.strip()}"
    digest = hashlib.md5((folder / ANNOTATIONS_FILE).read_bytes(), usedforsecurity=False).hexdigest()
    return f"md5:{digest}"


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD's commit hash (with '-dirty' when tracked files changed), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def write_artifact(
    folder: Path,
    net: nn.Module,
    spec: InputSpec,
    version: str,
    data: dict[str, str],
    params: dict[str, Any],
    parent_version: str | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
    kind: str = "heatmaps",
    pretrained: dict[str, str] | None = None,
    detector: tuple[Path, DetectorCard] | None = None,
) -> Path:
    """Write the artifact folder `folder` (named `version`) atomically; returns `folder`.

    `kind` is the output decoding (posewheel.decoding.OUTPUT_NAMES); `pretrained` the provenance of
    the weights its lineage started from (posewheel.pretrained.source(...).model_dump()), kept on the card.
    `detector`: an ONNX person detector to put beside the pose network, and its card section.
    """
    check_version(version)
    card = ModelCard(
        version=version,
        input=InputCard(
            width=spec.width,
            height=spec.height,
            mean=spec.mean,
            std=spec.std,
            padding=spec.padding,
            whole_image_padding=spec.whole_image_padding,
        ),
        output=OutputCard(kind=kind, names=list(OUTPUT_NAMES[kind]), stride=spec.stride, decoding=DECODINGS[kind]),
        pretrained=PretrainedSource(**pretrained) if pretrained else None,
        detector=detector[1] if detector else None,
        data=data,
        git_commit=git_commit(),
        parent_version=parent_version,
        params=params,
        metrics=metrics or {},
    )
    with atomic.staged_dir(folder) as stage:
        export_onnx(net, spec, stage / MODEL_FILE, kind)
        if detector is not None:
            copy_detector(detector, stage)
        torch.save(net.state_dict(), stage / WEIGHTS_FILE)
        save_card(stage, card)
    return folder


def load_weights(artifact: Path) -> dict[str, torch.Tensor]:
    """The state dict in `artifact/weights.pt`, for warm starts; FileNotFoundError names the path."""
    path = Path(artifact) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (warm start needs an artifact trained by `posewheel train`)")
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def detector_weights_file(card: DetectorCard) -> str:
    """Its state dict beside the detector's ONNX graph (`detector.onnx` -> `detector.pt`), for the next fine-tune."""
    return str(Path(card.file).with_suffix(".pt"))


def export_detector(
    net: nn.Module, folder: Path, card: DetectorCard, weights: bool = True
) -> tuple[Path, DetectorCard]:
    """Write the detector `net` of kind `card.kind` as `folder/<card.file>` (ONNX), with `weights` its state
    dict beside it; returns what write_artifact(detector=...) takes. (Pretrained weights need no copy: cached.)"""
    from training.detectors import detector_network

    path = Path(folder) / card.file
    detector_network(card.kind).export_onnx(net, path, card.input_size)
    if weights:
        torch.save(net.state_dict(), Path(folder) / detector_weights_file(card))
    return path, card


def copy_detector(detector: tuple[Path, DetectorCard], folder: Path) -> None:
    """Copy a detector's ONNX graph, and its weights when it has them, into the artifact folder `folder`."""
    path, card = detector
    shutil.copyfile(path, Path(folder) / card.file)
    weights = path.with_name(detector_weights_file(card))
    if weights.is_file():
        shutil.copyfile(weights, Path(folder) / detector_weights_file(card))


def pretrained_detector(folder: Path, kind: str) -> tuple[Path, DetectorCard]:
    """Export the pretrained detector `kind` (training/detectors.py) to `folder/detector.onnx`, with its card."""
    from training.detectors import detector_network

    network = detector_network(kind)
    return export_detector(network.load_pretrained(), Path(folder), network.pretrained_card(), weights=False)


def inherited_detector(parent: Path) -> tuple[Path, DetectorCard] | None:
    """The detector of the artifact `parent` (a warm start keeps its parent's), or None when it has none."""
    card = load_card(parent)
    return (Path(parent) / card.detector.file, card.detector) if card.detector else None
