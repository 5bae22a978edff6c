"""Durability: what a power cut or a kill can leave. A folder swapped in (a dataset, a promoted model)
has every file on disk before its name points at it; a prediction log line cut by a crash is never
continued by the next record."""

from __future__ import annotations

import io
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posewheel import atomic
from posewheel.dataset import Dataset, ImageRecord, PersonAnnotation, save
from posewheel.imagestore import ImageStore
from posewheel.review import Outbox
from serving.predlog import PredictionLog, PredictionRecord
from serving.prometheus import ServingMetrics


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> set[tuple[int, int]]:
    """(device, inode) of everything os.fsync was called on."""
    seen: set[tuple[int, int]] = set()
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return seen


def _check_stage_on_swap(monkeypatch: pytest.MonkeyPatch, fsynced: set[tuple[int, int]]) -> list[str]:
    """Make atomic.replace_dir first list what in the stage was not fsynced; returns that list."""
    missing: list[str] = []
    real_replace = atomic.replace_dir

    def checking_replace(staged: Path, target: Path) -> None:
        for folder, _dirs, files in os.walk(staged):
            for path in [folder, *(os.path.join(folder, f) for f in files)]:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) not in fsynced:
                    missing.append(os.path.relpath(path, staged))
        real_replace(staged, target)

    monkeypatch.setattr(atomic, "replace_dir", checking_replace)
    return missing


def test_a_promoted_model_folder_is_on_disk_before_production_can_point_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsynced: set[tuple[int, int]]
) -> None:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "model.onnx").write_bytes(os.urandom(4096))
    (candidate / "weights.pt").write_bytes(os.urandom(4096))
    missing = _check_stage_on_swap(monkeypatch, fsynced)
    with atomic.staged_dir(tmp_path / "models" / "v2") as stage:  # what flywheel.stages.promote does
        for item in candidate.iterdir():
            shutil.copy2(item, stage / item.name)
        atomic.write_json(stage / "card.json", {"version": "v2"})
    assert missing == [], f"not fsynced before the swap: {missing}"
    assert (tmp_path / "models" / "v2" / "model.onnx").read_bytes() == (candidate / "model.onnx").read_bytes()


def test_a_saved_dataset_and_its_annotations_json_are_on_disk_before_the_swap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsynced: set[tuple[int, int]]
) -> None:
    Image.new("RGB", (32, 24)).save(tmp_path / "a.png")
    kps = np.zeros((17, 3))
    kps[0] = (5, 5, 2)
    dataset = Dataset(
        images=[ImageRecord(1, "a.png", 32, 24)],
        annotations=[PersonAnnotation(id=1, image_id=1, keypoints=kps, bbox=(1.0, 1.0, 10.0, 10.0))],
    )
    missing = _check_stage_on_swap(monkeypatch, fsynced)
    save(dataset, tmp_path / "feedback", image_sources={1: tmp_path / "a.png"})
    assert missing == [], f"not fsynced before the swap: {missing}"


def _record(n: int) -> PredictionRecord:
    pose = {"box": [0.0, 0.0, 8.0, 8.0], "score": 0.9,
            "keypoints": [{"name": f"k{j}", "x": 1.0, "y": 1.0, "score": 0.9} for j in range(17)]}  # fmt: skip
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (n, 0, 0)).save(buffer, "PNG")
    return PredictionRecord(request_id=f"r{n}", model_version="v1", image=buffer.getvalue(), width=8, height=8,
                            poses=[pose])  # fmt: skip


def test_a_prediction_log_line_cut_by_a_crash_is_not_continued_by_the_next_record(tmp_path: Path) -> None:
    log_dir = tmp_path / "predictions"
    log_dir.mkdir()
    today = log_dir / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"
    today.write_bytes(b'{"request_id": "r0", "created": "2026-11-30T10:00:00.000+00:00"}\n{"request_id": "r1", "mod')
    writer = PredictionLog(log_dir, ImageStore(tmp_path / "images"), Outbox(tmp_path / "outbox"), ServingMetrics())
    writer.start()
    try:
        for n in (2, 3):
            assert writer.submit(_record(n))
        assert writer.flush(10)
    finally:
        writer.stop()
    lines = today.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    readable = []
    for line in lines[:-1]:
        try:
            readable.append(json.loads(line)["request_id"])
        except ValueError:
            assert line == b'{"request_id": "r1", "mod'  # the cut line, alone on its line
    assert readable == ["r0", "r2", "r3"]
