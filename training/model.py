"""The pose network, whole: a torchvision backbone built from scratch and an upsampling heatmap head.

    image (N, 3, H, W) ─► backbone stages at strides 4, 8, 16, 32
                      ─► HeatmapHead: lateral 1x1 convs, top-down x2 upsampling + separable
                         3x3 convs (a light FPN), back to stride 4
                      ─► canonical heatmaps (N, 17, H/4, W/4), one Gaussian per joint
      stride-32 features ─► global average pool ─► linear ─► facing logit (N,): > 0 is "front"
      canonical heatmaps + facing ─► heatmaps (N, 17, H/4, W/4) in COCO's person-left/right order

Left and right are split into two questions. Which of two arms is the person's left depends on one
global fact, whether they face the camera; a heatmap head learns that binding slowly (short runs
collapse both channels onto one limb). So the head answers the local question, in *canonical*
order: slot "left" is the limb a front-facing person's left would be, relative to the torso (see
`training.targets.facing`); a pooled classifier answers the global one; the forward pass swaps the
pairs of back-facing persons. The exported model's output is plain COCO-order heatmaps.

No weights are downloaded: the backbone starts random unless a local state dict is given. The
Lightning side (loss, optimiser, validation) lives in training/lightning_module.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from posewheel.schema import FLIP_INDEX, NUM_KEYPOINTS

BN_MOMENTUM = 0.1  # PyTorch's default, for every BatchNorm of the network


@dataclass(frozen=True)
class NetConfig:
    backbone: str = "mobilenet_v3_large"  # mobilenet_v3_large | mobilenet_v2 | resnet18/34/50
    head_channels: int = 64
    num_keypoints: int = NUM_KEYPOINTS
    backbone_checkpoint: str | None = None  # local torchvision state dict, optional


def backbone_stages(name: str) -> nn.ModuleList:
    """Split a torchvision classifier into four stages ending at strides 4, 8, 16 and 32."""
    if name.startswith("mobilenet"):
        features = getattr(torchvision.models, name)(weights=None).features
        # indices where the stride doubles next (torchvision's layouts of these two models)
        cuts = {"mobilenet_v3_large": (4, 7, 13), "mobilenet_v2": (4, 7, 14)}[name]
        bounds = (0, *cuts, len(features))
        return nn.ModuleList(features[a:b] for a, b in itertools.pairwise(bounds))
    if name.startswith("resnet"):
        net = getattr(torchvision.models, name)(weights=None)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        return nn.ModuleList([stem, net.layer2, net.layer3, net.layer4])
    raise ValueError(f"train.backbone {name!r} is not supported; use mobilenet_v3_large, mobilenet_v2 or resnetNN")


def separable(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class HeatmapHead(nn.Module):
    """Top-down path from stride 32 to stride 4 with lateral skips; 1x1 conv to K heatmaps."""

    def __init__(self, in_channels: list[int], channels: int, num_keypoints: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(separable(channels, channels) for _ in in_channels)
        self.out = nn.Conv2d(channels, num_keypoints, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.smooth[-1](self.lateral[-1](features[-1]))
        for i in range(len(features) - 2, -1, -1):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest") + self.lateral[i](features[i])
            x = self.smooth[i](x)
        return self.out(x)


def to_person_order(canonical: torch.Tensor, facing: torch.Tensor, flip_index: torch.Tensor) -> torch.Tensor:
    """Canonical (N, K, ...) -> person-left/right order: back-facing rows (facing <= 0) swap their pairs."""
    front = (facing > 0).reshape(-1, *([1] * (canonical.dim() - 1)))
    return torch.where(front, canonical, canonical.index_select(1, flip_index))


class PoseNet(nn.Module):
    """Image (N, 3, H, W) normalised float32 -> heatmaps (N, K, H/4, W/4); H, W multiples of 32."""

    flip_index: torch.Tensor

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.stages = backbone_stages(config.backbone)
        if config.backbone_checkpoint:
            self.load_backbone(Path(config.backbone_checkpoint))
        with torch.no_grad():
            channels = [f.shape[1] for f in self.features(torch.zeros(1, 3, 64, 64))]
        self.head = HeatmapHead(channels, config.head_channels, config.num_keypoints)
        self.facing = nn.Linear(channels[-1], 1)
        self.register_buffer("flip_index", torch.tensor(FLIP_INDEX[: config.num_keypoints]), persistent=False)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                # torchvision's MobileNetV3 uses momentum 0.01: its running statistics trail the
                # weights by ~100 steps, so per-epoch validation (eval mode) lags far behind training.
                m.momentum = BN_MOMENTUM

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward_parts(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical heatmaps (N, K, H/4, W/4) and the facing logit (N,); what training fits."""
        features = self.features(image)
        return self.head(features), self.facing(features[-1].mean(dim=(2, 3)))[:, 0]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        canonical, facing = self.forward_parts(image)
        return to_person_order(canonical, facing, self.flip_index)

    def load_backbone(self, path: Path) -> None:
        """Load a torchvision classifier state dict (e.g. ImageNet weights copied to disk) into the stages."""
        if not path.is_file():
            raise FileNotFoundError(f"train.backbone_checkpoint {path}: file not found")
        reference = getattr(torchvision.models, self.config.backbone)(weights=None)
        reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        if self.config.backbone.startswith("mobilenet"):
            # the stages are slices of `features`: flattened, their indices are the same
            flat = nn.Sequential(*[m for stage in self.stages for m in stage.children()])
            flat.load_state_dict(reference.features.state_dict())
        else:
            for mine, theirs in zip(
                self.stages,
                [
                    nn.Sequential(reference.conv1, reference.bn1, reference.relu, reference.maxpool, reference.layer1),
                    reference.layer2,
                    reference.layer3,
                    reference.layer4,
                ],
                strict=True,
            ):
                mine.load_state_dict(theirs.state_dict())
