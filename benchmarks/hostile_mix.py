"""Hostile mix: 60 s at concurrency 32 of the worst a client can send, against a real server.

    .venv/bin/python benchmarks/hostile_mix.py                     # 60 s, 32 clients
    .venv/bin/python benchmarks/hostile_mix.py --duration 20 --rss-bound-mib 1200

A `posewheel serve` process (bright-spot model, default limits) gets, round robin from 32 clients:
decodable pixel bombs just under the pixel limit (6,000 x 6,000 PNG of 30 KB, to /v1/predict and
/v1/render), palette-with-transparency bombs, JSON bodies with 900,000 boxes and multipart boxes of
60,000, deeply nested boxes, slow clients that announce a body and trickle it, phone photos turned
by EXIF, palette and alpha images, ordinary images. A prober asks /healthz every 100 ms. Figures
(one JSON line each): requests by kind and status, health p50/p99/max, server peak RSS.
Exit status 1 unless: no 5xx, health p99 under 1 s, peak RSS under `--rss-bound-mib`.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.figures import emit  # noqa: E402
from tests.support.server_process import ServerProcess, bright_spot_models  # noqa: E402


def _png(width: int, height: int, colour_type: int = 2, extra: bytes = b"") -> bytes:
    """A valid PNG whose rows all decompress from zeros: a few KB on the wire, width x height decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    channels = {2: 3, 3: 1}[colour_type]
    rows = (b"\x00" + b"\x00" * (channels * width)) * height
    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + extra + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _palette_alpha_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return _png(width, height, 3, chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") + chunk(b"tRNS", b"\x00"))


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _corpus() -> list[tuple[str, Callable[[httpx.Client, str], int]]]:
    """(kind, send) pairs; `send(client, url)` returns the HTTP status."""
    from tests.support.onnx_models import spot_image

    bomb = _png(6000, 6000)  # 36 M pixels, under the 40 M limit
    palette_bomb = _palette_alpha_bomb(4400, 4400)  # 19 M pixels of P + transparency: its budget
    photo = Image.new("RGB", (640, 480), (90, 120, 150))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _encoded(photo, "JPEG", exif=exif.tobytes())
    palette = _encoded(photo.convert("P"), "PNG", transparency=0)
    alpha = _encoded(photo.convert("RGBA"), "PNG")
    plain = spot_image(192, 256, (96, 128))
    many_boxes = b'{"image_base64": "", "boxes": ' + json.dumps([[0, 0, 1, 1]] * 900_000).replace(" ", "").encode()
    many_boxes += b"}"
    form_boxes = json.dumps([[0, 0, 1, 1]] * 60_000)

    def post_file(path: str, data: bytes, boxes: str | None = None) -> Callable[[httpx.Client, str], int]:
        def send(client: httpx.Client, url: str) -> int:
            form = {"boxes": boxes} if boxes is not None else None
            return client.post(url + path, files={"image": ("x", data)}, data=form).status_code

        return send

    def post_json(body: bytes) -> Callable[[httpx.Client, str], int]:
        def send(client: httpx.Client, url: str) -> int:
            return client.post(
                url + "/v1/predict", content=body, headers={"content-type": "application/json"}
            ).status_code

        return send

    def slow(client: httpx.Client, url: str) -> int:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n{")  # fmt: skip
            deadline = time.monotonic() + 75  # the server cuts a trickled body after 60 s (4 x 15 s)
            sock.settimeout(1.0)
            while time.monotonic() < deadline:
                try:
                    answer = sock.recv(4096)
                    return int(answer.split(b" ", 2)[1]) if answer else 0
                except TimeoutError:
                    try:
                        sock.sendall(b" ")  # a byte now and then: never enough to finish
                    except OSError:
                        return 0
            return 0

    return [
        ("pixel bomb predict", post_file("/v1/predict", bomb)),
        ("pixel bomb render", post_file("/v1/render", bomb)),
        ("palette alpha bomb", post_file("/v1/predict", palette_bomb)),
        ("900k boxes json", post_json(many_boxes)),
        ("60k boxes form", post_file("/v1/predict", plain, form_boxes)),
        ("nested boxes", post_file("/v1/predict", plain, "[" * 3000)),
        ("slow client", slow),
        ("rotated photo", post_file("/v1/predict", rotated)),
        ("rotated render", post_file("/v1/render", rotated)),
        ("palette image", post_file("/v1/predict", palette)),
        ("alpha image", post_file("/v1/predict", alpha)),
        ("plain image", post_file("/v1/predict", plain, "[[10, 10, 100, 200]]")),
    ]


def run(url: str, server: ServerProcess, duration_s: float, concurrency: int) -> dict[str, object]:
    corpus = _corpus()
    stop = threading.Event()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    health: list[float] = []
    peak_rss = [server.rss_bytes()]

    def client(n: int) -> None:
        with httpx.Client(timeout=120) as http:
            k = n
            while not stop.is_set():
                kind, send = corpus[k % len(corpus)]
                k += concurrency
                try:
                    status = send(http, url)
                except httpx.HTTPError as exc:
                    status = 0
                    kind = f"{kind} ({type(exc).__name__})"
                with lock:
                    statuses[f"{kind} {status}"] += 1

    def prober() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                http.get(url + "/healthz")
                health.append(time.perf_counter() - started)
                peak_rss[0] = max(peak_rss[0], server.rss_bytes())
                time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    threads.append(threading.Thread(target=prober))
    for t in threads:
        t.start()
    time.sleep(duration_s)
    stop.set()
    for t in threads:
        t.join(180)
    health.sort()
    p = lambda q: round(1000 * health[min(len(health) - 1, int(q * len(health)))], 1)  # noqa: E731
    server_errors = sum(n for key, n in statuses.items() if key.rsplit(" ", 1)[1].startswith("5"))
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": server_errors,
        "health_probes": len(health),
        "health_ms": {"p50": p(0.5), "p99": p(0.99), "max": round(1000 * health[-1], 1)},
        "peak_rss_mib": round(peak_rss[0] / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once")
    parser.add_argument("--rss-bound-mib", type=float, default=1536.0, help="the server's peak RSS must stay under")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-mix-") as tmp:
        production = bright_spot_models(Path(tmp) / "models")
        with ServerProcess(Path(tmp) / "server", production, {"POSEWHEEL_REVIEW_RANDOM_FRACTION": "0"}).start() as s:
            result = run(s.url, s, args.duration, args.concurrency)
            alive = s.proc is not None and s.proc.poll() is None
    health_ms = result["health_ms"]
    assert isinstance(health_ms, dict)
    ok = (result["server_errors"] == 0 and health_ms["p99"] < 1000 and alive
          and float(str(result["peak_rss_mib"])) < args.rss_bound_mib)  # fmt: skip
    figures: dict[str, Any] = {"duration_s": args.duration, "concurrency": args.concurrency, **result,
                               "alive": alive, "rss_bound_mib": args.rss_bound_mib, "ok": ok}  # fmt: skip
    emit("hostile_mix", **figures)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
