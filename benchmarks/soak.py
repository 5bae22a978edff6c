"""Soak: 60 s (and at least 10,000 requests) at concurrency 32 against a real server, a model hot swap half way.

    .venv/bin/python benchmarks/soak.py                       # 60 s, 32 clients, >= 10,000 requests
    .venv/bin/python benchmarks/soak.py --duration 20 --min-requests 2000   # a quick look

A `posewheel serve` process serves bright-spot artifact v1; half way through, v2 (same graph,
confidences scaled by 0.9, so every answer tells which model computed it) is promoted with the
real `models/production` symlink flip and the server's watcher swaps it in. 32 async clients post
64 distinct PNGs round robin. Checks, each a JSON line:

  soak_requests   requests, failed (non-200 or transport error), req/s, duration
  soak_versions   answers per model version; answers whose body does not match the one output that
                  version gives for that image (a mixed or wrongly labelled answer); v1 answers after
                  the first v2 answer a client saw (the swap must be one step)
  soak_latency    p50/p99 ms before the swap (the baseline, same run) and after it
  soak_rss        server RSS after the first 1,000 requests (warm baseline), peak, at the end, growth
  goal            zero failed, every answer from exactly one version, RSS growth < 10%
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.figures import emit  # noqa: E402
from tests.support.server_process import ServerProcess, bright_spot_models, distinct_images  # noqa: E402


@dataclass
class Soak:
    """What the clients saw; times are seconds since the start."""

    answers: list[tuple[float, int, str, float]] = field(default_factory=list)  # (t, image, version, latency ms)
    outputs: dict[tuple[int, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    failures: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[int, int]] = field(default_factory=list)  # (requests so far, bytes)
    swap_at: float | None = None
    first_v2: float | None = None


async def client(url: str, images: list[bytes], offset: int, soak: Soak, started: float, stop: asyncio.Event) -> None:
    """One client: post images round robin until `stop`, recording every answer."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        n = offset
        while not stop.is_set():
            index = n % len(images)
            n += 1
            sent = time.perf_counter()
            try:
                r = await http.post(url + "/v1/predict", files={"image": ("s.png", images[index], "image/png")})
            except httpx.HTTPError as exc:
                soak.failures[type(exc).__name__] += 1
                continue
            latency = (time.perf_counter() - sent) * 1000
            if r.status_code != 200:
                soak.failures[str(r.status_code)] += 1
                continue
            body = r.json()
            version = body["model_version"]
            now = time.perf_counter() - started
            soak.answers.append((now, index, version, latency))
            soak.outputs[(index, version)].add(json.dumps(body["poses"], sort_keys=True))
            if version == "v2" and soak.first_v2 is None:
                soak.first_v2 = now


async def run(server: ServerProcess, models: Path, duration: float, min_requests: int, concurrency: int) -> Soak:
    from posewheel.artifact import promote

    images = distinct_images(64, seed=5)
    soak = Soak()
    stop = asyncio.Event()
    started = time.perf_counter()
    tasks = [asyncio.create_task(client(server.url, images, i * 2, soak, started, stop)) for i in range(concurrency)]
    while True:
        await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        soak.rss.append((len(soak.answers), server.rss_bytes()))
        if soak.swap_at is None and elapsed >= duration / 2:
            promote(models, "v2")  # the real production flip; the server's watcher swaps it in
            soak.swap_at = elapsed
        if elapsed >= duration and len(soak.answers) >= min_requests:
            break
    stop.set()
    await asyncio.gather(*tasks)
    soak.rss.append((len(soak.answers), server.rss_bytes()))
    return soak


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    values = np.asarray(latencies)
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1)}


def report(soak: Soak, duration_s: float) -> bool:
    count, failed = len(soak.answers), sum(soak.failures.values())
    emit("soak_requests", requests=count + failed, answered=count, failed=failed, failures=dict(soak.failures),
         req_per_s=round((count + failed) / duration_s, 1), duration_s=round(duration_s, 1))  # fmt: skip
    versions = Counter(v for _, _, v, _ in soak.answers)
    ambiguous = sum(1 for outs in soak.outputs.values() if len(outs) > 1)
    same_across = sum(
        1 for (i, v), outs in soak.outputs.items() if v == "v1" and outs & soak.outputs.get((i, "v2"), set())
    )
    late_v1 = sum(
        1 for t, _, v, _ in soak.answers if v == "v1" and soak.first_v2 is not None and t > soak.first_v2 + 1.0
    )
    emit("soak_versions", answers=dict(versions), images_with_several_outputs_per_version=ambiguous,
         images_where_v1_and_v2_agree=same_across, v1_answers_1s_after_first_v2=late_v1,
         swap_at_s=round(soak.swap_at or 0, 1), first_v2_at_s=round(soak.first_v2 or 0, 1))  # fmt: skip
    swap = soak.swap_at or duration_s
    before = [ms for t, _, _, ms in soak.answers if t < swap]
    after = [ms for t, _, _, ms in soak.answers if t >= swap]
    emit("soak_latency", before_swap=percentiles(before), after_swap=percentiles(after))
    warm = next((rss for n, rss in soak.rss if n >= 1000), soak.rss[0][1])
    end, peak = soak.rss[-1][1], max(rss for _, rss in soak.rss)
    growth = end / warm - 1
    emit("soak_rss", warm_mib=round(warm / 2**20, 1), peak_mib=round(peak / 2**20, 1), end_mib=round(end / 2**20, 1),
         growth=round(growth, 4), requests_after_warm=count - 1000)  # fmt: skip
    ok = failed == 0 and ambiguous == 0 and same_across == 0 and set(versions) == {"v1", "v2"} and growth < 0.10
    emit("goal", zero_failed=failed == 0, one_version_per_answer=ambiguous == 0 and same_across == 0,
         swapped=set(versions) == {"v1", "v2"}, rss_growth_under_10pct=growth < 0.10,
         at_least_10000_requests=count + failed >= 10_000, ok=ok)  # fmt: skip
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load, at least")
    parser.add_argument("--min-requests", type=int, default=10_000, help="keep going until this many answers")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        models = Path(tmp) / "models"
        production = bright_spot_models(models, ("v1", "v2"))
        env = {"POSEWHEEL_RELOAD_POLL_S": "0.5", "POSEWHEEL_REVIEW_RANDOM_FRACTION": "0"}
        with ServerProcess(Path(tmp) / "server", production, env).start() as server:
            started = time.perf_counter()
            soak = asyncio.run(run(server, models, args.duration, args.min_requests, args.concurrency))
            ok = report(soak, time.perf_counter() - started)
    sys.exit(0 if ok else 1)  # a benchmark that checks something fails like a test


if __name__ == "__main__":
    main()
