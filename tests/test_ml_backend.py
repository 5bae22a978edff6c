"""The server as Label Studio's ML backend: a real Label Studio, connected to a real `posewheel serve` on the
pretrained artifact, gets keypoint pre-annotations for photos uploaded straight into it (never seen by the
outbox), one bad task costs only its own prediction, the backend asks Label Studio for its API key, and a
promotion reaches Label Studio as a new model version."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from labeling.labelstudio_process import ssrf_environment
from labeling.project import label_config
from posewheel.artifact import load_card
from tests.support.labelstudio import LabelStudioServer
from tests.support.server_process import ServerProcess

PHOTOS = Path(__file__).parent / "fixtures" / "real_photos"
API_KEY = "ml-backend-test-key"


def _ls(labelstudio: LabelStudioServer) -> httpx.Client:
    token = labelstudio.settings.credentials().token
    return httpx.Client(base_url=labelstudio.settings.base_url, headers={"Authorization": f"Token {token}"}, timeout=60)


def _upload(ls: httpx.Client, project_id: int, photo: Path) -> int:
    """Import `photo` into the project as Label Studio's own upload (no outbox, no request id); the task id."""
    before = {t["id"] for t in _tasks(ls, project_id)}
    response = ls.post(f"/api/projects/{project_id}/import", files={"file": (photo.name, photo.read_bytes())})
    assert response.status_code == 201, response.text
    (task_id,) = {t["id"] for t in _tasks(ls, project_id)} - before
    return int(task_id)


def _tasks(ls: httpx.Client, project_id: int) -> list[dict[str, Any]]:
    response = ls.get("/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"})
    response.raise_for_status()
    return list(response.json()["tasks"])


def _predictions(ls: httpx.Client, task_id: int) -> list[dict[str, Any]]:
    response = ls.get("/api/predictions/", params={"task": task_id})
    response.raise_for_status()
    return list(response.json())


def _persons(result: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Keypoints per person region prefix ('p0', 'p1', ...): joint -> (x, y) percent."""
    persons: dict[str, dict[str, tuple[float, float]]] = {}
    for region in result:
        if region["type"] == "keypointlabels":
            person = region["id"].split("-", 1)[0]
            value = region["value"]
            persons.setdefault(person, {})[value["keypointlabels"][0]] = (value["x"], value["y"])
    return persons


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pretrained_artifact: Path, labelstudio: LabelStudioServer):
    """`posewheel serve` on the pretrained artifact, with an API key, able to fetch Label Studio's media."""
    env = {**labelstudio.env(), "POSEWHEEL_API_KEY": API_KEY}
    with ServerProcess(tmp_path_factory.mktemp("ml-backend-server"), pretrained_artifact, env=env).start() as running:
        yield running


@pytest.mark.labelstudio
def test_label_studio_gets_keypoints_for_photos_imported_straight_into_it(
    labelstudio: LabelStudioServer, server: ServerProcess, pretrained_artifact: Path
) -> None:
    version = load_card(pretrained_artifact).version
    project_id = labelstudio.new_project("mlb")
    with _ls(labelstudio) as ls:
        two_people = _upload(ls, project_id, PHOTOS / "two_people_256.png")
        astronaut = _upload(ls, project_id, PHOTOS / "astronaut_256.png")
        # One task whose image is elsewhere on the web, one whose upload is gone: no prediction for them only.
        bad = ls.post(
            f"/api/projects/{project_id}/import",
            json=[{"image": "https://example.invalid/person.jpg"}, {"image": f"/data/upload/{project_id}/gone.png"}],
        )
        assert bad.status_code == 201, bad.text
        bad_ids = [t["id"] for t in _tasks(ls, project_id) if t["id"] not in (two_people, astronaut)]
        assert len(bad_ids) == 2

        # Connect the server as the project's model; Label Studio sends HTTP Basic auth, password = API key.
        connected = ls.post(
            "/api/ml",
            json={
                "project": project_id,
                "url": f"{server.url}/ml-backend",
                "title": "posewheel",
                "auth_method": "BASIC_AUTH",
                "basic_auth_user": "labelstudio",
                "basic_auth_pass": API_KEY,
            },
        )
        assert connected.status_code == 201, connected.text
        backend = ls.get(f"/api/ml/{connected.json()['id']}").json()
        assert backend["state"] == "CO", backend  # connected: /health and /setup answered
        assert backend["model_version"] == version
        # A project without a model version takes the backend's title: annotators see its current predictions.
        assert ls.get(f"/api/projects/{project_id}").json()["model_version"] == "posewheel"

        # What the data manager's "Retrieve Predictions" action sends for the selected tasks.
        action = ls.post(
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": True, "excluded": []}},
        )
        assert action.status_code == 200, action.text

        with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60) as api:
            for task_id, photo, persons_expected in (
                (two_people, "two_people_256.png", 2),
                (astronaut, "astronaut_256.png", 1),
            ):
                (prediction,) = _predictions(ls, task_id)
                assert prediction["model_version"] == version
                persons = _persons(prediction["result"])
                assert len(persons) == persons_expected, (photo, sorted(persons))
                boxes = [r for r in prediction["result"] if r["type"] == "rectanglelabels"]
                assert len(boxes) == persons_expected
                assert all(r["original_width"] == 256 and r["original_height"] == 256 for r in prediction["result"])
                # The same engine as /v1/predict: the same keypoints, in percent of the photo.
                answer = api.post("/v1/predict", files={"image": (photo, (PHOTOS / photo).read_bytes())}).json()
                for k, pose in enumerate(answer["poses"]):
                    for kp in pose["keypoints"]:
                        if f"p{k}" in persons and kp["name"] in persons[f"p{k}"]:
                            x, y = persons[f"p{k}"][kp["name"]]
                            assert x * 2.56 == pytest.approx(kp["x"], abs=0.01)
                            assert y * 2.56 == pytest.approx(kp["y"], abs=0.01)
                assert sum(len(joints) for joints in persons.values()) >= 12 * persons_expected
                assert prediction["score"] == pytest.approx(min(p["score"] for p in answer["poses"]), abs=1e-6)
        for task_id in bad_ids:
            assert _predictions(ls, task_id) == []


@pytest.mark.labelstudio
def test_a_bad_task_gets_an_error_line_not_a_failed_call(server: ServerProcess) -> None:
    image = "data:image/png;base64," + base64.b64encode((PHOTOS / "astronaut_256.png").read_bytes()).decode()
    tasks = [
        {"id": 1, "data": {"image": image}},
        {"id": 2, "data": {"text": "no image here"}},
        {"id": 3, "data": {"image": "http://169.254.169.254/latest/meta-data/"}},
        {"id": 4, "data": {"image": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}},
        {"id": 5, "data": {"image": "/api/projects/"}},  # on Label Studio, but its API: the token never goes there
    ]
    auth = ("anyone", API_KEY)
    body = {"tasks": tasks, "project": "1.0", "label_config": label_config()}
    response = httpx.post(f"{server.url}/ml-backend/predict", json=body, auth=auth, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["results"]) == 5
    assert answer["results"][0]["result"] and answer["results"][1:] == [[], [], [], []]
    details = {e["task"]: e["detail"] for e in answer["errors"]}
    assert "no image URL under 'image'" in details[2]
    assert "not on Label Studio" in details[3]
    assert "image" in details[4].lower()
    assert "not one of Label Studio's media paths" in details[5]


@pytest.mark.labelstudio
def test_ml_backend_refuses_clearly(server: ServerProcess) -> None:
    url = f"{server.url}/ml-backend"
    assert httpx.post(f"{url}/predict", json={"tasks": []}).status_code == 401  # POSEWHEEL_API_KEY is set
    auth = ("anyone", API_KEY)
    not_tasks = httpx.post(f"{url}/predict", json={"tasks": "all of them"}, auth=auth)
    assert not_tasks.status_code == 422 and "tasks" in not_tasks.json()["detail"]
    other_config = '<View><Image name="image" value="$image"/><Choices name="c" toName="image"/></View>'
    setup = httpx.post(f"{url}/setup", json={"project": "7.1", "schema": other_config}, auth=auth)
    assert setup.status_code == 422 and "KeyPointLabels name='keypoints'" in setup.json()["detail"]
    assert httpx.get(f"{url}/health", auth=auth).json()["status"] == "UP"


def test_label_studio_may_reach_loopback_and_nothing_else_reserved() -> None:
    env = ssrf_environment(["127.0.0.0/8", "::1/128"])
    assert env["SSRF_PROTECTION_ENABLED"] == "true" and env["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = env["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert "127.0.0.0/8" not in banned and "::1/128" not in banned
    assert {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} <= set(banned)
    # one compose network opened: the rest of 172.16.0.0/12 stays banned
    compose = ssrf_environment(["172.18.0.0/16"])["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    assert "172.18.0.0/16" not in compose and "172.19.0.0/16" in compose and "127.0.0.0/8" in compose
    assert ssrf_environment([]) == {}
    json.dumps(env)  # plain strings, fit for a process environment


@pytest.mark.labelstudio
def test_a_promotion_reaches_label_studio_as_a_new_model_version(
    labelstudio: LabelStudioServer, tmp_path: Path
) -> None:
    from posewheel.artifact import promote
    from tests.support.onnx_models import spot_image
    from tests.support.server_process import bright_spot_models

    production = bright_spot_models(tmp_path / "models", ("v1", "v2"))
    env = {**labelstudio.env(), "POSEWHEEL_RELOAD_POLL_S": "0.2"}
    project_id = labelstudio.new_project("mlb-promote")
    with ServerProcess(tmp_path / "server", production, env=env).start() as server, _ls(labelstudio) as ls:
        photo = tmp_path / "spot.png"
        photo.write_bytes(spot_image(96, 128, (40, 60)))
        task_id = _upload(ls, project_id, photo)
        backend = ls.post("/api/ml", json={"project": project_id, "url": f"{server.url}/ml-backend", "title": "pw"})
        assert backend.status_code == 201, backend.text

        def retrieve() -> set[str]:
            action = ls.post(
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": project_id},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
            assert action.status_code == 200, action.text
            return {p["model_version"] for p in _predictions(ls, task_id)}

        assert retrieve() == {"v1"}
        promote(tmp_path / "models", "v2")
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/readyz").json().get("model_version") != "v2":
            assert time.monotonic() < deadline, "the server did not load v2"
            time.sleep(0.1)
        assert retrieve() == {"v1", "v2"}  # the task now also holds the promoted model's prediction
        assert ls.get(f"/api/ml/{backend.json()['id']}").json()["model_version"] == "v2"
