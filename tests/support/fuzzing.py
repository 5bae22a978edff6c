"""Schema fuzzing of a running API server: schemathesis requests from its own OpenAPI, checked answers.

report = fuzz(url, count=300, seed=0, admin_key="...")   # benchmarks/fuzz_api.py and the hostile-input tests
"""

from __future__ import annotations

import base64
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


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
