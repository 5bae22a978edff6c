"""Load generator for benchmarks/serve_load.py: `concurrency` async httpx workers posting pre-encoded bodies.

    python benchmarks/serve_client.py URL BODIES.pkl CONCURRENCY DURATION_S WARMUP_S [NICE]

Runs in its own process so its CPU is measured apart from the server's. Bodies are encoded once
up front (a list of (content type, bytes)) to keep the client's own CPU cost low. Prints one
JSON object: completed requests in the timed window, errors, latencies in ms.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pickle
import sys
import time
from typing import Any

import httpx


async def run(
    url: str, bodies: list[tuple[str, bytes]], concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    answered = [0]  # every 200, in or out of the timed window
    start = time.perf_counter()
    begin, end = start + warmup_s, start + warmup_s + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

        async def worker(offset: int) -> None:
            for content_type, body in itertools.islice(itertools.cycle(bodies), offset, None):
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                try:
                    r = await client.post(url, content=body, headers={"content-type": content_type})
                    ok = r.status_code == 200
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    ok, key = False, type(exc).__name__
                t1 = time.perf_counter()
                answered[0] += ok
                if t0 >= begin and t1 <= end:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors[key] = errors.get(key, 0) + 1

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
    result = asyncio.run(run(url, bodies, int(concurrency), float(duration_s), float(warmup_s)))
    result["client_cpu_s"] = time.process_time()  # all of this process's CPU, imports included
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
