"""Hot reload survives any broken artifact, not only the ones that raise ModelLoadError: a card that
is a folder, a zero stride, a negative input size, a NaN std, a production link that loops. Each is
refused, logged and counted while v1 serves; the watcher keeps going (a good v2 is picked up after
them all), and shutdown still writes every queued prediction."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from posewheel import atomic
from posewheel.artifact import ArtifactError, load_card
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import run_server, test_settings


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _edit_card(folder: Path, edit: Callable[[dict], None]) -> Path:
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def _broken(make_artifact: MakeArtifact, models: Path) -> list[tuple[str, str]]:
    """Broken artifacts beside v1: (name, what production will point at)."""
    card_folder = make_artifact("cardfolder")
    (card_folder / "card.json").unlink()
    (card_folder / "card.json").mkdir()  # OSError (IsADirectoryError) when read
    _edit_card(make_artifact("zerostride"), lambda c: c["output"].update(stride=0))  # ZeroDivisionError
    _edit_card(make_artifact("negsize"), lambda c: c["input"].update(width=-96))  # numpy ValueError
    _edit_card(make_artifact("nanstd"), lambda c: c["input"].update(std=[float("nan"), 0.2, 0.2]))
    _edit_card(make_artifact("zerostd"), lambda c: c["input"].update(std=[0.0, 0.2, 0.2]))
    os.symlink("loop", models / "loop")  # a link to itself: resolving it raises
    return [(name, name) for name in ("cardfolder", "zerostride", "negsize", "nanstd", "zerostd", "loop")]


@pytest.mark.parametrize("field", ["stride", "width", "std", "scale", "padding"])
def test_a_card_with_impossible_geometry_is_refused_when_read(make_artifact: MakeArtifact, field: str) -> None:
    edits: dict[str, Callable[[dict], None]] = {
        "stride": lambda c: c["output"].update(stride=0),
        "width": lambda c: c["input"].update(width=-1),
        "std": lambda c: c["input"].update(std=[1.0, float("inf"), 1.0]),
        "scale": lambda c: c["input"].update(scale=0.0),
        "padding": lambda c: c["input"].update(padding=-1.25),
    }
    folder = _edit_card(make_artifact(f"bad-{field}"), edits[field])
    with pytest.raises(ArtifactError, match=field):
        load_card(folder)


def test_any_broken_model_is_refused_logged_and_counted_and_reload_keeps_working(
    tmp_path: Path, make_artifact: MakeArtifact, production_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = production_model.parent
    flips = _broken(make_artifact, models)
    make_artifact("v2")
    caplog.set_level(logging.INFO, logger="serving.reload")
    settings = test_settings(tmp_path, production_model, reload_poll_s=0.1, review_threshold=0.0)
    image = spot_image(64, 64, (32, 32))
    answered = 0
    with run_server(settings) as server:
        for n, (name, target) in enumerate(flips, start=1):
            atomic.point_symlink(models / "production", target)
            refused = lambda: _metric(server.url, "posewheel_model_reload_failures_total") >= n  # noqa: B023, E731
            _wait(refused, 15, f"{name} to be refused")
            r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", image)})
            assert r.status_code == 200 and r.json()["model_version"] == "v1", name
            answered += 1
            refusals = [rec.getMessage() for rec in caplog.records if "still serving v1" in rec.getMessage()]
            assert len(refusals) == n, f"{name}: {refusals}"
        assert _metric(server.url, "posewheel_model_reload_failures_total") == len(flips)
        atomic.point_symlink(models / "production", "v2")  # the watcher is alive: the good model comes in
        _wait(lambda: httpx.get(server.url + "/readyz").json().get("model_version") == "v2", 15, "v2 to serve")
        r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", image)})
        assert r.status_code == 200 and r.json()["model_version"] == "v2"
        answered += 1
        service = server.service
    assert service._watch_task is not None and service._watch_task.done()  # stopped by shutdown, not dead before
    lines = [json.loads(line) for f in sorted(settings.resolved_predictions_dir().glob("*.jsonl"))
             for line in f.read_text().splitlines()]  # fmt: skip
    assert len(lines) == answered  # shutdown wrote the prediction log's queue


def test_the_watcher_survives_a_production_link_that_is_not_a_folder(
    tmp_path: Path, make_artifact: MakeArtifact, production_model: Path
) -> None:
    models = production_model.parent
    (models / "afile").write_text("not an artifact")
    make_artifact("v2")
    with run_server(test_settings(tmp_path, production_model, reload_poll_s=0.1)) as server:
        atomic.point_symlink(models / "production", "afile")
        _wait(lambda: _metric(server.url, "posewheel_model_reload_failures_total") >= 1, 15, "afile refused")
        atomic.point_symlink(models / "production", "v2")
        _wait(lambda: httpx.get(server.url + "/readyz").json().get("model_version") == "v2", 15, "v2 to serve")
