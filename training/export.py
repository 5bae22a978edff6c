"""Export a trained network as a model artifact: `model.onnx`, `card.json`, `weights.pt`.

`model.onnx` takes input 'image' (N, 3, H, W) float32 normalised and returns 'heatmaps'
(N, 17, H/4, W/4), with a dynamic batch dimension. The server needs nothing else.
"""

from __future__ import annotations

import hashlib
import subprocess
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posewheel import atomic
from posewheel.artifact import MODEL_FILE, InputCard, ModelCard, OutputCard, check_version, save_card
from posewheel.dataset import ANNOTATIONS_FILE
from posewheel.decoding import InputSpec

WEIGHTS_FILE = "weights.pt"
OPSET = 18


def export_onnx(net: nn.Module, spec: InputSpec, path: Path) -> None:
    """Write `net` as ONNX with a dynamic batch: 'image' (N, 3, H, W) -> 'heatmaps' (N, K, H/4, W/4)."""
    net = net.eval().float().cpu().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, spec.height, spec.width)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which takes ~6 s more per export
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), str(path), input_names=["image"], output_names=["heatmaps"],
            dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}}, opset_version=OPSET, dynamo=False,
        )  # fmt: skip


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
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)  # fmt: skip
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
) -> Path:
    """Write the artifact folder `folder` (named `version`) atomically; returns `folder`."""
    check_version(version)
    card = ModelCard(
        version=version,
        input=InputCard(width=spec.width, height=spec.height, mean=spec.mean, std=spec.std, padding=spec.padding),
        output=OutputCard(stride=spec.stride),
        data=data,
        git_commit=git_commit(),
        parent_version=parent_version,
        params=params,
        metrics=metrics or {},
    )
    with atomic.staged_dir(folder) as stage:
        export_onnx(net, spec, stage / MODEL_FILE)
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
