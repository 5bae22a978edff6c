"""Hostile input from the server's own OpenAPI schema: schemathesis-generated requests, no 5xx, every answer on schema.

    .venv/bin/python benchmarks/fuzz_api.py                   # at least 1,000 generated requests
    .venv/bin/python benchmarks/fuzz_api.py --requests 3000 --seed 7

A real `posewheel serve` process (bright-spot model, an admin key set) is read for its
/openapi.json; schemathesis (v4) generates valid and invalid requests for every operation
(positive and negative modes), sends them over HTTP and checks each response: not a server
error, a documented status code, a documented content type, a body matching the documented
schema. Half of the generated image fields are replaced by a decodable image with random metadata
(tests/support/hostile_images.py: palette, alpha, 16-bit, MPO, EXIF orientations and broken EXIF
blocks) and every request carries the admin key, so the requests reach decoding, the generated
boxes and the reload route, not only the first refusal. Figures (one JSON line each):

  baseline           a valid prediction before fuzzing: status, latency ms, server RSS MiB
  fuzz               requests sent, by operation and status, 5xx count, schema failures
  after_fuzz         the same valid prediction after fuzzing, and the RSS growth against the baseline

The test suite runs `fuzz()` with a smaller count (tests/test_reliability_hostile.py). The exit
status is 1 when a check failed (a 5xx, an answer off the schema, the server unwell afterwards).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.figures import emit  # noqa: E402
from tests.support.fuzzing import fuzz, valid_prediction  # noqa: E402
from tests.support.server_process import ServerProcess, bright_spot_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="generated requests, at least")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp:
        production = bright_spot_models(Path(tmp) / "models")
        env = {"POSEWHEEL_ADMIN_KEY": "fuzz-admin-key", "POSEWHEEL_REVIEW_RANDOM_FRACTION": "0"}
        with ServerProcess(Path(tmp) / "server", production, env).start() as server:
            status, ms = valid_prediction(server.url)
            rss_before = server.rss_bytes()
            emit("baseline", status=status, latency_ms=round(ms, 1), rss_mib=round(rss_before / 2**20, 1))
            started = time.monotonic()
            report = fuzz(server.url, args.requests, args.seed, headers={"X-API-Key": "fuzz-admin-key"})
            emit("fuzz", requests=report.requests, seconds=round(time.monotonic() - started, 1),
                 server_errors=report.server_errors, schema_failures=len(report.failures),
                 failures=report.failures[:20], statuses=dict(sorted(report.statuses.items())),
                 ok=report.requests >= args.requests and report.server_errors == 0 and not report.failures)  # fmt: skip
            status, ms = valid_prediction(server.url)
            rss_after = server.rss_bytes()
            alive = server.proc is not None and server.proc.poll() is None
            emit("after_fuzz", status=status, latency_ms=round(ms, 1), rss_mib=round(rss_after / 2**20, 1),
                 rss_growth=round(rss_after / rss_before - 1, 3), alive=alive)  # fmt: skip
    ok = report.requests >= args.requests and report.server_errors == 0 and not report.failures
    sys.exit(0 if ok and alive and status == 200 else 1)


if __name__ == "__main__":
    main()
