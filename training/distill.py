"""Distillation on real photographs: a fine-tune keeps answering real people as the pretrained MoveNet does.

    crops = RealCrops(pretrained.real_frames(), spec, seed=0)
    images = crops.batch(8)                                  # (8, 3, S, S) float32, normalised
    loss = distill_loss(student.forward_logits(images), teacher(images))

Fine-tuning on drawn figures moves the network away from what it knew about real people (agreement
with the original MoveNet on the real-photo check set falls from 1.00 to about 0.55 in 12 minutes;
an L2 pull on the weights only reached 0.83 at a large cost in synthetic AP). Here every training
step also shows the network a few random crops of unlabeled real photographs
(posewheel.pretrained.real_frames: six group photographs, none of them in the check set) and asks its
four heads to answer as the frozen pretrained network does on the same crops. Drawn figures teach
the street and studio domains; the crops hold the real one in place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from posewheel.decoding import InputSpec, normalize
from posewheel.imagestore import read_rgb
from posewheel.schema import NUM_KEYPOINTS

FRAME_SIDE = 768  # longest side the photographs are kept at in memory (crops are resized to the input)
# (student's logits, teacher's answers) -> a scalar loss
DistillLoss = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]
POSE_CROPS = (0.3, 0.9)  # side of a square crop, as a share of the photograph's short side: one or two people
SCENE_CROPS = (0.6, 1.0)  # the detector's: most of the group


class RealCrops:
    """Random square crops of real photographs at the network's input size, flipped half the time."""

    def __init__(self, frames: list[Path], spec: InputSpec, seed: int = 0, side: tuple[float, float] = POSE_CROPS):
        if not frames:
            raise ValueError("distillation needs at least one real photograph")
        self.frames = [_load(path) for path in frames]
        self.spec = spec
        self.side = side
        self.rng = np.random.default_rng(seed)

    def crops(self, count: int) -> np.ndarray:
        """(count, H, W, 3) uint8 crops, H x W the input size."""
        out = np.empty((count, self.spec.height, self.spec.width, 3), np.uint8)
        for i in range(count):
            frame = self.frames[int(self.rng.integers(len(self.frames)))]
            short = min(frame.size)
            side = int(short * self.rng.uniform(*self.side))
            x = int(self.rng.integers(frame.width - side + 1))
            y = int(self.rng.integers(frame.height - side + 1))
            size = (self.spec.width, self.spec.height)
            crop = frame.crop((x, y, x + side, y + side)).resize(size, Image.Resampling.BILINEAR)
            if self.rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out[i] = np.asarray(crop)
        return out

    def batch(self, count: int) -> torch.Tensor:
        """(count, 3, H, W) float32 network input, normalised as the served model's input."""
        return torch.from_numpy(normalize(self.crops(count), self.spec))


def _load(path: Path) -> Image.Image:
    image = read_rgb(path)
    image.thumbnail((FRAME_SIDE, FRAME_SIDE), Image.Resampling.BILINEAR)
    return image


def soft_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per cell, the KL divergence of the student's Bernoulli (logits) from the teacher's (probabilities):
    binary cross-entropy less the teacher's own entropy, so it is 0 where the two agree."""
    entropy = F.binary_cross_entropy(target, target, reduction="none")  # log clamped at -100: no NaN at 0 or 1
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") - entropy


def distill_loss(student_logits: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """How far the student's four MoveNet heads are from the teacher's on the same images (a scalar).

    student_logits: MoveNet.forward_logits (heatmaps and centres before their sigmoids); teacher:
    MoveNet.forward (after). Heatmaps and centres: `soft_kl` against the teacher's probabilities, so
    soft peaks count as such. Regression and offsets (cells): L1, weighted per cell
    by the teacher's centre probability (regression) or its joint's heatmap (offsets), because only
    there does decoding read them; elsewhere their values are free.
    """
    heat = soft_kl(student_logits["heatmaps"], teacher["heatmaps"]).mean()
    centre = soft_kl(student_logits["centers"], teacher["centers"]).mean()
    n, _, h, w = teacher["heatmaps"].shape
    at_centre = teacher["centers"]  # (N, 1, h, w)
    regress = (student_logits["regress"] - teacher["regress"]).abs().view(n, NUM_KEYPOINTS, 2, h, w).sum(2)
    regress_l1 = (regress * at_centre).sum() / (at_centre.sum() * NUM_KEYPOINTS).clamp(min=1e-6)
    at_joint = teacher["heatmaps"]  # (N, 17, h, w)
    offsets = (student_logits["offsets"] - teacher["offsets"]).abs().view(n, NUM_KEYPOINTS, 2, h, w).sum(2)
    offsets_l1 = (offsets * at_joint).sum() / at_joint.sum().clamp(min=1e-6)
    return heat + centre + 0.1 * regress_l1 + offsets_l1


def centernet_distill_loss(
    student_logits: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], stride: int
) -> torch.Tensor:
    """How far a CenterNet student's person map and box distances are from the teacher's (a scalar).

    student_logits: CenterNet.forward_logits; teacher: CenterNet.forward. The person map: `soft_kl`
    against the teacher's probabilities, summed and divided by the teacher's person mass (+1), so the
    few cells where people are weigh as much as the wide background, as in CenterNet's own focal
    loss. Box distances: L1 in cells, weighted by the teacher's person map.
    """
    person = teacher["person"]  # (N, 1, h, w)
    mass = person.sum().clamp(min=0.0) + 1.0
    heat = soft_kl(student_logits["person"], person).sum() / mass
    boxes = ((student_logits["wh"] - teacher["wh"]).abs().sum(1, keepdim=True) / stride * person).sum() / mass
    return heat + 0.1 * boxes
