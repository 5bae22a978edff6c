"""Hostile input: generated requests from the server's own schema, and a corpus of bad images, never a 5xx,
never an answer off the schema, and never the server's memory.

tests/test_serving_safety.py covers the basic refusals; this adds what it lacks: schemathesis over the
OpenAPI schema (100 requests here, 1,000 in benchmarks/fuzz_api.py), a 50,000 x 50,000 PNG header,
truncated PNG, text sent as an image, NaN and negative numbers in JSON, and the RSS of a real server
process before and after the whole corpus.
"""

from __future__ import annotations

import base64
import io
import os
import platform
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel

from tests.support.fuzzing import fuzz
from tests.support.onnx_models import spot_image
from tests.support.server_process import ServerProcess, bright_spot_models

MiB = 2**20
ADMIN_KEY = "hostile-admin-key"


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _zlib_bomb_png(width: int, height: int) -> bytes:
    """A valid black RGB PNG of width x height whose file is a few KB: all pixels decompress from zeros."""
    rows = (b"\x00" + b"\x00" * (3 * width)) * height
    return _png(width, height, zlib.compress(rows, 9))


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (16, 16)).save(out, format="GIF")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GOOD = spot_image(96, 128, (48, 64))
JSON = {"content-type": "application/json"}
GOOD_B64 = _b64(GOOD)


def _raw_json(boxes: str) -> dict[str, object]:
    """A JSON body written by hand, so it can hold what json.dumps refuses (NaN, Infinity)."""
    return {"content": f'{{"image_base64": "{GOOD_B64}", "boxes": {boxes}}}', "headers": JSON}


# (name, how to send it) -> the 4xx expected; every answer must carry a message in "detail".
CORPUS: list[tuple[str, dict[str, object], int]] = [
    ("zero bytes", {"files": {"image": ("a.png", b"", "image/png")}}, 400),
    ("truncated JPEG", {"files": {"image": ("a.jpg", spot_image(200, 200, (9, 9), fmt="JPEG")[:300], "image/jpeg")}},
     400),
    ("truncated PNG", {"files": {"image": ("a.png", spot_image(300, 300, (150, 150))[:120], "image/png")}}, 400),
    ("50,000 x 50,000 PNG header", {"files": {"image": ("b.png", _png(50_000, 50_000, zlib.compress(b"\0" * 64)),
                                                        "image/png")}}, 413),
    ("GIF", {"files": {"image": ("a.gif", _gif(), "image/gif")}}, 415),
    ("text labelled image/png", {"files": {"image": ("a.png", b"GET /etc/passwd HTTP/1.0\r\n" * 20, "image/png")}},
     415),
    ("text as a JPEG body in JSON", {"json": {"image_base64": _b64(b"just words, no pixels")}}, 415),
    ("body over the limit", {"content": b"{" + b" " * (11 * MiB), "headers": JSON},
     413),
    ("box outside the image", {"files": {"image": ("a.png", GOOD)}, "data": {"boxes": "[[900, 900, 5, 5]]"}}, 422),
    ("NaN box in JSON", _raw_json("[[NaN, 0, 10, 10]]"), 422),
    ("Infinity box in JSON", _raw_json("[[0, 0, Infinity, 9]]"), 422),
    ("negative size box", {"json": {"image_base64": _b64(GOOD), "boxes": [[10, 10, -20, -20]]}}, 422),
    ("negative box left of the image", {"json": {"image_base64": _b64(GOOD), "boxes": [[-500, -500, 10, 10]]}}, 422),
    ("65 boxes", {"json": {"image_base64": _b64(GOOD), "boxes": [[0, 0, 10, 10]] * 65}}, 422),
    ("data URI of a GIF", {"json": {"image_base64": "data:image/gif;base64," + _b64(_gif())}}, 415),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real `posewheel serve` process for the module (bright-spot model, default limits)."""
    root = tmp_path_factory.mktemp("hostile")
    production = bright_spot_models(root / "models")
    env = {"POSEWHEEL_REVIEW_RANDOM_FRACTION": "0", "POSEWHEEL_ADMIN_KEY": ADMIN_KEY}
    with ServerProcess(root / "server", production, env).start() as server:
        yield server


@pytest.mark.parametrize(("name", "request_kwargs", "status"), CORPUS, ids=[c[0] for c in CORPUS])
def test_each_bad_input_gets_its_4xx_with_a_message(
    served: ServerProcess, name: str, request_kwargs: dict[str, object], status: int
) -> None:
    r = httpx.post(served.url + "/v1/predict", timeout=30, **request_kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 10, f"{name}: no message: {r.text[:300]}"


def _rss_mib(server: ServerProcess) -> float:
    return server.rss_bytes() / MiB


def test_server_memory_stays_flat_under_the_hostile_corpus(served: ServerProcess) -> None:
    for _ in range(3):  # warm: every code path has allocated what it keeps
        assert httpx.post(served.url + "/v1/predict", files={"image": ("g.png", GOOD)}).status_code == 200
        for _name, kwargs, status in CORPUS:
            assert httpx.post(served.url + "/v1/predict", timeout=30, **kwargs).status_code == status  # type: ignore[arg-type]
    before = peak = _rss_mib(served)
    for _ in range(5):
        for _name, kwargs, status in CORPUS:
            assert httpx.post(served.url + "/v1/predict", timeout=30, **kwargs).status_code == status  # type: ignore[arg-type]
            peak = max(peak, _rss_mib(served))
    after = _rss_mib(served)
    print(f"server RSS over 5 x {len(CORPUS)} hostile requests: {before:.0f} -> peak {peak:.0f} -> {after:.0f} MiB")
    assert peak - before < 64, f"peak RSS grew by {peak - before:.0f} MiB"
    assert after - before < 32, f"RSS grew by {after - before:.0f} MiB"
    assert httpx.post(served.url + "/v1/predict", files={"image": ("g.png", GOOD)}).status_code == 200


def _bomb_burst(server: ServerProcess, bomb: bytes, concurrency: int) -> float:
    """Post `bomb` from `concurrency` threads at once; the server's peak RSS growth during the burst, MiB."""
    before = peak = _rss_mib(server)
    results: list[int] = []

    def post() -> None:
        r = httpx.post(server.url + "/v1/predict", files={"image": ("b.png", bomb)}, timeout=300)
        results.append(r.status_code)

    threads = [threading.Thread(target=post) for _ in range(concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, _rss_mib(server))
        time.sleep(0.02)
    assert results == [200] * concurrency
    return peak - before


def test_concurrent_pixel_bombs_under_the_limit_cost_no_more_memory_than_the_decode_threads_allow(
    tmp_path: Path,
) -> None:
    # A 30 KB PNG that decodes to 6,000 x 6,000 (36 M pixels, under the 40 M limit): legal, but ~100 MB of RGB.
    bomb = _zlib_bomb_png(6000, 6000)
    assert len(bomb) < 200_000
    production = bright_spot_models(tmp_path / "models")
    env = {"POSEWHEEL_REVIEW_RANDOM_FRACTION": "0", "POSEWHEEL_PREPARE_THREADS": "2"}
    with ServerProcess(tmp_path / "server", production, env).start() as server:
        if sys.platform == "linux" and platform.libc_ver()[0] == "glibc" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            # the serve command started itself again with glibc's thresholds fixed (serving/cli.py)
            environ = psutil.Process(server.pid).environ()
            assert environ.get("MALLOC_MMAP_THRESHOLD_") == str(4 * MiB), environ.get("MALLOC_MMAP_THRESHOLD_")
            assert environ.get("MALLOC_TRIM_THRESHOLD_") == os.environ.get("MALLOC_TRIM_THRESHOLD_", str(64 * MiB))
        one = _bomb_burst(server, bomb, 1)
        eight = _bomb_burst(server, bomb, 8)
        print(f"peak RSS growth: 1 bomb {one:.0f} MiB, 8 concurrent bombs {eight:.0f} MiB")
        # Two decode threads: at most two full images (each with one working copy) alive at once, whatever
        # the number of clients; eight images alive would be 8 x 137 MiB. (A single bomb's own peak is
        # sampled, and since decoding keeps no copy it can read as little as one image.)
        per_thread = max(one, 2 * 6000 * 6000 * 4 / MiB)
        assert eight < 2 * per_thread + 150, (
            f"8 concurrent bombs grew RSS by {eight:.0f} MiB; one alone by {one:.0f} MiB"
        )


def test_generated_requests_from_the_openapi_schema_get_no_5xx_and_only_documented_answers(
    served: ServerProcess,
) -> None:
    server = served
    report = fuzz(server.url, requests=100, seed=1, headers={"X-API-Key": ADMIN_KEY})  # decodable images too
    assert report.requests >= 100
    assert report.server_errors == 0, report.failures
    assert report.failures == []
    assert {"POST /v1/predict", "POST /v1/render", "POST /v1/admin/reload"} <= {
        s.rsplit(" ", 1)[0] for s in report.statuses
    }
    # it got past the first refusal: images decoded and answered, the reload route reached with its key
    assert report.statuses["POST /v1/predict 200"] + report.statuses["POST /v1/render 200"] > 0, report.statuses
    assert report.statuses["POST /v1/admin/reload 200"] > 0, report.statuses
    assert httpx.get(server.url + "/readyz").status_code == 200


class _Echo(BaseModel):
    n: int


def test_the_fuzzer_reports_a_server_error_and_an_off_schema_answer() -> None:
    """The check above can fail: a small app with a 500 on negative numbers and an undocumented body."""
    app = FastAPI()

    @app.post("/echo", response_model=_Echo)
    async def echo(body: _Echo) -> JSONResponse:
        if body.n < 0:
            raise RuntimeError("negative")
        return JSONResponse({"n": "not a number"} if body.n % 2 else {"n": body.n})  # not validated by FastAPI

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        report = fuzz(f"http://127.0.0.1:{sock.getsockname()[1]}", requests=60, seed=0)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert report.server_errors > 0
    assert any("-> 500" in f for f in report.failures), report.failures
    assert any("-> 200" in f for f in report.failures), report.failures  # a 200 whose body is off the schema


def test_hostile_corpus_files_are_what_they_claim() -> None:
    """The corpus itself: Pillow sees the bomb header as a bomb, the zlib bomb really decodes."""
    with pytest.raises(Image.DecompressionBombError, match="2500000000 pixels"):
        Image.open(io.BytesIO(_png(50_000, 50_000, b"")))
    with Image.open(io.BytesIO(_zlib_bomb_png(300, 200))) as img:
        img.load()
        assert img.size == (300, 200)
