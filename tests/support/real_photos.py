"""The real-photo check set (tests/fixtures/real_photos/README.md): how many people each photograph shows,
and the photographs at the person detector's input size, mirror images included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "real_photos"

# People in each photograph (the README's table); mirror images show as many. The composites two_people,
# two_halves and four_people are made from the one-person photographs (256 px only).
PEOPLE = {
    "astronaut": 1,
    "cameraman": 1,
    "grace_hopper": 1,
    "ascent": 2,
    "nobody_cat": 0,
    "nobody_coffee": 0,
    "nobody_rocket": 0,
    "two_people": 2,
    "two_halves": 2,
    "four_people": 4,
}


def persons_in_photo(name: str) -> int:
    """How many people the check-set photograph `name` (e.g. "ascent_mirrored") shows."""
    return PEOPLE[name.removesuffix("_mirrored")]


def detector_photos() -> Iterator[tuple[str, Image.Image]]:
    """(name, RGB image) of every photograph at 512 px (`NAME_512.png`, mirrored too), then the 256-px composites."""
    for path in sorted(PHOTOS.glob("*_512.png")):
        name = path.name.removesuffix("_512.png")
        with Image.open(path) as raw:
            image = raw.convert("RGB")
        yield name, image
        if not name.startswith("nobody"):
            yield name + "_mirrored", ImageOps.mirror(image)
    for name in ("two_people", "two_halves", "four_people"):
        with Image.open(PHOTOS / f"{name}_256.png") as raw:
            yield name, raw.convert("RGB")


def count_persons(artifact: Path, threshold: float | None = None, threads: int = 1) -> list[dict[str, object]]:
    """The persons the artifact's detector finds on each check-set photograph (detector_photos), as served:
    one row per photograph (photo, found, expected, ok, scores), at the card's person-score threshold
    unless `threshold`."""
    import numpy as np
    import onnxruntime as ort

    from posewheel.artifact import load_card
    from posewheel.detection import detect_persons

    detector = load_card(artifact).detector
    assert detector is not None, f"{artifact} carries no person detector"
    threshold = detector.score_threshold if threshold is None else threshold
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(Path(artifact) / detector.file), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(detector.names, session.run(detector.names, {detector.input_name: batch}), strict=True))

    rows: list[dict[str, object]] = []
    for name, image in detector_photos():
        boxes, scores = detect_persons(
            image, detector.input_spec(), run, threshold, detector.max_persons, detector.kind
        )
        expected = persons_in_photo(name)
        rows.append({"photo": name, "found": len(boxes), "expected": expected, "ok": len(boxes) == expected,
                     "scores": [round(float(s), 3) for s in scores]})  # fmt: skip
    return rows
