"""Augmentation of person crops with torchvision transforms v2 and `tv_tensors.KeyPoints`.

The crop comes from the core's `crop_box`/`crop_image` (the serving geometry), cut with a margin so
that rotation and scaling pull real pixels, not black, into the corners. Then v2 moves image and
keypoints together: horizontal flip (plus our left/right swap, which v2 does not do), affine
(rotation, scale, translation), centre crop back to the input size, colour jitter, blur. Points
that leave the crop lose their weight (v2 does not flag them either).

torchvision's keypoint kernels use pixel-index coordinates (pixel centres at integers); the project
uses continuous ones (centres at +0.5), so points are shifted by 0.5 on the way in and out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from posewheel.decoding import Box, InputSpec, crop_box, crop_image, image_to_input
from posewheel.detection import box_in_crop
from posewheel.schema import FLIP_INDEX

MARGIN = 1.25  # the augmented crop is cut this much larger than the input, then centre-cropped


@dataclass(frozen=True)
class AugmentParams:
    """Strengths of each augmentation; zero (or scale (1, 1)) switches one off."""

    flip: float = 0.5  # probability
    rotation: float = 30.0  # degrees, +-
    scale: tuple[float, float] = (0.75, 1.25)
    translate: float = 0.08  # fraction of the crop size
    color_jitter: float = 0.3
    blur: float = 0.2  # probability


def _to_tv(points: np.ndarray, canvas: tuple[int, int]) -> tv_tensors.KeyPoints:
    return tv_tensors.KeyPoints(torch.as_tensor(points - 0.5, dtype=torch.float32), canvas_size=canvas)


def _from_tv(points: torch.Tensor) -> np.ndarray:
    return points.as_subclass(torch.Tensor).numpy().astype(np.float64) + 0.5


def hflip(image: tv_tensors.Image, points: tv_tensors.KeyPoints) -> tuple[tv_tensors.Image, tv_tensors.KeyPoints]:
    """Mirror image and points with v2, then swap left/right joints so each slot keeps its body part.

    points: (K, 2) KeyPoints in pixel-index coordinates; returns the same shapes.
    """
    flipped = F.horizontal_flip(points)
    swapped = tv_tensors.wrap(flipped[list(FLIP_INDEX)], like=flipped)
    return F.horizontal_flip(image), swapped


class CropAugmenter:
    """Cut an augmented person crop: (3, H, W) uint8 tensor and its keypoints in input pixels."""

    def __init__(self, spec: InputSpec, params: AugmentParams):
        self.spec = spec
        self.params = params
        self.big = dataclasses.replace(spec, width=round(spec.width * MARGIN), height=round(spec.height * MARGIN))
        self.affine = v2.RandomAffine(
            degrees=params.rotation, translate=(params.translate, params.translate), scale=params.scale
        )
        self.center = v2.CenterCrop((spec.height, spec.width))
        jitter = params.color_jitter
        self.photometric = v2.Compose(
            [
                v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),  # hue costs 1.5 ms a crop
                v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.3, 1.5))], p=params.blur),
            ]
        )

    def __call__(
        self, image: Image.Image, box: Box, keypoints: np.ndarray, alone: Box | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Crop around `box` with random flip/affine/colour; keypoints (K, 2) image px -> input px.

        `alone`: a person box (image px) outside which the crop is set to the input's mean colour before it is
        moved, as the server blanks a crowded person's crop (`posewheel.detection.outside_box_blanked`).

        Returns the crop (3, H, W) uint8, keypoints (K, 2) float64 in continuous input pixels
        (they may fall outside the crop; see `training.targets.inside_input`), and `order` (K,):
        output slot k holds input joint order[k] (the left/right swap of a flip), so per-joint
        labels such as visibility follow with `visibility[order]`.
        """
        order: np.ndarray = np.arange(len(keypoints))
        x, y, w, h = crop_box(box, self.spec)
        window = (x - w * (MARGIN - 1) / 2, y - h * (MARGIN - 1) / 2, w * MARGIN, h * MARGIN)
        pixels = crop_image(image, window, self.big).copy()
        if alone is not None:
            blank_outside(pixels, alone, window, self.big)
        crop = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))
        points = _to_tv(image_to_input(keypoints, window, self.big), (self.big.height, self.big.width))
        if torch.rand(()) < self.params.flip:
            crop, points = hflip(crop, points)
            order = order[list(FLIP_INDEX)]
        crop, points = self.affine(crop, points)
        crop, points = self.center(crop, points)
        crop = self.photometric(crop)
        return crop.as_subclass(torch.Tensor), _from_tv(points), order


def blank_outside(crop: np.ndarray, box: Box, window: Box, spec: InputSpec) -> None:
    """Set every pixel of `crop` (H, W, 3) uint8, cut from `window` at `spec`'s size, that lies outside `box`
    (image px) to the input's mean colour, in place: the pixels `outside_box_blanked` zeroes once normalised."""
    height, width = crop.shape[:2]
    rows, cols = box_in_crop(box, window, width, height)
    keep = np.zeros((height, width), dtype=bool)
    keep[rows, cols] = True
    crop[~keep] = np.round(255 * np.asarray(spec.mean)).astype(np.uint8)


def upper_part(box: Box, keep: float) -> Box:
    """The top `keep` share of a person's box, at most as wide as tall: the framing of a portrait or a webcam.

    Drawn figures always stand whole in their crop; real photographs cut most people off at the chest
    or the waist. Training on crops of the upper part teaches the network that a person need not
    fill the crop from head to feet (joints left outside lose their weight, `training.targets.inside_input`).
    """
    x, y, w, h = box
    side = min(w, h * keep)  # square, centred across the box: a wide pose is cut at the sides too
    return (x + (w - side) / 2, y, side, h * keep)


def plain_crop(image: Image.Image, box: Box, keypoints: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """The un-augmented crop the server would cut: (H, W, 3) uint8 and keypoints (K, 2) in input px."""
    window = crop_box(box, spec)
    return crop_image(image, window, spec), image_to_input(keypoints, window, spec)
