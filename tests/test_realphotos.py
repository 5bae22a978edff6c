"""The real-photo check: agreement with the original MoveNet, overall and per photograph, on the real network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.realphotos import (
    CHECK_SET,
    SMALL_PLACES,
    SMALL_SIDE,
    agreement,
    errors_by_photo,
    people,
    reference,
    small_people,
    small_people_agreement,
    small_people_errors,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_pretrained_network_agrees_with_the_original_on_every_photo(pretrained_artifact: Path) -> None:
    errors = errors_by_photo(pretrained_artifact)
    assert sorted(errors) == sorted(people()) and len(errors) == 8
    for photo, err in errors.items():
        assert summarize(err)["agreement@0.05"] == 1.0, (photo, err.max())
        assert err.max() < 0.02, photo  # the port's rounding, not a person switch (0.5 of the side)
    overall = agreement(pretrained_artifact)
    assert {k: v for k, v in overall.items() if not k.startswith("one_person_")} == summarize(
        np.concatenate(list(errors.values()))
    )
    assert overall["keypoints"] == 69
    assert overall["one_person_agreement@0.05"] == 1.0 and overall["one_person_keypoints"] == 58  # 69 less ascent's 11


def test_the_one_person_figure_leaves_out_only_the_photograph_of_two(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import training.realphotos as realphotos

    answered = {  # a model on the other climber of ascent (errors half the side), right on everyone else
        "astronaut": np.array([0.01, 0.02]),
        "astronaut_mirrored": np.array([0.01]),
        "grace_hopper_mirrored": np.array([0.2, 0.01]),  # one keypoint really drifted
        "ascent": np.array([0.5, 0.5, 0.5]),
        "ascent_mirrored": np.array([0.5]),
    }
    monkeypatch.setattr(realphotos, "errors_by_photo", lambda artifact, check_set: answered)
    figures = agreement(tmp_path)
    assert figures["agreement@0.05"] == 4 / 9 and figures["keypoints"] == 9
    assert figures["one_person_agreement@0.05"] == 4 / 5 and figures["one_person_keypoints"] == 5
    del answered["astronaut"], answered["astronaut_mirrored"], answered["grace_hopper_mirrored"]
    assert agreement(tmp_path) == {"agreement@0.05": 0.0, "median_error": 0.5, "keypoints": 4.0}  # nobody alone


def test_the_pretrained_network_agrees_with_the_original_on_the_people_pasted_smaller(
    pretrained_artifact: Path,
) -> None:
    errors = small_people_errors(pretrained_artifact)
    assert len(errors) == 30
    for picture, err in errors.items():
        assert len(err) >= 5, picture  # the original is confident about most of a small person's joints
        assert err.max() < 0.02, picture  # the port's rounding, on pictures it was never checked against
    figures = small_people_agreement(pretrained_artifact)
    assert figures["small_people_agreement@0.05"] == 1.0 and figures["small_people_keypoints"] >= 300


def test_small_people_are_pasted_where_their_names_say() -> None:
    pictures = small_people()
    size = reference()["input_size"]
    scale = size / 512
    for name, picture in pictures.items():
        assert picture.size == (size, size)
        background = name.split("@")[1].split(":")[0]
        with Image.open(CHECK_SET / f"{background}_512.png") as raw:
            back = np.asarray(raw.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.int16)
        changed = np.abs(np.asarray(picture, np.int16) - back).max(axis=2) > 40
        ys, xs = np.nonzero(changed)
        x, y = SMALL_PLACES[name.rsplit(":", 1)[1]]
        assert xs.min() >= (x - 2) * scale and xs.max() <= (x + SMALL_SIDE + 2) * scale, name
        assert ys.min() >= (y - 2) * scale and ys.max() <= (y + SMALL_SIDE + 2) * scale, name
        assert changed.sum() > 0.3 * (SMALL_SIDE * scale) ** 2, name  # the person's photograph is there


def test_summarize_counts_what_lies_within_five_percent() -> None:
    figures = summarize(np.array([0.01, 0.049, 0.05, 0.5]))
    assert figures == {"agreement@0.05": 0.5, "median_error": 0.0495, "keypoints": 4.0}


def test_the_breakdown_benchmark_prints_a_line_per_photo_and_a_summary(
    pretrained_artifact: Path, tmp_path: Path
) -> None:
    script = str(ROOT / "benchmarks" / "real_photo_breakdown.py")
    picture = tmp_path / "answers.png"
    run = subprocess.run(
        [
            sys.executable,
            script,
            str(pretrained_artifact),
            "--picture",
            str(picture),
            "--photos",
            "astronaut,ascent",
            "--ascent-picture",
            str(tmp_path / "ascent.png"),
        ],
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
    # ascent's climbers in their hand-drawn boxes, mirrored with the photograph; the same network agrees on all
    climbers = {
        x["climber"]: x for x in lines if x["figure"] == "ascent_in_box" and x["model"] == str(pretrained_artifact)
    }
    assert climbers["near"]["box"] == [395.0, 240.0, 117.0, 260.0] and climbers["near_mirrored"]["box"][0] == 0.0
    assert climbers["far_mirrored"]["box"] == [512.0 - 145.0 - 70.0, 283.0, 70.0, 152.0]
    assert {name: x["keypoints"] for name, x in climbers.items()} == {
        "near": 11,
        "far": 0,
        "near_mirrored": 10,
        "far_mirrored": 12,
    }
    assert all(x["agree"] == x["keypoints"] for x in climbers.values())
    with Image.open(tmp_path / "ascent.png") as image:  # the baseline and the artifact (rows), photo and mirror image
        assert image.size == (2 * 392, 2 * 392)  # cells as wide as the part of the photograph with both climbers
