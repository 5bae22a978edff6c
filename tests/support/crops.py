"""Crops as served until session 53, for a benchmark's or a test's baseline: Pillow's `transform` alone."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from PIL import Image

from posewheel.decoding import Box, InputSpec

CROP_USERS = ("posewheel.decoding", "posewheel.detection", "serving.engine", "training.evaluate_persons")


def sampled_crops(image: Image.Image, windows: Sequence[Box], spec: InputSpec) -> np.ndarray:
    """The cut served until session 53, what replaces `crop_images` in the `sampled` way: each window out of an
    RGB image resized to the input size by Pillow's `transform` alone, (N, H, W, 3) uint8, parts outside black."""
    out = np.empty((len(windows), spec.height, spec.width, 3), dtype=np.uint8)
    for i, (x, y, w, h) in enumerate(windows):
        crop = image.transform(
            (spec.width, spec.height), Image.Transform.EXTENT, data=(x, y, x + w, y + h),
            resample=Image.Resampling.BILINEAR,
        )  # fmt: skip
        out[i] = np.asarray(crop, dtype=np.uint8)
    return out


@contextmanager
def crops(way: str) -> Iterator[None]:
    """Crops cut `way` ("served" or "sampled") while inside: for `sampled`, `sampled_crops` in place of `crop_images`
    wherever the served path imported it (and in `posewheel.decoding`, whose `crop_image` cuts through it)."""
    if way == "served":
        yield
        return
    modules = [importlib.import_module(name) for name in CROP_USERS]
    kept = [module.crop_images for module in modules]
    for module in modules:
        module.crop_images = sampled_crops
    try:
        yield
    finally:
        for module, crop in zip(modules, kept, strict=True):
            module.crop_images = crop
