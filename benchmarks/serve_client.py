"""Load generator for benchmarks/serve_load.py: `concurrency` keep-alive connections posting pre-encoded bodies.

    python benchmarks/serve_client.py URL BODIES.pkl CONCURRENCY DURATION_S WARMUP_S [NICE]

Runs in its own process so its CPU is measured apart from the server's. It shares the machine's
cores with the server it loads, so it is kept cheap: each request is built once up front (request
line, headers and body as one bytes object), sent on a raw asyncio stream (uvloop when installed)
and its answer read by Content-Length (or chunks). An httpx client cost 1.7 ms of CPU per request
at concurrency 1 and 4.4 ms at 32 (its pool grows with the connections), a quarter of a core
taken from the server under test at exactly the load the benchmark is about.
Every answer is checked: status 200 and a body that parses as a JSON object, or it counts as an
error by kind. Prints one JSON object: completed requests in the timed window, errors, latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pickle
import sys
import time
from typing import Any
from urllib.parse import urlsplit

try:
    import orjson

    loads: Any = orjson.loads
except ImportError:  # the benchmark's venv has it; a bare one still works
    loads = json.loads

TIMEOUT_S = 60.0


class ResponseError(Exception):
    """An answer that is not a 200 with a JSON object body; the message is the error kind."""


def requests_for(url: str, bodies: list[tuple[str, bytes]]) -> list[bytes]:
    """Each body as a complete HTTP/1.1 keep-alive POST to `url`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    out = []
    for content_type, body in bodies:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nAccept: application/json\r\n\r\n"
        )
        out.append(head.encode("latin-1") + body)
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status code, body and whether the server keeps the connection open."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, keep_alive = None, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = b"close" not in value.lower()
    if chunked:
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        return status, b"".join(chunks), keep_alive
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


def check(status: int, body: bytes) -> None:
    if status != 200:
        raise ResponseError(str(status))
    try:
        ok = isinstance(loads(body), dict)
    except ValueError:
        ok = False
    if not ok:
        raise ResponseError("200 without a JSON object")


async def run(
    url: str, bodies: list[tuple[str, bytes]], concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    answered = [0]  # every good answer, in or out of the timed window
    requests = requests_for(url, bodies)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    start = time.perf_counter()
    begin, end = start + warmup_s, start + warmup_s + duration_s

    async def worker(offset: int) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for request in itertools.islice(itertools.cycle(requests), offset, None):
            t0 = time.perf_counter()
            if t0 >= end:
                break
            key = None
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    if conn is None:
                        conn = await asyncio.open_connection(host, port)
                    reader, writer = conn
                    writer.write(request)
                    status, body, keep_alive = await read_response(reader)
                if not keep_alive:
                    writer.close()
                    conn = None
                check(status, body)
            except ResponseError as exc:
                key = str(exc)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                key = type(exc).__name__
                if conn is not None:
                    conn[1].close()
                    conn = None
            t1 = time.perf_counter()
            answered[0] += key is None
            if t0 >= begin and t1 <= end:
                if key is None:
                    latencies.append(t1 - t0)
                else:
                    errors[key] = errors.get(key, 0) + 1
        if conn is not None:
            conn[1].close()
            with contextlib.suppress(OSError):
                await conn[1].wait_closed()

    await asyncio.gather(*(worker(i * 7) for i in range(concurrency)))
    return {
        "completed": len(latencies),
        "completed_all": answered[0],
        "errors": errors,
        "window_s": duration_s,
        "latencies_s": latencies,
    }


def main() -> None:
    url, bodies_file, concurrency, duration_s, warmup_s = sys.argv[1:6]
    if len(sys.argv) > 6:
        os.nice(int(sys.argv[6]))  # the server, not the load generator, should win a contended CPU
    with open(bodies_file, "rb") as handle:
        bodies = pickle.load(handle)
    coro = run(url, bodies, int(concurrency), float(duration_s), float(warmup_s))
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    result["client_cpu_s"] = time.process_time()  # all of this process's CPU, imports included
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
