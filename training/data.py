"""Top-down training data: person crops with heatmap targets from one or more COCO keypoint datasets.

    dm = PoseDataModule(config, [(Path("data/seed"), 1.0), (Path("data/feedback"), 3.0)])

Sources are concatenated and sampled with replacement in proportion to their weight per person
(a person of a weight-3 source is drawn three times as often as one of a weight-1 source). The
validation split comes from the first source, by image, so no image is in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, WeightedRandomSampler

from posewheel import dataset as coco
from posewheel.decoding import Box, crop_box, normalize, whole_image_box
from training.augment import AugmentParams, CropAugmenter, plain_crop
from training.config import TrainConfig
from training.targets import facing, gaussian_heatmaps, inside_input, joint_weights, movenet_targets


@dataclass(frozen=True)
class Person:
    """One training example: where its image is and its labels (keypoints (17, 3) image px)."""

    image_path: Path
    width: int
    height: int
    box: Box
    keypoints: np.ndarray
    source: int  # index of the dataset it came from


def persons(ds: coco.Dataset, source: int, image_ids: set[int] | None = None) -> list[Person]:
    """The annotated persons of `ds` (those with at least one labeled joint), optionally of some images."""
    images = {img.id: img for img in ds.images}
    out = []
    for ann in ds.annotations:
        if ann.num_keypoints == 0 or ann.iscrowd or (image_ids is not None and ann.image_id not in image_ids):
            continue
        img = images[ann.image_id]
        out.append(Person(ds.image_path(img), img.width, img.height, ann.bbox, ann.keypoints, source))
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
        with Image.open(person.image_path) as raw:
            image = raw.convert("RGB")
        box = person.box
        if self.train and torch.rand(()) < self.config.whole_image_fraction:
            box = whole_image_box(person.width, person.height, self.spec)  # the server's "no boxes" request
        visibility = person.keypoints[:, 2]
        if self.train:
            tensor, points, order = self.augment(image, box, person.keypoints[:, :2])
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


class PoseDataModule(L.LightningDataModule):
    """Weighted concatenation of COCO keypoint datasets; validation held out from the first one."""

    def __init__(self, config: TrainConfig, sources: list[tuple[Path, float]]):
        super().__init__()
        if not sources:
            raise ValueError("training needs at least one dataset (--data DIR)")
        self.config = config
        self.sources = [(Path(p), float(w)) for p, w in sources]
        self.train_items: list[Person] = []
        self.val_items: list[Person] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_items:
            return
        for n, (path, weight) in enumerate(self.sources):
            if weight <= 0:
                raise ValueError(f"dataset {path}: weight must be positive, got {weight}")
            ds = coco.load(path)
            if n == 0:
                train_ids, val_ids = split_by_image(ds, self.config.val_fraction, self.config.seed, self.config.max_val)
                self.train_items += persons(ds, n, train_ids)
                self.val_items += persons(ds, n, val_ids)
            else:
                self.train_items += persons(ds, n)
        if not self.train_items:
            raise ValueError(f"datasets {[str(p) for p, _ in self.sources]} hold no labeled person to train on")

    def sample_weights(self) -> torch.Tensor:
        """Per-person sampling weight: its source's weight. (P,) float64."""
        weights = [self.sources[p.source][1] for p in self.train_items]
        return torch.tensor(weights, dtype=torch.float64)

    def _loader(self, items: list[Person], train: bool) -> DataLoader[dict[str, Any]]:
        workers = self.config.num_workers
        sampler = None
        if train:
            generator = torch.Generator().manual_seed(self.config.seed)
            sampler = WeightedRandomSampler(
                self.sample_weights().tolist(), len(items), replacement=True, generator=generator
            )
        return DataLoader(
            PersonCrops(items, self.config, train=train),
            batch_size=self.config.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=train and len(items) > self.config.batch_size,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader(self.train_items, train=True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader(self.val_items, train=False)
