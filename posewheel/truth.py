"""Ground truth of synthetic images, kept apart from every dataset and keyed by image content.

The simulated annotator looks up what a traffic image really shows by the SHA-256 of the image
file's bytes (the exact bytes a client uploads), so nothing downstream can read the truth by
accident through a dataset or a file name. One JSON file per image: `root/<sha[:2]>/<sha>.json`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from posewheel import atomic
from posewheel.schema import NUM_KEYPOINTS

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def _round(value: float) -> float:
    return round(float(value), 2)


class TruthStore:
    """Per-image truth: a list of persons, each `{"keypoints": (17, 3) list, "bbox": [x, y, w, h]}`.

    keypoints are continuous pixels with v in {0, 1, 2}; bbox is in pixels. One image holds any
    number of persons (scenes of several persons, far to near); an empty list is a synthetic image
    with nobody in it, which `get` tells apart from an unknown image (None).
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """Where the truth of the image with this hash lives; rejects anything but a hex digest."""
        if not _SHA_RE.match(sha256):
            raise ValueError(f"truth key is not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / f"{sha256}.json"

    def put(self, sha256: str, persons: list[dict[str, Any]], durable: bool = True) -> None:
        """Store the persons of one image (atomically; a second put replaces the first).

        `durable=False` skips the fsyncs (5-7 ms each here): for bulk writes of truth that can be
        regenerated, where a crash may lose the last records but never leaves a half-written one.
        """
        clean: list[dict[str, Any]] = []
        for n, person in enumerate(persons):
            kps = np.asarray(person["keypoints"], dtype=np.float64)
            if kps.shape != (NUM_KEYPOINTS, 3):
                raise ValueError(f"truth {sha256[:12]} person {n}: keypoints shape {kps.shape}, expected (17, 3)")
            bbox = [_round(v) for v in person["bbox"]]
            if len(bbox) != 4:
                raise ValueError(f"truth {sha256[:12]} person {n}: bbox must be [x, y, w, h], got {bbox}")
            clean.append({"keypoints": [[_round(x), _round(y), int(v)] for x, y, v in kps], "bbox": bbox})
        text = json.dumps({"persons": clean}, separators=(",", ":")) + "\n"
        path = self.path_for(sha256)
        if durable:
            atomic.write_text(path, text)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    def get(self, sha256: str) -> list[dict[str, Any]] | None:
        """The persons stored for this image ([] if nobody is in it), or None when it is not synthetic."""
        if not _SHA_RE.match(sha256):
            return None  # nothing is ever stored under anything but a digest; never touch such a path
        path = self.path_for(sha256)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            persons: list[dict[str, Any]] = json.loads(text)["persons"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a truth record ({exc})") from exc
        return persons

    def __contains__(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()
