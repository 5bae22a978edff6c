"""Benchmark scripts (benchmarks/NAME.py) for tests, and what several scripts share.

curve = load_benchmark("flywheel_curve")                 # loaded as a module: call its functions
figures = run_benchmark("people_found", str(artifact))   # run as a script: its JSON lines
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from posewheel.tracks import PoseTracker
    from serving.engine import ServedModel

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(name: str) -> ModuleType:
    """Import benchmarks/<name>.py under the module name `name` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def run_benchmark(name: str, *args: str, timeout: float = 300) -> list[dict[str, Any]]:
    """Run benchmarks/<name>.py as a script with `args` (it must succeed); its figures, one dict per JSON line."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return [json.loads(line) for line in run.stdout.splitlines()]


def artifacts_or_pretrained(given: list[Path], folder: Path) -> list[tuple[str, Path]]:
    """A benchmark's artifacts by name: those `given`, else the pretrained Lightning and Thunder exported into
    `folder` (as `posewheel pretrained promote` makes them)."""
    if given:
        return [(str(a), a) for a in given]
    from training.pretrained import export_pretrained

    return [(f"pretrained {n}", export_pretrained(n, folder)) for n in ("movenet-lightning", "movenet-thunder")]


def detector_models(given: list[Path], folder: Path, benchmark: str) -> Iterator[tuple[str, ServedModel]]:
    """`artifacts_or_pretrained(given, folder)` loaded as the server loads them (2 threads), each with its person
    detector (AssertionError naming an artifact without one)."""
    from serving.engine import load_model

    for name, artifact in artifacts_or_pretrained(given, folder):
        model = load_model(artifact.resolve(), benchmark, 2)
        assert model.detector is not None, f"{artifact}: no person detector"
        yield name, model


def answered_without_boxes(model: ServedModel, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """What the server answers for `image` sent without boxes: keypoints (P, 17, 2), scores (P, 17)."""
    answer = model.answer([model.find_people(image)])[0]
    assert answer.kept is not None
    rows = answer.kept.tolist()
    return answer.points[rows], answer.scores[rows]


def answered_in_stream(
    model: ServedModel, image: Image.Image, tracker: PoseTracker, timestamp_s: float, carry: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the server answers for `image` sent without boxes as a stream's frame at `timestamp_s` with `tracker`'s
    tracks, and `tracker` moved on by the answer as the server moves them: keypoints (P, 17, 2), scores (P, 17),
    track ids (P,). `carry` False: the tracks give ids only, the people are the detector's (a baseline)."""
    import numpy as np

    prepared = model.find_people(image, carry=(tracker, timestamp_s) if carry else None)
    answer = model.answer([prepared])[0]
    assert answer.kept is not None and prepared.detected is not None
    rows = answer.kept.tolist()
    boxes = np.asarray(answer.boxes(prepared.detected.box_list, None)[0], dtype=np.float64).reshape(-1, 4)[rows]
    ids = tracker.update(answer.points[rows], answer.scores[rows], boxes, timestamp_s)
    return answer.points[rows], answer.scores[rows], ids


def photographs_and_scenes(
    doc: str,
    picture_help: str,
    photo_set: Callable[[Path], tuple[Path, Any]],
    photographs: Callable[..., None],
    scenes: Callable[..., None],
    picture: Callable[[Path, Path, Any, Path], None],
    timed: bool = False,
) -> None:
    """The command line of a benchmark on real photographs and scene sets: `photo_set(folder)` writes the
    photographs as a COCO dataset (and what the benchmark knows of them), then per artifact (`artifacts`, else
    the pretrained two) `photographs` and `scenes` for each `--data`; `--picture` draws the first artifact's. Where
    the benchmark is `timed`, `--repeats N` is passed to both as `timed_runs` (else each times with its own default)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="*", type=Path, help="model folders; default: the pretrained Lightning and Thunder"
    )
    parser.add_argument("--data", type=Path, action="append", default=[], help="a COCO dataset to score without boxes")
    parser.add_argument("--picture", type=Path, default=None, help=f"JPEG or PNG: {picture_help}")
    if timed:
        parser.add_argument("--repeats", type=int, default=None, help="timed runs per picture (the median is printed)")
    args = parser.parse_args()
    timing = {"timed_runs": args.repeats} if timed and args.repeats is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        artifacts = artifacts_or_pretrained(args.artifacts, folder / "models")
        data, known = photo_set(folder)
        for name, artifact in artifacts:
            photographs(name, artifact, data, known, **timing)
            for scene_set in args.data:
                scenes(name, artifact, scene_set, **timing)
        if args.picture:
            picture(artifacts[0][1], data, known, args.picture)
