"""Every prediction reaches the durable log; the unsure ones (and a sample) reach the review outbox."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from pathlib import Path

import httpx
import pytest

from posewheel.artifact import promote
from posewheel.imagestore import content_hash
from posewheel.review import Outbox
from serving.review_policy import ReviewPolicy
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import RunningServer, StartServer, run_server, test_settings


def _predict(server: RunningServer, data: bytes) -> dict:
    r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", data)})
    assert r.status_code == 200, r.text
    return r.json()


def _log_lines(root: Path) -> list[dict]:
    return [json.loads(line) for f in sorted((root / "var" / "predictions").glob("*.jsonl")) for line in f.open()]


def test_every_prediction_is_logged_and_its_image_stored_once(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    data = spot_image(128, 96, (64, 48))
    answers = [_predict(server, data) for _ in range(3)]
    assert server.service.predlog.flush(10)
    lines = _log_lines(tmp_path)
    assert [line["request_id"] for line in lines] == [a["request_id"] for a in answers]
    sha = content_hash(data)
    assert {line["image_sha256"] for line in lines} == {sha}
    assert lines[0]["poses"] == answers[0]["poses"] and lines[0]["model_version"] == "v1"
    assert lines[0]["scores"] == [answers[0]["poses"][0]["score"]]
    stored = [p for p in (tmp_path / "var" / "images").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [sha] and stored[0].read_bytes() == data
    assert not Outbox(tmp_path / "var" / "outbox").pending()  # confident and no random sample


def test_low_confidence_predictions_are_queued_for_review_up_to_the_hourly_cap(
    make_artifact: MakeArtifact, production_model: Path, tmp_path: Path
) -> None:
    make_artifact("unsure", scale=0.2)
    promote(production_model.parent, "unsure")
    settings = test_settings(tmp_path, production_model, review_threshold=0.3, review_cap_per_hour=2)
    with run_server(settings) as server:
        answers = [_predict(server, spot_image(100, 80, (50, 40 + i))) for i in range(3)]
        assert server.service.predlog.flush(10)
        metrics = httpx.get(server.url + "/metrics").text
    assert [a["review"] for a in answers[:2]] == [{"queued": True, "reason": "low_confidence"}] * 2
    assert answers[2]["review"] == {"queued": False, "reason": None}  # the cap
    assert "posewheel_review_capped_total 1.0" in metrics
    items = {i.request_id: i for i in Outbox(tmp_path / "var" / "outbox").pending()}
    assert set(items) == {a["request_id"] for a in answers[:2]}
    item = items[answers[0]["request_id"]]
    assert item.reason == "low_confidence" and item.model_version == "unsure"
    assert item.score == pytest.approx(min(p["score"] for p in answers[0]["poses"]))
    assert Path(item.image_path).read_bytes() == spot_image(100, 80, (50, 40))
    assert (item.width, item.height) == (100, 80)


def test_a_random_sample_of_confident_predictions_is_reviewed(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(review_random_fraction=1.0)
    answer = _predict(server, spot_image(64, 64, (32, 32)))
    assert answer["review"] == {"queued": True, "reason": "random"}
    assert server.service.predlog.flush(10)
    assert [i.reason for i in Outbox(tmp_path / "var" / "outbox").pending()] == ["random"]


def test_review_policy_cap_is_per_rolling_hour() -> None:
    now = [0.0]
    policy = ReviewPolicy(threshold=0.5, random_fraction=0.0, cap_per_hour=2, clock=lambda: now[0])
    assert [policy.decide([0.1]) for _ in range(3)] == ["low_confidence", "low_confidence", None]
    assert policy.decide([0.9]) is None
    now[0] = 3600.0
    assert policy.decide([0.1, 0.9]) == "low_confidence"


def test_the_default_share_spreads_the_hourly_cap_over_the_traffic_it_sees() -> None:
    """Unset, the random share is the cap over the last hour's traffic: labels spread over the hour, and a
    busier hour gets a smaller share, not the same labels from its first minutes."""
    from serving.settings import ServingSettings

    defaults = ServingSettings()
    assert (defaults.review_threshold, defaults.review_random_fraction, defaults.review_uncertain_persons) == (
        0.0,
        None,
        False,
    )  # random, measured
    now = [0.0]
    policy = ReviewPolicy(threshold=0.0, random_fraction=None, cap_per_hour=60, seed=3, clock=lambda: now[0])
    queued: list[float] = []
    for i in range(1200):  # 600 an hour for two hours
        now[0] = i * 6.0
        if policy.decide([0.9]) == "random":
            queued.append(now[0])
    assert policy.share() == pytest.approx(0.1, rel=0.05)
    assert 95 <= len(queued) <= 145  # 60 an hour
    quarters = Counter(int(t // 1800) for t in queued)
    assert all(12 <= quarters[q] <= 48 for q in range(4)), quarters  # not the first minutes of each hour
    for i in range(6000):  # then ten times the traffic for an hour: a tenth of the share
        now[0] = 7200.0 + i * 0.6
        policy.decide([0.9])
    assert policy.share() == pytest.approx(0.01, rel=0.05)
    quiet = ReviewPolicy(threshold=0.0, random_fraction=None, cap_per_hour=1000, seed=3, clock=lambda: now[0])
    assert [quiet.decide([0.9]) for _ in range(3)] == ["random"] * 3  # less traffic than the cap: all of it


def test_an_unwritable_log_never_fails_a_prediction(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folders should be")
    server = start_server(
        predictions_dir=blocker / "predictions", image_store_dir=blocker / "images", review_random_fraction=1.0
    )
    with caplog.at_level(logging.ERROR, logger="serving.predlog"):
        answers = [_predict(server, spot_image(64, 64, (32, 32 + i))) for i in range(3)]
        assert server.service.predlog.flush(10)
    assert len({a["request_id"] for a in answers}) == 3
    assert "posewheel_predlog_errors_total 3.0" in httpx.get(server.url + "/metrics").text
    assert "image not stored" in caplog.text


def test_review_drain_without_label_studio_still_serves(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: Label Studio is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("POSEWHEEL_LABELSTUDIO_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("POSEWHEEL_LABELSTUDIO_SECRETS_FILE", str(tmp_path / "no-secrets.json"))
    server = start_server(review_drain=True, review_random_fraction=1.0)
    answer = _predict(server, spot_image(64, 64, (32, 32)))
    assert answer["review"]["queued"]
    drainer = server.service.drainer
    assert drainer is not None and hasattr(drainer, "stop")
    assert server.service.predlog.flush(10)
    assert Outbox(tmp_path / "var" / "outbox").depth() == 1  # waits there until Label Studio answers


def test_a_prediction_answered_as_queued_is_already_in_the_outbox(start_server: StartServer, tmp_path: Path) -> None:
    """A 'queued: true' answer is a promise: the review item is on disk before the answer, not in a writer's memory."""
    server = start_server(review_random_fraction=1.0)
    outbox = Outbox(tmp_path / "var" / "outbox")
    for i in range(5):
        answer = _predict(server, spot_image(64, 64, (20 + i, 30)))  # no flush of the background writer
        assert answer["review"]["queued"] is True
        assert answer["request_id"] in {item.request_id for item in outbox.pending()}
    assert server.service.predlog.flush(10)
    assert outbox.depth() == 5  # the writer's own put found them there: queued once each


def test_with_several_workers_one_drains_the_outbox_and_each_takes_its_share_of_the_cap(
    tmp_path: Path, production_model: Path
) -> None:
    from serving.service import PoseService

    settings = test_settings(tmp_path, production_model, workers=3, review_cap_per_hour=100)
    first, second = PoseService(settings), PoseService(settings)
    outbox = settings.resolved_outbox_dir()
    assert first._take_drain_lock(outbox)
    assert not second._take_drain_lock(outbox), "a second worker must not drain the same outbox"
    assert first.policy.cap_per_hour == 34  # ceil(100 / 3): three workers never exceed the cap by more than 2
    assert first.predlog.file_tag != "", "each worker appends to its own log file"
