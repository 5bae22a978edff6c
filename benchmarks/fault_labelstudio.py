"""Fault: Label Studio stopped while 500 predictions arrive, then restarted; every review item reaches it once.

    .venv/bin/python benchmarks/fault_labelstudio.py                 # 500 predictions, about 2 minutes
    .venv/bin/python benchmarks/fault_labelstudio.py --count 200

A `posewheel serve` process queues every prediction for review and drains into a Label Studio of
its own. A third of the predictions arrive with Label Studio up, a third while it is stopped
(SIGTERM), the rest after it was started again. Figures (one JSON line each):

  baseline_drain      the same count drained with Label Studio up throughout, seconds (the baseline)
  fault_labelstudio   predictions, tasks in Label Studio, request ids missing / duplicated, seconds
                      from the restart until the outbox was empty

The test suite runs 60 predictions through the same fault (tests/test_reliability_faults.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.faults import run_fault  # noqa: E402
from tests.support.figures import emit  # noqa: E402
from tests.support.server_process import (  # noqa: E402
    ServerProcess,
    bright_spot_models,
    distinct_images,
    predict_images,
    project_request_ids,
    review_env,
)
from tests.support.waiting import wait_for  # noqa: E402


def run_outage(ls: Any, work: Path, count: int) -> dict[str, Any]:
    """`count` predictions: a third before, during and after a Label Studio outage; what it holds after."""
    from posewheel.review import Outbox

    title = f"fault-ls-{uuid.uuid4().hex[:8]}"
    production = bright_spot_models(work / "models")
    server = ServerProcess(work / "server", production, review_env(ls.env(), ls.image_root, title))
    outbox = Outbox(work / "server" / "var" / "outbox")
    images = distinct_images(count, seed=3)
    thirds = [images[: count // 3], images[count // 3 : 2 * count // 3], images[2 * count // 3 :]]
    started = time.monotonic()
    answers: list[dict] = []
    try:
        server.start()
        answers += predict_images(server.url, thirds[0])
        ls.stop()
        try:
            answers += predict_images(server.url, thirds[1])
            wait_for(
                lambda: outbox.depth() + outbox.delivered() == len(answers), 120, "the outage's items to be queued"
            )
            pending_in_outage = outbox.depth()
        finally:
            ls.start()
        restarted = time.monotonic()
        answers += predict_images(server.url, thirds[2])
        wait_for(lambda: outbox.depth() == 0 and outbox.delivered() == count, 600, "the outbox to drain")
        drained_after_restart = time.monotonic() - restarted
    finally:
        server.stop()
    held = project_request_ids(ls.client, title)
    sent = {a["request_id"] for a in answers}
    return {
        "predictions": count,
        "pending_during_outage": pending_in_outage,
        "tasks": sum(held.values()),
        "missing": len(sent - set(held)),
        "duplicated": sum(1 for n in held.values() if n > 1),
        "drained_after_restart_s": round(drained_after_restart, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="predictions sent, each queued for review")
    args = parser.parse_args()
    from tests.support.labelstudio import running_labelstudio

    with tempfile.TemporaryDirectory(prefix="fault-ls-") as tmp, running_labelstudio(Path(tmp) / "ls") as ls:
        baseline = run_fault(ls, Path(tmp) / "baseline", args.count, kills=0)
        emit("baseline_drain", predictions=baseline["predictions"], tasks=baseline["tasks"],
             seconds=baseline["seconds"])  # fmt: skip
        result = run_outage(ls, Path(tmp) / "fault", args.count)
        ok = result["missing"] == 0 and result["duplicated"] == 0 and result["tasks"] == args.count
        ok = ok and baseline["missing"] == 0 and baseline["duplicated"] == 0
        emit("fault_labelstudio", **result, baseline_seconds=baseline["seconds"], ok=ok)
    sys.exit(0 if ok else 1)  # a benchmark that checks something fails like a test


if __name__ == "__main__":
    main()
