"""HEIC, an iPhone's photographs: made an upright JPEG in a child process (serving/heif.py), so that the C
decoder crashing on a corrupt file costs that request a 400 and nothing else. The decoder is the real one
(pi-heif, libheif); the crash is a real crash of it, on the committed fixture with one byte changed."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from posewheel.imagestore import is_heif
from serving import heif
from serving.images import InputError
from tests.fixtures.heic.make_heic import FIXTURE
from tests.support.onnx_models import spot_image
from tests.support.server import StartServer

# Found by changing random bytes of FIXTURE, then leaving out every change the crash did not need: one byte
# of its `iinf` box (the items' entries, the EXIF item's among them). pi-heif 1.4.0 (libheif 1.23.0) dies with
# SIGSEGV opening it, reading the file's metadata; pillow-heif 1.9.0 (libheif 1.23.7) decodes it.
CRASHING_BYTES = {178: 0xB1}


def crashing_heic() -> bytes:
    data = bytearray(FIXTURE.read_bytes())
    for offset, value in CRASHING_BYTES.items():
        data[offset] = value
    return bytes(data)


def test_heic_is_known_by_its_bytes() -> None:
    assert is_heif(FIXTURE.read_bytes())
    assert not is_heif(spot_image(40, 30, (20, 15), fmt="JPEG"))
    assert not is_heif(spot_image(40, 30, (20, 15)))
    assert not is_heif(b"\x00\x00\x00\x18ftypmp42 a video, not a photograph")


def test_a_heic_becomes_its_upright_jpeg_and_other_bytes_stay() -> None:
    jpeg = heif.as_decodable(FIXTURE.read_bytes(), 40_000_000)
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.size) == ("JPEG", (384, 512))  # stored 512 x 384, turned by the file's irot
    png = spot_image(40, 30, (20, 15))
    assert heif.as_decodable(png, 40_000_000) is png


def test_a_heic_costs_more_per_pixel_than_rgb() -> None:
    """libheif's own planes come first: HEIC is charged 10 bytes a pixel against RGB's 8."""
    limit = 384 * 512 * heif.PEAK_BYTES // heif.RGB_PEAK_BYTES
    assert heif.heif_to_jpeg(FIXTURE.read_bytes(), limit)
    with pytest.raises(InputError) as info:
        heif.heif_to_jpeg(FIXTURE.read_bytes(), limit - 8)
    assert info.value.status == 413 and "10 bytes a pixel" in str(info.value)


def test_a_decoder_crash_is_the_requests_400_and_the_next_heic_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    heif.heif_to_jpeg(FIXTURE.read_bytes(), 40_000_000)
    first = heif._CHILD.process
    assert first is not None and first.poll() is None
    with pytest.raises(InputError) as info:
        heif.heif_to_jpeg(crashing_heic(), 40_000_000)
    assert info.value.status == 400 and "decoder stopped" in str(info.value)
    assert first.returncode == -11  # SIGSEGV: the crash, in the child
    assert "the HEIC decoder stopped (it crashed, exit code -11)" in caplog.text  # what an operator sees
    assert heif.heif_to_jpeg(FIXTURE.read_bytes(), 40_000_000)  # a new child
    assert heif._CHILD.process is not first


def test_over_http_a_crashing_heic_costs_one_400_and_the_server_goes_on(start_server: StartServer) -> None:
    server = start_server()
    url = server.url + "/v1/predict"
    crashed = httpx.post(url, files={"image": ("IMG_0002.HEIC", crashing_heic(), "image/heic")}, timeout=60)
    assert crashed.status_code == 400 and "decoder stopped" in crashed.json()["detail"]
    good = httpx.post(url, files={"image": ("IMG_0001.HEIC", FIXTURE.read_bytes(), "image/heic")}, timeout=60)
    assert good.status_code == 200, good.text
    assert (good.json()["width"], good.json()["height"]) == (384, 512)
    drawn = httpx.post(server.url + "/v1/render", files={"image": ("a.heic", FIXTURE.read_bytes())}, timeout=60)
    assert drawn.status_code == 200 and Image.open(io.BytesIO(drawn.content)).size == (384, 512)
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_upright_gives_back_the_jpeg_a_heic_is_answered_as(start_server: StartServer) -> None:
    """What the demo page draws on when the browser cannot show a HEIC: the very JPEG the model read."""
    server = start_server()
    heic = FIXTURE.read_bytes()
    r = httpx.post(server.url + "/v1/upright", files={"image": ("IMG_0001.HEIC", heic, "image/heic")}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == heif.heif_to_jpeg(heic, 40_000_000)
    url = server.url + "/v1/predict"
    from_heic = httpx.post(url, files={"image": ("IMG_0001.HEIC", heic)}, timeout=60).json()
    from_jpeg = httpx.post(url, files={"image": ("IMG_0001.jpg", r.content)}, timeout=60).json()
    assert from_jpeg["poses"] == from_heic["poses"]
    crashed = httpx.post(server.url + "/v1/upright", files={"image": ("b.heic", crashing_heic())}, timeout=60)
    assert crashed.status_code == 400 and "decoder stopped" in crashed.json()["detail"]
