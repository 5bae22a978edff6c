"""The HTTP API over a real uvicorn server on loopback: predictions, model card, health, metrics."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
from PIL import Image

from posewheel.schema import KEYPOINT_NAMES
from serving.schemas import PredictResponse
from tests.support.onnx_models import spot_image
from tests.support.server import StartServer


def _centre(pose: dict) -> np.ndarray:
    return np.array([[k["x"], k["y"]] for k in pose["keypoints"]]).mean(axis=0)


def test_predict_returns_17_named_keypoints_in_image_pixels(start_server: StartServer) -> None:
    server = start_server()
    files = {"image": ("spot.png", spot_image(300, 200, (150, 80)), "image/png")}
    r = httpx.post(server.url + "/v1/predict", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "v1"
    assert (body["width"], body["height"]) == (300, 200)
    assert len(body["request_id"]) >= 16
    (pose,) = body["poses"]
    assert pose["box"] == [0.0, 0.0, 300.0, 200.0]
    assert [k["name"] for k in pose["keypoints"]] == list(KEYPOINT_NAMES)
    # cells of the 24x32 heatmap are ~15 image pixels here; the spot is found within one cell
    assert np.abs(_centre(pose) - [150, 80]).max() < 15
    assert 0.9 < pose["score"] <= 1.0
    assert body["review"] == {"queued": False, "reason": None}
    assert PredictResponse.model_validate(body).poses[0].keypoints[0].name == "nose"  # the documented schema


def test_boxes_and_json_base64_give_one_pose_per_box(start_server: StartServer) -> None:
    server = start_server()
    data = spot_image(400, 300, (300, 200), fmt="JPEG")
    boxes = [[250, 120, 100, 160], [0, 0, 120, 120]]
    r = httpx.post(server.url + "/v1/predict", json={"image_base64": base64.b64encode(data).decode(), "boxes": boxes})
    assert r.status_code == 200, r.text
    first, second = r.json()["poses"]
    assert first["box"] == boxes[0] and second["box"] == boxes[1]
    assert np.abs(_centre(first) - [300, 200]).max() < 12
    assert second["score"] < 0.1  # a black corner: nothing bright to find
    form = httpx.post(
        server.url + "/v1/predict", files={"image": ("a.jpg", data, "image/jpeg")}, data={"boxes": json.dumps(boxes)}
    )
    assert form.status_code == 200
    assert [p["box"] for p in form.json()["poses"]] == boxes


def test_exif_rotated_photo_is_answered_upright(start_server: StartServer) -> None:
    server = start_server()
    upright = Image.open(io.BytesIO(spot_image(300, 200, (250, 50))))
    # stored turned 90 degrees counter-clockwise, EXIF orientation 6 says: turn 90 clockwise to show it
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, format="JPEG", exif=exif.tobytes())
    body = httpx.post(server.url + "/v1/predict", files={"image": ("r.jpg", out.getvalue(), "image/jpeg")}).json()
    assert (body["width"], body["height"]) == (300, 200)
    assert np.abs(_centre(body["poses"][0]) - [250, 50]).max() < 15


def test_upright_returns_the_picture_the_poses_refer_to_and_predicts_nothing(start_server: StartServer) -> None:
    server = start_server()
    upright = Image.open(io.BytesIO(spot_image(300, 200, (250, 50))))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned, as a phone writes a portrait shot
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, format="JPEG", exif=exif.tobytes())
    r = httpx.post(server.url + "/v1/upright", files={"image": ("r.jpg", out.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    turned = Image.open(io.BytesIO(r.content))
    assert turned.size == (300, 200) and turned.getexif().get(0x0112) is None  # turned, not merely tagged
    plain = np.asarray(upright.convert("RGB"), np.int16)
    assert np.abs(np.asarray(turned.convert("RGB"), np.int16) - plain).mean() < 2
    as_json = httpx.post(server.url + "/v1/upright", json={"image_base64": base64.b64encode(out.getvalue()).decode()})
    assert as_json.content == r.content
    bad = httpx.post(server.url + "/v1/upright", files={"image": ("x.jpg", b"not an image", "image/jpeg")})
    assert bad.status_code == 415 and "JPEG, PNG" in bad.json()["detail"]
    metrics = httpx.get(server.url + "/metrics").text
    assert 'posewheel_requests_total{route="/v1/upright",status="200"} 2.0' in metrics
    assert "posewheel_batch_size_count 0.0" in metrics  # the model never ran


def test_render_returns_a_png_of_the_image_size(start_server: StartServer) -> None:
    server = start_server()
    r = httpx.post(server.url + "/v1/render", files={"image": ("s.webp", spot_image(160, 120, (80, 60), fmt="WEBP"))})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    drawn = Image.open(io.BytesIO(r.content))
    assert drawn.size == (160, 120)
    assert r.headers["x-model-version"] == "v1"
    plain = np.asarray(Image.open(io.BytesIO(spot_image(160, 120, (80, 60)))).convert("RGB"), np.int16)
    assert np.abs(np.asarray(drawn.convert("RGB"), np.int16) - plain).sum() > 0  # something was drawn


def test_card_health_ready_and_openapi(start_server: StartServer) -> None:
    server = start_server()
    card = httpx.get(server.url + "/v1/model").json()
    assert card["version"] == "v1" and card["keypoint_names"] == list(KEYPOINT_NAMES)
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    assert httpx.get(server.url + "/readyz").json() == {"status": "ready", "model_version": "v1", "detail": None}
    spec = httpx.get(server.url + "/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "PredictResponse" in spec["components"]["schemas"]
    assert "text/html" in httpx.get(server.url + "/").headers["content-type"]


def test_metrics_show_traffic_batches_model_and_confidence(start_server: StartServer) -> None:
    server = start_server()
    for _ in range(3):
        httpx.post(server.url + "/v1/predict", files={"image": ("s.png", spot_image(64, 64, (32, 32)))})
    text = httpx.get(server.url + "/metrics").text
    assert 'posewheel_requests_total{route="/v1/predict",status="200"} 3.0' in text
    assert 'posewheel_model_info{version="v1"} 1.0' in text
    assert "posewheel_pose_score_count 3.0" in text
    assert "posewheel_batch_size_count" in text
    assert 'posewheel_request_latency_seconds_count{route="/v1/predict"} 3.0' in text
    assert "posewheel_queue_depth" in text


def test_api_key_guards_predictions_when_set(start_server: StartServer) -> None:
    server = start_server(api_key="s3cret")
    files = {"image": ("s.png", spot_image(64, 64, (32, 32)))}
    assert httpx.post(server.url + "/v1/predict", files=files).status_code == 401
    assert httpx.post(server.url + "/v1/predict", files=files, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.post(server.url + "/v1/predict", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200
