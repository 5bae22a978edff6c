"""Real ONNX artifacts built with `onnx.helper` (no torch) for fast serving tests.

The "bright spot" model: every keypoint's heatmap is sigmoid(gain * brightness) of the crop,
pooled to the heatmap stride, times `scale`. So a white square on a black image is where all 17
keypoints land, and `scale` sets the confidence: real coordinates and scores through real ONNX
Runtime, with answers a test can predict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from posewheel.artifact import InputCard, ModelCard, promote, save_card
from posewheel.decoding import InputSpec

MakeArtifact = Callable[..., Path]


def spot_model(keypoints: int = 17, stride: int = 4, gain: float = 4.0, scale: float = 1.0) -> onnx.ModelProto:
    """ONNX graph: image (N, 3, H, W) float32 -> heatmaps (N, keypoints, H/stride, W/stride) float32."""
    weight = np.full((keypoints, 3, 1, 1), gain / 3.0, np.float32)
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[stride, stride], strides=[stride, stride]),
        helper.make_node("Conv", ["pooled", "weight"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["prob"]),
        helper.make_node("Mul", ["prob", "scale"], ["heatmaps"]),
    ]
    graph = helper.make_graph(
        nodes,
        "bright_spot",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", keypoints, "h", "w"])],
        initializer=[
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="posewheel-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_artifact(
    folder: Path,
    version: str,
    *,
    width: int = 96,
    height: int = 128,
    gain: float = 4.0,
    scale: float = 1.0,
    keypoints: int = 17,
    corrupt: bool = False,
) -> Path:
    """Write a bright-spot artifact (model.onnx + card.json) to `folder`; `corrupt` writes garbage ONNX.

    `keypoints` != 17 makes a graph that loads but fails the smoke test (wrong heatmap shape).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if corrupt:
        (folder / "model.onnx").write_bytes(b"this is not an ONNX graph\x00\x01")
    else:
        onnx.save(spot_model(keypoints=keypoints, gain=gain, scale=scale), str(folder / "model.onnx"))
    spec = InputSpec(width=width, height=height)
    card = ModelCard(
        version=version,
        input=InputCard(width=width, height=height, mean=spec.mean, std=spec.std, padding=spec.padding),
        metrics={"studio": {"oks_ap": 0.0}},
        params={"kind": "bright-spot test model"},
    )
    save_card(folder, card)
    return folder


@pytest.fixture
def make_artifact(tmp_path: Path) -> MakeArtifact:
    """Factory: `make_artifact(version, **write_artifact options)` -> tmp models/<version> folder."""

    def make(version: str, **options: object) -> Path:
        return write_artifact(tmp_path / "models" / version, version, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def production_model(make_artifact: MakeArtifact) -> Path:
    """A models folder with 'v1' (bright spot, confident) promoted; returns the `production` symlink."""
    folder = make_artifact("v1")
    promote(folder.parent, "v1")
    return folder.parent / "production"


def spot_image(width: int, height: int, centre: tuple[int, int], size: int = 20, fmt: str = "PNG") -> bytes:
    """Encoded black image with a white square of `size` px centred at `centre` (x, y) pixels."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (0, 0, 0))
    x, y = centre
    ImageDraw.Draw(image).rectangle((x - size // 2, y - size // 2, x + size // 2 - 1, y + size // 2 - 1), fill="white")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
