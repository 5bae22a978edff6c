"""Training data from one or more COCO keypoint datasets: person crops for the pose network, whole
images for the person detector.

    dm = PoseDataModule(config, [(Path("data/seed"), 1.0), (Path("data/feedback"), 3.0)])
    dm = DetectorDataModule(config, [(Path("data/seed"), 1.0), (Path("data/feedback"), 3.0)])

Sources are concatenated and sampled with replacement in proportion to their weight per example
(a person, or for the detector an image, of a weight-3 source is drawn three times as often as one
of a weight-1 source). The validation split comes from the first source, by image, so no image is in
both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from torchvision.transforms import v2

from posewheel import dataset as coco
from posewheel.decoding import Box, InputSpec, crop_box, crop_image, image_to_input, normalize, whole_image_box
from posewheel.detection import crowded, detector_spec
from posewheel.imagestore import read_rgb
from posewheel.schema import FLIP_INDEX
from training.augment import AugmentParams, CropAugmenter, plain_crop, upper_part
from training.config import CENTERNET, TrainConfig
from training.targets import (
    centernet_targets,
    facing,
    gaussian_heatmaps,
    inside_input,
    joint_weights,
    movenet_targets,
    multipose_targets,
)


@dataclass(frozen=True)
class Person:
    """One training example: where its image is and its labels (keypoints (17, 3) image px)."""

    image_path: Path
    width: int
    height: int
    box: Box
    keypoints: np.ndarray
    source: int  # index of the dataset it came from
    alone: bool = True  # the only person annotated in its image: the whole image can stand for its box
    crowded: bool = False  # another annotation's box lies more than a tenth inside its crop window


def persons(
    ds: coco.Dataset, source: int, image_ids: set[int] | None = None, spec: InputSpec | None = None
) -> list[Person]:
    """The annotated persons of `ds` (those with at least one labeled joint), optionally of some images.

    A person is `alone` when its image has no other annotation, labeled joints or not, crowd or not; `crowded`
    when, cut for `spec`'s input, their crop window holds more than a tenth of another annotation's box, as the
    server decides which persons to read alone (`posewheel.detection.crowded`; never without a `spec`).
    """
    images = {img.id: img for img in ds.images}
    by_image = ds.annotations_by_image()
    in_a_crowd: dict[int, bool] = {}  # annotation id -> crowded, decided once per image
    if spec is not None:
        for image_id, anns in by_image.items():
            if image_ids is not None and image_id not in image_ids:
                continue
            boxes = np.array([a.bbox for a in anns], dtype=np.float64).reshape(-1, 4)
            flags = crowded(boxes, [crop_box(a.bbox, spec) for a in anns])
            in_a_crowd.update((a.id, bool(f)) for a, f in zip(anns, flags, strict=True))
    out = []
    for ann in ds.annotations:
        if ann.num_keypoints == 0 or ann.iscrowd or (image_ids is not None and ann.image_id not in image_ids):
            continue
        img = images[ann.image_id]
        alone = len(by_image[ann.image_id]) == 1
        crowd = in_a_crowd.get(ann.id, False)
        out.append(Person(ds.image_path(img), img.width, img.height, ann.bbox, ann.keypoints, source, alone, crowd))
    return out


class PersonCrops(torch.utils.data.Dataset[dict[str, Any]]):
    """Crops (3, H, W) float32 normalised, heatmaps (17, h, w), weights (17,), facing, and geometry.

    Heatmaps and weights are in COCO's person order; `facing` (+1 front, -1 back, 0 unknown; see
    `training.targets.facing`) is what turns them into the network's canonical order.
    """

    def __init__(self, items: list[Person], config: TrainConfig, train: bool):
        self.items = items
        self.config = config
        self.spec = config.input_spec
        self.train = train
        self.augment = CropAugmenter(
            self.spec,
            AugmentParams(
                config.flip, config.rotation, config.scale, config.translate, config.color_jitter, config.blur
            ),
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        person = self.items[index]
        image = read_rgb(person.image_path, (person.width, person.height))
        box = person.box
        blank_outside = box if self.train and person.crowded and torch.rand(()) < self.config.alone_fraction else None
        if self.train and person.alone and torch.rand(()) < self.config.whole_image_fraction:
            # The server's "no boxes" request. Only for a person alone in the picture: in a group photo the
            # whole image does not say which person the target is, so the sample would teach one at random.
            box = whole_image_box(person.width, person.height, self.spec)
        elif self.train and torch.rand(()) < self.config.upper_fraction:
            lo, hi = self.config.upper_keep
            box = upper_part(box, lo + (hi - lo) * float(torch.rand(())))
        visibility = person.keypoints[:, 2]
        if self.train:
            tensor, points, order = self.augment(image, box, person.keypoints[:, :2], blank_outside)  # as served
            crop, visibility = tensor.permute(1, 2, 0).numpy(), visibility[order]  # a flip swaps sides
        else:
            crop, points = plain_crop(image, box, person.keypoints[:, :2], self.spec)
        weights = joint_weights(visibility, self.config.occluded_weight)
        weights *= inside_input(points, self.spec)
        heatmaps = gaussian_heatmaps(points, weights, self.spec, self.config.sigma)
        extra: dict[str, torch.Tensor] = {}
        if self.config.network.startswith("movenet"):  # its centre, regression and offset heads' targets
            extra = {
                k: torch.from_numpy(v)
                for k, v in movenet_targets(points, weights, self.spec, self.config.sigma).items()
            }
        return {
            **extra,
            "image": torch.from_numpy(normalize(crop[None], self.spec)[0]),
            "heatmaps": torch.from_numpy(heatmaps),
            "weights": torch.from_numpy(weights),
            "facing": torch.tensor(facing(points, visibility), dtype=torch.float32),
            "window": torch.tensor(crop_box(box, self.spec), dtype=torch.float64),
            "keypoints": torch.from_numpy(person.keypoints.astype(np.float64)),  # (17, 3) image px
            "box": torch.tensor(person.box, dtype=torch.float64),
            "index": index,
        }


def split_by_image(ds: coco.Dataset, fraction: float, seed: int, cap: int) -> tuple[set[int], set[int]]:
    """(train image ids, validation image ids): a seeded random `fraction` of images, at most `cap`."""
    ids = np.array(sorted(img.id for img in ds.images))
    rng = np.random.default_rng(seed)
    n_val = min(round(len(ids) * fraction), cap) if fraction > 0 else 0
    val = set(rng.choice(ids, size=n_val, replace=False).tolist()) if n_val else set()
    return set(ids.tolist()) - val, val


class _Sourced(Protocol):
    @property
    def source(self) -> int:
        """Index of the dataset it came from."""


Item = TypeVar("Item", bound=_Sourced)


class WeightedSources(L.LightningDataModule, Generic[Item]):
    """Weighted concatenation of COCO keypoint datasets; validation held out from the first one.

    What an example is (`read`: a person crop or a whole image) and how it is fed (`examples`) is
    the subclass's; sampling by source weight and the held-out split are shared.
    """

    holds = "example"  # what the error says the datasets lack

    def __init__(self, config: TrainConfig, sources: list[tuple[Path, float]]):
        super().__init__()
        if not sources:
            raise ValueError("training needs at least one dataset (--data DIR)")
        self.config = config
        self.sources = [(Path(p), float(w)) for p, w in sources]
        self.train_items: list[Item] = []
        self.val_items: list[Item] = []

    def read(self, ds: coco.Dataset, source: int, image_ids: set[int] | None = None) -> list[Item]:
        raise NotImplementedError

    def examples(self, items: list[Item], train: bool) -> torch.utils.data.Dataset[dict[str, Any]]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        for n, (path, weight) in enumerate(self.sources):
            if weight <= 0:
                raise ValueError(f"dataset {path}: weight must be positive, got {weight}")
            ds = coco.load(path)
            if n == 0:
                train_ids, val_ids = split_by_image(ds, self.config.val_fraction, self.config.seed, self.config.max_val)
                self.train_items += self.read(ds, n, train_ids)
                self.val_items += self.read(ds, n, val_ids)
            else:
                self.train_items += self.read(ds, n)
        if not self.train_items:
            raise ValueError(f"datasets {[str(p) for p, _ in self.sources]} hold no {self.holds} to train on")

    def sample_weights(self) -> torch.Tensor:
        """Per-example sampling weight: its source's weight. (N,) float64."""
        return torch.tensor([self.sources[i.source][1] for i in self.train_items], dtype=torch.float64)

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return make_loader(self.examples(self.train_items, train=True), self.config, self.sample_weights())

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return make_loader(self.examples(self.val_items, train=False), self.config)


class PoseDataModule(WeightedSources[Person]):
    """Person crops of weighted COCO keypoint datasets; validation held out from the first one."""

    holds = "labeled person"

    def read(self, ds: coco.Dataset, source: int, image_ids: set[int] | None = None) -> list[Person]:
        return persons(ds, source, image_ids, self.config.input_spec)

    def examples(self, items: list[Person], train: bool) -> torch.utils.data.Dataset[dict[str, Any]]:
        return PersonCrops(items, self.config, train=train)


def make_loader(
    data: torch.utils.data.Dataset[dict[str, Any]], config: TrainConfig, sample_weights: torch.Tensor | None = None
) -> DataLoader[dict[str, Any]]:
    """Batches of `data`: drawn with replacement by `sample_weights` (one per example) when given, else in order."""
    workers = config.num_workers
    train = sample_weights is not None
    sampler = None
    if sample_weights is not None:
        generator = torch.Generator().manual_seed(config.seed)
        sampler = WeightedRandomSampler(
            sample_weights.tolist(), len(sample_weights), replacement=True, generator=generator
        )
    return DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=train and len(data) > config.batch_size,  # type: ignore[arg-type]
    )


# ---- whole images for the person detector ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One whole image and every person in it: boxes (P, 4) x, y, w, h and keypoints (P, 17, 3), image pixels."""

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray
    keypoints: np.ndarray
    source: int


def scenes(ds: coco.Dataset, source: int, image_ids: set[int] | None = None) -> list[Scene]:
    """The images of `ds` (optionally some) with all their persons; an image without persons is a negative.

    Images with a crowd annotation are left out (people inside a crowd region are not labeled, so
    they would teach the detector that they are background); a person without a box gets the extent
    of its labeled joints.
    """
    by_image = ds.annotations_by_image()
    out = []
    for img in ds.images:
        anns = by_image.get(img.id, [])
        if (image_ids is not None and img.id not in image_ids) or any(a.iscrowd for a in anns):
            continue
        boxes, keypoints = [], []
        for ann in anns:
            box = np.asarray(ann.bbox, dtype=np.float64)
            labeled = ann.keypoints[:, 2] > 0
            if (box[2] <= 0 or box[3] <= 0) and labeled.any():
                lo, hi = ann.keypoints[labeled, :2].min(axis=0), ann.keypoints[labeled, :2].max(axis=0)
                box = np.r_[lo, hi - lo]
            if box[2] > 0 and box[3] > 0:
                boxes.append(box)
                keypoints.append(ann.keypoints.astype(np.float64))
        out.append(
            Scene(
                ds.image_path(img),
                img.width,
                img.height,
                np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3),
                source,
            )
        )
    return out


class SceneImages(torch.utils.data.Dataset[dict[str, Any]]):
    """Whole images (3, S, S) float32 normalised, fitted into the detector's square input as served
    (posewheel.detection.detector_input), with the targets of the configured detector
    (`training.targets.multipose_targets`, or `centernet_targets` for train.network centernet).

    Training augments the window, not the pixels' geometry: a zoom (`scale`, above 1 zooms in, below
    1 shows the image smaller with black around it), a shift (`translate`, a fraction of the window)
    and a horizontal flip that swaps each person's left and right joints; then colour jitter and blur.
    There is no rotation (an axis-aligned box would not stay the person's box). Joints leaving the
    input lose their weight; a person whose box, cut to the input, is under a cell wide or high is
    dropped.
    """

    def __init__(self, items: list[Scene], config: TrainConfig, train: bool):
        self.items = items
        self.config = config
        self.spec = detector_spec(config.input_width, config.mean, config.std)
        self.train = train
        jitter = config.color_jitter
        self.photometric = v2.Compose(
            [
                v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
                v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.3, 1.5))], p=config.blur),
            ]
        )

    def __len__(self) -> int:
        return len(self.items)

    def window(self, scene: Scene) -> Box:
        """The served window (the whole image fitted into the square), zoomed and shifted when training."""
        x, y, w, h = crop_box(whole_image_box(scene.width, scene.height, self.spec), self.spec)
        if not self.train:
            return (x, y, w, h)
        lo, hi = self.config.scale
        zoom = lo + (hi - lo) * float(torch.rand(()))
        shift = (torch.rand(2).numpy() * 2.0 - 1.0) * self.config.translate * w
        cx, cy = x + w / 2 + shift[0], y + h / 2 + shift[1]
        side = w / zoom
        return (cx - side / 2, cy - side / 2, side, side)

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene = self.items[index]
        image = read_rgb(scene.image_path, (scene.width, scene.height))
        window = self.window(scene)
        crop = crop_image(image, window, self.spec)
        size = float(self.spec.width)
        points = image_to_input(scene.keypoints[..., :2], window, self.spec)  # (P, 17, 2)
        corners = image_to_input(
            np.stack([scene.boxes[:, :2], scene.boxes[:, :2] + scene.boxes[:, 2:]], 1), window, self.spec
        )
        visibility = scene.keypoints[..., 2]
        if self.train and torch.rand(()) < self.config.flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
            points = points[:, list(FLIP_INDEX)] * [-1.0, 1.0] + [size, 0.0]  # slot k holds the person's own joint k
            visibility = visibility[:, list(FLIP_INDEX)]
            left, right = size - corners[:, 1, 0], size - corners[:, 0, 0]  # the right edge becomes the left
            corners = np.stack([np.stack([left, corners[:, 0, 1]], 1), np.stack([right, corners[:, 1, 1]], 1)], 1)
        corners = np.clip(corners, 0.0, size)
        boxes = np.concatenate([corners[:, 0], corners[:, 1] - corners[:, 0]], axis=1)
        kept = (boxes[:, 2] >= self.spec.stride) & (boxes[:, 3] >= self.spec.stride)
        weights = joint_weights(visibility, self.config.occluded_weight)
        weights *= np.stack([inside_input(p, self.spec) for p in points]) if len(points) else 1.0
        if self.train:
            tensor = self.photometric(torch.from_numpy(np.array(crop)).permute(2, 0, 1))
            crop = tensor.permute(1, 2, 0).numpy()
        if self.config.network == CENTERNET:
            targets = centernet_targets(boxes[kept], self.spec)
        else:
            targets = multipose_targets(points[kept], weights[kept], boxes[kept], self.spec, self.config.sigma)
        return {
            **{k: torch.from_numpy(v) for k, v in targets.items()},
            "image": torch.from_numpy(normalize(crop[None], self.spec)[0]),
            "index": index,
        }


class DetectorDataModule(WeightedSources[Scene]):
    """Whole images of weighted COCO keypoint datasets for the person detector; validation held out from the first."""

    holds = "image"

    def read(self, ds: coco.Dataset, source: int, image_ids: set[int] | None = None) -> list[Scene]:
        return scenes(ds, source, image_ids)

    def examples(self, items: list[Scene], train: bool) -> torch.utils.data.Dataset[dict[str, Any]]:
        return SceneImages(items, self.config, train=train)
