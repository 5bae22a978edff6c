"""Model artifacts: a folder per version holding `model.onnx` and `card.json`.

`models/production` is a symlink to the promoted version; promotion is one atomic rename.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from posewheel import atomic, centernet, multipose
from posewheel.decoding import OUTPUT_NAMES, InputSpec
from posewheel.detection import OUTPUT_NAMES as DETECTOR_OUTPUT_NAMES
from posewheel.detection import DetectorKind, detector_spec
from posewheel.schema import COCO_SKELETON_1BASED, KEYPOINT_NAMES

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
PRODUCTION = "production"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Geometry a server can run: a card with a zero stride, a negative size or a NaN std would fail
# deep inside loading or decoding (ZeroDivisionError, numpy errors), or worse, serve garbage.
_MAX_INPUT_SIDE = 4096
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_PositiveFinite = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class InputCard(BaseModel):
    """How to turn a person crop into the network input."""

    width: int = Field(gt=0, le=_MAX_INPUT_SIDE, description="network input width, pixels")
    height: int = Field(gt=0, le=_MAX_INPUT_SIDE, description="network input height, pixels")
    channels: str = "RGB"
    layout: str = "NCHW"
    mean: tuple[_Finite, _Finite, _Finite]
    std: tuple[_PositiveFinite, _PositiveFinite, _PositiveFinite]
    scale: float = Field(
        1 / 255, gt=0.0, allow_inf_nan=False, description="pixel values are multiplied by this before mean/std"
    )
    padding: float = Field(
        gt=0.0, le=10.0, allow_inf_nan=False, description="the person box is grown by this factor to make the crop"
    )
    whole_image_padding: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="the crop of a request without boxes is the whole image grown by this factor; null: padding",
    )
    input_name: str = "image"


class OutputCard(BaseModel):
    """How to read the network output: which graph outputs, and which decoding of posewheel.decoding."""

    name: str = Field("heatmaps", description="the joint heatmaps output (N, 17, H/stride, W/stride)")
    kind: Literal["heatmaps", "movenet"] = Field(
        "heatmaps",
        description="heatmaps: argmax + quarter-pixel offset (decode_heatmaps); movenet: centre, regression, "
        "heatmap and offset outputs (decode_movenet)",
    )
    names: list[str] = Field(
        default_factory=lambda: ["heatmaps"], description="every graph output the decoding reads, in order"
    )
    stride: int = Field(4, ge=1, le=64, description="input pixels per heatmap cell")
    decoding: str = "argmax + quarter-pixel offset (posewheel.decoding.decode_heatmaps)"

    @model_validator(mode="after")
    def _outputs_fit_kind(self) -> OutputCard:
        wanted = OUTPUT_NAMES[self.kind]
        if self.name not in self.names or not set(wanted) <= set(self.names):
            raise ValueError(f"output kind {self.kind!r} reads outputs {list(wanted)}; the card names {self.names}")
        return self


class PretrainedSource(BaseModel):
    """Where a model's starting weights came from (a registry package, pinned and checked)."""

    model: str
    package: str
    version: str
    integrity: str
    file: str
    sha256: str
    licence: str


class DetectorCard(BaseModel):
    """A person detector beside the pose network: its file, its input and its decoding (posewheel/detection.py)."""

    file: str = Field("detector.onnx", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$", description="in the artifact")
    kind: DetectorKind = Field(
        "movenet-multipose",
        description="its network and decoding: posewheel.multipose or posewheel.centernet (decode_*)",
    )
    input_size: int = Field(256, ge=32, le=2048, multiple_of=32, description="square input; the image is fitted in")
    mean: tuple[_Finite, _Finite, _Finite] = (0.5, 0.5, 0.5)
    std: tuple[_PositiveFinite, _PositiveFinite, _PositiveFinite] = (0.5, 0.5, 0.5)
    input_name: str = "image"
    names: list[str] = Field(default_factory=list, description="graph outputs read; empty: the kind's own")
    score_threshold: float = Field(0.2, ge=0.0, le=1.0, description="default: persons scoring below are dropped")
    max_persons: int = Field(6, ge=1, le=centernet.MAX_PERSONS, description="default and upper bound per image")
    pretrained: PretrainedSource | None = None

    @model_validator(mode="after")
    def _fits_its_kind(self) -> DetectorCard:
        if not self.names:
            self.names = list(DETECTOR_OUTPUT_NAMES[self.kind])
        if sorted(self.names) != sorted(DETECTOR_OUTPUT_NAMES[self.kind]):
            raise ValueError(
                f"a {self.kind} detector reads the outputs {DETECTOR_OUTPUT_NAMES[self.kind]}, not {self.names}"
            )
        if self.kind == "movenet-multipose" and self.max_persons > multipose.CANDIDATES:
            raise ValueError(f"MoveNet MultiPose finds at most {multipose.CANDIDATES} persons, not {self.max_persons}")
        return self

    def input_spec(self, side: int | None = None) -> InputSpec:
        """The detector's input: the card's square, or one of `side` pixels (`posewheel.detection.PROBE_SIDE`)."""
        return detector_spec(self.input_size if side is None else side, self.mean, self.std)


class ModelCard(BaseModel):
    """Everything needed to serve and to trust a model version."""

    version: str
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    keypoint_names: list[str] = Field(default_factory=lambda: list(KEYPOINT_NAMES))
    skeleton: list[list[int]] = Field(default_factory=lambda: [list(e) for e in COCO_SKELETON_1BASED])
    input: InputCard
    output: OutputCard = Field(default_factory=OutputCard)
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict, description="per holdout set")
    data: dict[str, str] = Field(default_factory=dict, description="training sets and their DVC hashes")
    git_commit: str | None = None
    parent_version: str | None = Field(None, description="the model this one was warm-started from")
    pretrained: PretrainedSource | None = Field(None, description="the pretrained weights its lineage started from")
    detector: DetectorCard | None = Field(None, description="a person detector for requests without boxes")
    params: dict[str, Any] = Field(default_factory=dict)

    def input_spec(self) -> InputSpec:
        return InputSpec(
            width=self.input.width,
            height=self.input.height,
            mean=self.input.mean,
            std=self.input.std,
            stride=self.output.stride,
            padding=self.input.padding,
            whole_image_padding=self.input.whole_image_padding,
        )


class ArtifactError(ValueError):
    """An artifact folder is missing a file or holds an unreadable card."""


def check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise ArtifactError(f"model version {version!r} must match {_VERSION_RE.pattern}")
    return version


def load_card(folder: str | os.PathLike[str]) -> ModelCard:
    """Read and validate `folder/card.json`; raise ArtifactError with the path on any problem."""
    path = Path(folder) / CARD_FILE
    if not (Path(folder) / MODEL_FILE).is_file():
        raise ArtifactError(f"{Path(folder) / MODEL_FILE}: file not found")
    try:
        card = ModelCard.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: file not found") from exc
    except OSError as exc:  # a folder where the card should be, no permission
        raise ArtifactError(f"{path}: unreadable: {exc}") from exc
    except ValueError as exc:
        raise ArtifactError(f"{path}: invalid model card: {exc}") from exc
    if card.detector is not None and not (Path(folder) / card.detector.file).is_file():
        raise ArtifactError(f"{Path(folder) / card.detector.file}: the card's detector file is missing")
    if card.keypoint_names != list(KEYPOINT_NAMES):
        raise ArtifactError(f"{path}: field 'keypoint_names' is not the COCO-17 list")
    return card


def save_card(folder: str | os.PathLike[str], card: ModelCard) -> None:
    atomic.write_text(Path(folder) / CARD_FILE, card.model_dump_json(indent=2) + "\n")


def production_dir(models_dir: str | os.PathLike[str]) -> Path:
    return Path(models_dir) / PRODUCTION


def production_version(models_dir: str | os.PathLike[str]) -> str | None:
    """The promoted version's name, or None when nothing has been promoted."""
    link = production_dir(models_dir)
    if not link.exists():
        return None
    return load_card(link).version


def promote(models_dir: str | os.PathLike[str], version: str) -> Path:
    """Point `models/production` at `models/<version>` in one atomic rename."""
    check_version(version)
    folder = Path(models_dir) / version
    load_card(folder)  # refuse to promote something that is not an artifact
    atomic.point_symlink(production_dir(models_dir), version)
    return folder
