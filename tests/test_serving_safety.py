"""Hostile or odd input gets a clear 4xx JSON answer, never a 5xx, and never costs the server its memory."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.onnx_models import spot_image
from tests.support.server import RunningServer, StartServer


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def _post_image(server: RunningServer, data: bytes, boxes: str | None = None) -> httpx.Response:
    form = {"boxes": boxes} if boxes is not None else None
    return httpx.post(server.url + "/v1/predict", files={"image": ("x", data, "application/octet-stream")}, data=form)


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    return start_server(max_body_bytes=200_000, max_pixels=1_000_000)


def test_bodies_over_the_limit_get_413_with_or_without_a_length(server: RunningServer) -> None:
    big = b"\xff" * 300_000
    r = httpx.post(server.url + "/v1/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(30):
            yield b"\xff" * 10_000

    r = httpx.post(server.url + "/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("size", [(2000, 1000), (30_000, 30_000)])
def test_decompression_bombs_are_refused_before_decoding(server: RunningServer, size: tuple[int, int]) -> None:
    r = _post_image(server, _png_header_only(*size))
    assert r.status_code == 413, r.text
    assert "pixels" in r.json()["detail"] or "too large" in r.json()["detail"]


def test_unsupported_empty_and_broken_images_get_4xx(server: RunningServer) -> None:
    gif = _encode(Image.new("P", (32, 32)), "GIF")
    r = _post_image(server, gif)
    assert r.status_code == 415 and "GIF" in r.json()["detail"]
    assert _post_image(server, b"").status_code == 400
    r = _post_image(server, b"hello, I am not an image")
    assert r.status_code == 415 and "JPEG, PNG, WebP or HEIC" in r.json()["detail"]
    truncated = spot_image(200, 200, (100, 100), fmt="JPEG")[:300]
    assert _post_image(server, truncated).status_code == 400
    r = httpx.post(server.url + "/v1/predict", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(server.url + "/v1/predict", files={"other": ("a.png", spot_image(32, 32, (16, 16)))})
    assert r.status_code == 422 and "'image'" in r.json()["detail"]


@pytest.mark.parametrize(
    "boxes",
    ["not json", '{"x": 1}', "[[1, 2, 3]]", '[["a", 1, 2, 3]]', "[[0, 0, -5, 10]]", "[[0, 0, NaN, 10]]",
     "[[500, 500, 10, 10]]", "[[0, 0, 1e400, 5]]", "[1, 2, 3, 4]", "[[true, 0, 5, 5]]"],
)  # fmt: skip
def test_malformed_boxes_get_422_naming_the_box(server: RunningServer, boxes: str) -> None:
    r = _post_image(server, spot_image(100, 100, (50, 50)), boxes=boxes)
    assert r.status_code == 422, r.text
    assert "boxes" in r.json()["detail"]


def test_json_body_errors_get_4xx(server: RunningServer) -> None:
    url = server.url + "/v1/predict"
    assert httpx.post(url, json={"image_base64": "%%%not base64"}).status_code == 400
    assert httpx.post(url, json={"boxes": []}).status_code == 422
    assert httpx.post(url, json={"image_base64": "", "url": "http://example.com/a.jpg"}).status_code == 422
    assert httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK", "1"])
def test_any_colour_mode_is_answered(server: RunningServer, mode: str) -> None:
    rgb = Image.open(io.BytesIO(spot_image(120, 90, (60, 45)))).convert("RGB")
    if mode == "I;16":
        image = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257).astype(np.uint16))
    else:
        image = rgb.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    r = _post_image(server, _encode(image, fmt))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (120, 90)
    centre = np.array([[k["x"], k["y"]] for k in body["poses"][0]["keypoints"]]).mean(axis=0)
    assert np.abs(centre - [60, 45]).max() < 10


def test_admin_routes_need_the_admin_key(start_server: StartServer) -> None:
    closed = start_server()
    assert httpx.post(closed.url + "/v1/admin/reload").status_code == 403
    guarded = start_server(admin_key="adm1n")
    assert httpx.post(guarded.url + "/v1/admin/reload", headers={"X-API-Key": "nope"}).status_code == 401
    r = httpx.post(guarded.url + "/v1/admin/reload", headers={"X-API-Key": "adm1n"})
    assert r.status_code == 200 and r.json()["model_version"] == "v1"
