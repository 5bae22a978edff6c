"""`posewheel gc`: the image store and delivered review records are cleaned within an age or size
budget, and nothing still needed goes: images of pending or delivered review items and of the
feedback dataset stay, whatever their age."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from posewheel.cli import app as core_app
from posewheel.imagestore import ImageStore
from posewheel.retention import collect, register

DAY = 86400.0


def _image(store: ImageStore, n: int, age_days: float, size: int = 1000) -> str:
    sha = store.put(n.to_bytes(4, "big") * (size // 4))
    when = time.time() - age_days * DAY
    os.utime(store.path_for(sha), (when, when))
    return sha


def _item(outbox: Path, folder: str, request_id: str, sha: str, age_days: float = 0.0) -> Path:
    path = outbox / folder / f"{request_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"request_id": request_id, "image_sha256": sha}))
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def _world(tmp_path: Path) -> tuple[ImageStore, Path, Path, dict[str, str]]:
    store, outbox, feedback = ImageStore(tmp_path / "images"), tmp_path / "outbox", tmp_path / "feedback"
    shas = {
        "old": _image(store, 1, 40),
        "older": _image(store, 2, 60),
        "new": _image(store, 3, 1),
        "pending": _image(store, 4, 90),
        "delivered": _image(store, 5, 90),
        "labeled": _image(store, 6, 90),
        "old-delivered": _image(store, 7, 90),
    }
    _item(outbox, "pending", "p1", shas["pending"])
    _item(outbox, "done", "d1", shas["delivered"], age_days=10)
    _item(outbox, "done", "d2", shas["old-delivered"], age_days=200)
    feedback.mkdir()
    image = {"id": 1, "file_name": f"{shas['labeled']}.png", "image_sha256": shas["labeled"]}
    (feedback / "annotations.json").write_text(json.dumps({"images": [image]}))
    return store, outbox, feedback, shas


def test_old_images_nothing_needs_are_removed_and_the_rest_stays(tmp_path: Path) -> None:
    store, outbox, feedback, shas = _world(tmp_path)
    report = collect(store.root, outbox, max_age_s=30 * DAY, keep_datasets=[feedback])
    left = {name for name, sha in shas.items() if sha in store}
    assert left == {"new", "pending", "delivered", "labeled", "old-delivered"}
    assert (report.images_removed, report.done_removed, report.images_kept_for_a_reason) == (2, 0, 4)
    # delivered records past their age go first, and their image with them
    report = collect(store.root, outbox, max_age_s=30 * DAY, keep_datasets=[feedback], done_max_age_s=100 * DAY)
    assert report.done_removed == 1 and shas["old-delivered"] not in store and shas["delivered"] in store
    assert not (outbox / "done" / "d2.json").exists() and (outbox / "done" / "d1.json").exists()


def test_a_size_budget_removes_the_oldest_unneeded_images_first(tmp_path: Path) -> None:
    store, outbox, feedback, shas = _world(tmp_path)
    extra = [_image(store, 100 + n, age_days=n / 10, size=4000) for n in range(5)]  # all younger than a day
    report = collect(store.root, outbox, max_age_s=365 * DAY, max_bytes=12_000, keep_datasets=[feedback])
    assert not report.over_budget and report.store_bytes_after <= 12_000
    # the oldest unneeded ones went; the newest survive; needed ones never count as removable
    assert shas["older"] not in store and shas["old"] not in store
    assert extra[0] in store and all(shas[k] in store for k in ("pending", "delivered", "labeled"))
    tight = collect(store.root, outbox, max_age_s=365 * DAY, max_bytes=100, keep_datasets=[feedback])
    assert tight.over_budget and all(shas[k] in store for k in ("pending", "delivered", "labeled"))


def test_a_dry_run_removes_nothing_and_the_command_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, outbox, feedback, shas = _world(tmp_path)
    before = sorted(p.name for p in store.root.rglob("*") if p.is_file())
    report = collect(store.root, outbox, max_age_s=30 * DAY, keep_datasets=[feedback], dry_run=True)
    assert report.images_removed == 2 and sorted(p.name for p in store.root.rglob("*") if p.is_file()) == before
    monkeypatch.setenv("POSEWHEEL_IMAGE_STORE_DIR", str(store.root))
    monkeypatch.setenv("POSEWHEEL_OUTBOX_DIR", str(outbox))
    app = typer.Typer()
    register(app)
    app.command("noop", hidden=True)(lambda: None)  # two commands: typer keeps `gc` as a subcommand
    result = CliRunner().invoke(app, ["gc", "--max-age-days", "30", "--keep", str(feedback)])
    assert result.exit_code == 0, result.output
    assert "removed 2 image(s)" in result.output
    assert shas["labeled"] in store and shas["old"] not in store


def test_gc_is_a_posewheel_command() -> None:
    from posewheel.cli import _register_core

    _register_core()
    result = CliRunner().invoke(core_app, ["gc", "--help"])
    assert result.exit_code == 0 and "--max-age-days" in result.output
