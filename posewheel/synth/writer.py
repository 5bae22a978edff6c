"""Write a synthetic COCO keypoint dataset (atomically) and its ground truth (apart, by image hash).

from posewheel.synth import generate
dataset = generate("street", count=300, seed=1, out="data/holdout/street", truth_dir="var/truth")
crowds = generate("street", count=300, seed=4, out="data/street_groups", persons=(0, 4))  # 0-4 per image

Without `persons` every image holds one person (`scene.render_sample`); with it, `group.render_group`
draws lo..hi persons per image, empty images included (an image record with no annotation).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posewheel import dataset as coco
from posewheel.imagestore import content_hash
from posewheel.synth.group import Person, check_persons, render_group
from posewheel.synth.scene import DOMAINS, render_sample
from posewheel.truth import TruthStore

JPEG_QUALITY = 92
GENERATOR_VERSION = 1  # bump when the rendering changes, so a cached dataset is known stale


@dataclass
class Encoded:
    """One generated image as file bytes with its annotated persons (far to near)."""

    index: int
    data: bytes
    persons: list[Person]

    def _only(self) -> Person:
        if len(self.persons) != 1:
            raise ValueError(f"image {self.index} holds {len(self.persons)} persons, not one")
        return self.persons[0]

    @property
    def keypoints(self) -> np.ndarray:
        """(17, 3) pixels, v in {0,1,2}, of the image's only person (one-person mode)."""
        return self._only().keypoints

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """[x, y, w, h] pixels of the image's only person (one-person mode)."""
        return self._only().bbox

    @property
    def facing(self) -> str:
        """'front' or 'back', of the image's only person (one-person mode)."""
        return self._only().facing


def file_name(domain: str, seed: int, index: int) -> str:
    """The image's file name inside `images/`: `<domain>_<seed>_<index:06d>.jpg`."""
    return f"{domain}_{seed}_{index:06d}.jpg"


def encode_sample(domain: str, seed: int, index: int, size: int, persons: tuple[int, int] | None = None) -> Encoded:
    """Render image `index` and encode it as JPEG (quality 92, deterministic bytes).

    persons: None for one person (today's stream), else (lo, hi) persons per image (group stream).
    """
    if persons is None:
        sample = render_sample(DOMAINS[domain], seed, index, size)
        image = sample.image
        people = [Person(sample.keypoints, sample.bbox, sample.facing, 1, sample.projected, sample.face_hidden)]
    else:
        group = render_group(DOMAINS[domain], seed, index, size, persons)
        image, people = group.image, group.persons
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return Encoded(index, buffer.getvalue(), people)


def _encode_chunk(args: tuple[str, int, int, int, int, tuple[int, int] | None]) -> list[Encoded]:
    domain, seed, start, stop, size, persons = args
    return [encode_sample(domain, seed, i, size, persons) for i in range(start, stop)]


def iter_encoded(
    domain: str, count: int, seed: int, size: int, workers: int = 1, persons: tuple[int, int] | None = None
) -> Iterator[Encoded]:
    """Encoded images 0..count-1 in order; the same whatever `workers` is (each image has its own seed)."""
    if workers <= 1:
        for i in range(count):
            yield encode_sample(domain, seed, i, size, persons)
        return
    chunk = 64
    jobs = [(domain, seed, s, min(s + chunk, count), size, persons) for s in range(0, count, chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for batch in pool.map(_encode_chunk, jobs):
            yield from batch


def generate(
    domain: str,
    count: int,
    seed: int,
    out: str | os.PathLike[str],
    size: int = 256,
    truth_dir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    persons: tuple[int, int] | None = None,
) -> coco.Dataset:
    """Generate `count` images of `domain` into dataset folder `out` (replaced atomically).

    Image i is a pure function of (domain, seed, i, size, persons): same arguments, identical
    bytes. persons: None for one person per image; (lo, hi) for lo..hi persons per image (e.g.
    `group.DEFAULT_PERSONS`, 0-4), annotation ids then count persons in image order. When
    `truth_dir` is given, each image's persons (possibly none) are also stored there under the
    SHA-256 of its file bytes. `progress(n)` is called after every image with the number done.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)}")
    if count < 1 or size < 32 or seed < 0:
        raise ValueError(f"need count >= 1, size >= 32 and seed >= 0 (got {count}, {size}, {seed})")
    persons = None if persons is None else check_persons(persons)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    truth = TruthStore(truth_dir) if truth_dir is not None else None
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.images-"))
    try:
        images: list[coco.ImageRecord] = []
        annotations: list[coco.PersonAnnotation] = []
        sources: dict[int, Path] = {}
        for done, item in enumerate(iter_encoded(domain, count, seed, size, workers, persons), start=1):
            image_id = item.index + 1
            name = file_name(domain, seed, item.index)
            (scratch / name).write_bytes(item.data)
            sources[image_id] = scratch / name
            images.append(coco.ImageRecord(image_id, name, size, size))
            for person in item.persons:  # one person: annotation id = image id, as ever
                annotations.append(
                    coco.PersonAnnotation(
                        id=len(annotations) + 1,
                        image_id=image_id,
                        keypoints=person.keypoints,
                        bbox=person.bbox,
                        extra={"facing": person.facing},
                    )
                )
            if truth is not None:
                shown = [{"keypoints": p.keypoints, "bbox": p.bbox} for p in item.persons]
                truth.put(content_hash(item.data), shown, durable=False)  # regenerable: skip fsyncs
            if progress is not None:
                progress(done)
        info = {
            "description": f"posewheel synthetic {domain} set",
            "generator": f"posewheel.synth v{GENERATOR_VERSION}",
            "domain": domain,
            "seed": seed,
            "count": count,
            "size": size,
        }
        if persons is not None:
            info["persons"] = list(persons)
        dataset = coco.Dataset(images=images, annotations=annotations, info=info)
        return coco.save(dataset, target, image_sources=sources)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
