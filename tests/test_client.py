"""The Python client (`serving.client`) against a real uvicorn server on the pretrained artifact.

Typed poses, multipart and JSON alike, the server's own message on a 4xx, and bounded retries on
503: a server with no model yet answers 503 until a model appears.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from posewheel import artifact
from serving.client import ApiError, Keypoint, Pose, PosewheelClient
from tests.support.moving_people import FRAME_RATE, crossing_clips, identities
from tests.support.server import RunningServer, run_server, test_settings

PHOTOS = Path(__file__).parent / "fixtures" / "real_photos"
KEY = "client-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pretrained_artifact: Path) -> Iterator[RunningServer]:
    models = pretrained_artifact.parent
    settings = test_settings(tmp_path_factory.mktemp("serve"), artifact.production_dir(models), api_key=KEY)
    with run_server(settings) as running:
        yield running


class CountingTransport(httpx.HTTPTransport):
    """Remembers the status of every answer, so a test sees the retries."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_predict_returns_typed_poses_the_same_by_multipart_and_json(server: RunningServer) -> None:
    with PosewheelClient(server.url, api_key=KEY) as client:
        multipart = client.predict(PHOTOS / "two_people_256.png")
        as_json = client.predict((PHOTOS / "two_people_256.png").read_bytes(), as_json=True)
    assert (multipart.width, multipart.height) == (256, 256)
    assert multipart.model_version == "pretrained-movenet-lightning"
    assert len(multipart.poses) == 2
    pose = multipart.poses[0]
    assert isinstance(pose, Pose) and isinstance(pose.keypoints[0], Keypoint)
    assert pose.keypoints[0].name == "nose" and len(pose.keypoints) == 17
    assert pose.box_score is not None and len(pose.box) == 4
    assert [p.keypoints for p in as_json.poses] == [p.keypoints for p in multipart.poses]
    assert as_json.request_id != multipart.request_id


def test_boxes_and_query_options_reach_the_server(server: RunningServer) -> None:
    with PosewheelClient(server.url, api_key=KEY) as client:
        boxed = client.predict(PHOTOS / "cameraman_256.png", boxes=[(40.0, 10.0, 150.0, 240.0)])
        boxed_json = client.predict(PHOTOS / "cameraman_256.png", boxes=[[40, 10, 150, 240]], as_json=True)
        one = client.predict(PHOTOS / "two_people_256.png", max_persons=1)
        nobody = client.predict(PHOTOS / "two_people_256.png", score_threshold=1.0)
    assert [p.box for p in boxed.poses] == [(40.0, 10.0, 150.0, 240.0)]
    assert boxed.poses[0].box_score is None  # a box the client gave
    assert boxed_json.poses[0].keypoints == boxed.poses[0].keypoints
    assert len(one.poses) == 1
    assert nobody.poses == []


def test_a_4xx_raises_with_the_servers_message(server: RunningServer) -> None:
    with PosewheelClient(server.url, api_key=KEY) as client, pytest.raises(ApiError) as caught:
        client.predict(b"this is not an image")
    assert caught.value.status_code == 415
    assert "not an image" in caught.value.detail and "not an image" in str(caught.value)
    with PosewheelClient(server.url, api_key="wrong") as client, pytest.raises(ApiError) as caught:
        client.predict(PHOTOS / "cameraman_256.png")
    assert caught.value.status_code == 401 and caught.value.attempts == 1  # a 4xx is never retried
    with PosewheelClient(server.url, api_key=KEY) as client, pytest.raises(ApiError) as caught:
        client.predict(PHOTOS / "cameraman_256.png", boxes=[[0, 0, -5, 10]])
    assert caught.value.status_code == 422 and "boxes[0]" in caught.value.detail


def test_503_before_a_model_is_loaded_is_retried_until_it_answers(pretrained_artifact: Path, tmp_path: Path) -> None:
    production = tmp_path / "production"  # no model yet: the server answers 503
    settings = test_settings(tmp_path, production, reload_poll_s=0.1)
    with run_server(settings, wait_ready=False) as server:
        transport = CountingTransport()
        with PosewheelClient(server.url, retries=2, backoff_s=0.01, transport=transport) as client:
            with pytest.raises(ApiError) as caught:
                client.predict(PHOTOS / "cameraman_256.png")
            assert caught.value.status_code == 503 and caught.value.attempts == 3  # bounded: 1 + 2 retries
            assert "no model loaded" in caught.value.detail
        assert transport.statuses == [503, 503, 503]

        threading.Timer(0.3, lambda: os.symlink(pretrained_artifact, production)).start()  # the model arrives
        transport = CountingTransport()
        started = time.monotonic()
        with PosewheelClient(server.url, retries=30, backoff_s=0.05, max_backoff_s=0.5, transport=transport) as client:
            prediction = client.predict(PHOTOS / "cameraman_256.png")
        assert len(prediction.poses) == 1
        assert transport.statuses[0] == 503 and transport.statuses[-1] == 200
        assert set(transport.statuses[:-1]) == {503}
        assert time.monotonic() - started < 30


def test_a_refused_connection_is_retried_then_raised(tmp_path: Path) -> None:
    with PosewheelClient("http://127.0.0.1:9", retries=1, backoff_s=0.01) as client, pytest.raises(httpx.ConnectError):
        client.predict(PHOTOS / "cameraman_256.png")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_stream_keeps_each_real_persons_track_id(server: RunningServer, as_json: bool) -> None:
    """Real people walking past each other (tests/support/moving_people.py), every fifth frame sent in order through
    `client.stream()`: each known person keeps one track id while the frames' list order changes."""
    clip = crossing_clips()[1]
    ids: dict[str, set[int]] = {}
    with PosewheelClient(server.url, api_key=KEY) as client:
        stream = client.stream()
        for index in range(0, 100, 5):
            jpeg = io.BytesIO()
            clip.frames[index].save(jpeg, format="JPEG", quality=95)
            prediction = stream.predict(jpeg.getvalue(), index / FRAME_RATE, as_json=as_json)
            assert stream.tracks is prediction.tracks and prediction.tracks is not None
            assert all(p.track_id is not None for p in prediction.poses)
            results = [{"keypoints": [v for k in p.keypoints for v in (k.x, k.y, k.score)]} for p in prediction.poses]
            for who, pose in zip(identities(results, clip, index), prediction.poses, strict=True):
                if who is not None:
                    ids.setdefault(who, set()).add(int(pose.track_id or 0))
        plain = client.predict(jpeg.getvalue())
    assert len(ids) == 3 and all(len(each) == 1 for each in ids.values()), ids
    assert len({next(iter(each)) for each in ids.values()}) == 3
    assert plain.tracks is None and all(p.track_id is None for p in plain.poses)  # not a stream: no ids
