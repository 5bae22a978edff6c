"""Write a synthetic COCO keypoint dataset (atomically) and its ground truth (apart, by image hash).

from posewheel.synth import generate
dataset = generate("street", count=300, seed=1, out="data/holdout_street", truth_dir="var/truth")
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
from posewheel.synth.scene import DOMAINS, render_sample
from posewheel.truth import TruthStore

JPEG_QUALITY = 92
GENERATOR_VERSION = 1  # bump when the rendering changes, so a cached dataset is known stale


@dataclass
class Encoded:
    """One generated image as file bytes with its label."""

    index: int
    data: bytes
    keypoints: np.ndarray  # (17, 3) pixels, v in {0,1,2}
    bbox: tuple[float, float, float, float]
    facing: str


def file_name(domain: str, seed: int, index: int) -> str:
    """The image's file name inside `images/`: `<domain>_<seed>_<index:06d>.jpg`."""
    return f"{domain}_{seed}_{index:06d}.jpg"


def encode_sample(domain: str, seed: int, index: int, size: int) -> Encoded:
    """Render image `index` and encode it as JPEG (quality 92, deterministic bytes)."""
    sample = render_sample(DOMAINS[domain], seed, index, size)
    buffer = io.BytesIO()
    sample.image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return Encoded(index, buffer.getvalue(), sample.keypoints, sample.bbox, sample.facing)


def _encode_chunk(args: tuple[str, int, int, int, int]) -> list[Encoded]:
    domain, seed, start, stop, size = args
    return [encode_sample(domain, seed, i, size) for i in range(start, stop)]


def iter_encoded(domain: str, count: int, seed: int, size: int, workers: int = 1) -> Iterator[Encoded]:
    """Encoded images 0..count-1 in order; the same whatever `workers` is (each image has its own seed)."""
    if workers <= 1:
        for i in range(count):
            yield encode_sample(domain, seed, i, size)
        return
    chunk = 64
    jobs = [(domain, seed, s, min(s + chunk, count), size) for s in range(0, count, chunk)]
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
) -> coco.Dataset:
    """Generate `count` images of `domain` into dataset folder `out` (replaced atomically).

    Image i is a pure function of (domain, seed, i, size): same arguments, identical bytes. When
    `truth_dir` is given, each image's persons are also stored there under the SHA-256 of its file
    bytes. `progress(n)` is called after every image with the number done.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)}")
    if count < 1 or size < 32 or seed < 0:
        raise ValueError(f"need count >= 1, size >= 32 and seed >= 0 (got {count}, {size}, {seed})")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    truth = TruthStore(truth_dir) if truth_dir is not None else None
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.images-"))
    try:
        images: list[coco.ImageRecord] = []
        annotations: list[coco.PersonAnnotation] = []
        sources: dict[int, Path] = {}
        for done, item in enumerate(iter_encoded(domain, count, seed, size, workers), start=1):
            image_id = item.index + 1
            name = file_name(domain, seed, item.index)
            (scratch / name).write_bytes(item.data)
            sources[image_id] = scratch / name
            images.append(coco.ImageRecord(image_id, name, size, size))
            annotations.append(coco.PersonAnnotation(
                id=image_id, image_id=image_id, keypoints=item.keypoints, bbox=item.bbox,
                extra={"facing": item.facing},
            ))  # fmt: skip
            if truth is not None:
                persons = [{"keypoints": item.keypoints, "bbox": item.bbox}]
                truth.put(content_hash(item.data), persons, durable=False)  # regenerable: skip fsyncs
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
        dataset = coco.Dataset(images=images, annotations=annotations, info=info)
        return coco.save(dataset, target, image_sources=sources)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
