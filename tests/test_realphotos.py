"""The real-photo check: agreement with the original MoveNet, overall and per photograph, on the real network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from training.realphotos import agreement, errors_by_photo, people, reference, summarize

ROOT = Path(__file__).resolve().parents[1]


def test_the_pretrained_network_agrees_with_the_original_on_every_photo(pretrained_artifact: Path) -> None:
    errors = errors_by_photo(pretrained_artifact)
    assert sorted(errors) == sorted(people()) and len(errors) == 8
    for photo, err in errors.items():
        assert summarize(err)["agreement@0.05"] == 1.0, (photo, err.max())
        assert err.max() < 0.02, photo  # the port's rounding, not a person switch (0.5 of the side)
    overall = agreement(pretrained_artifact)
    assert overall == summarize(np.concatenate(list(errors.values())))
    assert overall["keypoints"] == 69


def test_summarize_counts_what_lies_within_five_percent() -> None:
    figures = summarize(np.array([0.01, 0.049, 0.05, 0.5]))
    assert figures == {"agreement@0.05": 0.5, "median_error": 0.0495, "keypoints": 4.0}


def test_the_breakdown_benchmark_prints_a_line_per_photo_and_a_summary(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    script = str(ROOT / "benchmarks" / "real_photo_breakdown.py")
    picture = tmp_path / "answers.png"
    run = subprocess.run(
        [sys.executable, script, str(pretrained_artifact), "--picture", str(picture), "--photos", "astronaut,ascent"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    photos = [x for x in lines if x["figure"] == "photo" and x["model"] == str(pretrained_artifact)]
    assert sorted(x["photo"] for x in photos) == sorted(people())
    (summary,) = [x for x in lines if x["figure"] == "model" and x["model"] == str(pretrained_artifact)]
    assert summary["agreement@0.05"] == 1.0 and summary["keypoints"] == 69
    cell = 2 * reference()["input_size"]
    with Image.open(picture) as image:  # two photographs (rows), the baseline and the artifact (columns)
        assert image.size == (2 * cell, 2 * cell)
    (drawn,) = [x for x in lines if x["figure"] == "picture"]
    assert drawn["photos"] == ["astronaut", "ascent"] and drawn["path"] == str(picture)
