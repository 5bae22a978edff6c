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
import base64
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.fault_server import ServerProcess, bright_spot_models, emit  # noqa: E402


@dataclass
class FuzzReport:
    """What a fuzz run sent and what came back."""

    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "POST /v1/predict 422" -> count
    server_errors: int = 0
    failures: list[str] = field(default_factory=list)  # one line per failed check, first 50 kept

    def record(self, label: str, status: int) -> None:
        self.requests += 1
        self.statuses[f"{label} {status}"] += 1
        self.server_errors += status >= 500


def fuzz(
    base_url: str, requests: int, seed: int = 0, headers: dict[str, str] | None = None, real_images: bool = True
) -> FuzzReport:
    """Send about `requests` schemathesis-generated requests to `base_url`; check every response.

    The budget is shared over the operations that take input; parameterless GETs get one call each.
    `real_images`: replace every other generated image by a decodable one with random metadata.
    """
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    with_input = [op for op in operations if op.method.upper() != "GET"]
    report = FuzzReport()
    for attempt in range(10):  # some (operation, mode) pairs have few or no cases: new seeds until the budget is met
        remaining = requests - report.requests
        if remaining <= 0:
            break
        per_run = max(1, math.ceil(remaining / (2 * len(with_input))))
        for op in operations:
            if attempt and op not in with_input:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                budget = per_run if op in with_input else 1
                check = _checker(base_url, op.label, headers, checks, report, real_images)
                test = given(case=op.as_strategy(generation_mode=mode))(check)
                test = settings(max_examples=budget, deadline=None, database=None, phases=[Phase.generate],
                                suppress_health_check=list(HealthCheck))(test)  # fmt: skip
                try:
                    hypothesis_seed(seed + attempt)(test)()
                except Unsatisfiable:
                    continue  # e.g. no invalid request exists for an operation without parameters
    return report


def _with_real_image(case: Any, n: int) -> None:
    """Put a decodable image with random metadata where the case has generated image bytes."""
    from tests.support.hostile_images import generated_image

    body = case.body
    if not isinstance(body, dict):
        return
    _, data = generated_image(n)
    if "image" in body:
        body["image"] = data
    elif isinstance(body.get("image_base64"), str):
        body["image_base64"] = base64.b64encode(data).decode()


def _checker(
    base_url: str,
    label: str,
    headers: dict[str, str] | None,
    checks: list[Any],
    report: FuzzReport,
    real_images: bool = True,
) -> Callable[[Any], None]:
    """The per-case body: send the case, record its status, run the checks (failures recorded, not raised)."""

    from schemathesis.checks import FailureGroup  # a BaseExceptionGroup of the failed checks

    def check(case: Any) -> None:
        if real_images and report.requests % 2 == 0:
            _with_real_image(case, report.requests)
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        report.record(label, response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except (Exception, FailureGroup) as exc:  # noqa: BLE001 - a failed check of any kind is recorded
            if len(report.failures) < 50:
                text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                report.failures.append(f"{label} -> {response.status_code}: {(text or type(exc).__name__)[:600]}")

    return check


def valid_prediction(url: str) -> tuple[int, float]:
    """Status and latency (ms) of one ordinary prediction."""
    from tests.support.onnx_models import spot_image

    started = time.perf_counter()
    r = httpx.post(url + "/v1/predict", files={"image": ("s.png", spot_image(96, 128, (48, 64)), "image/png")})
    return r.status_code, (time.perf_counter() - started) * 1000


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
