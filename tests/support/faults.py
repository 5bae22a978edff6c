"""The server-kill fault: SIGKILL `posewheel serve` while it drains the review outbox, restart, count.

    result = run_fault(labelstudio, tmp_path, count=40, kills=1)   # missing == duplicated == 0

`tests/test_reliability_faults.py` runs it small; `benchmarks/fault_server.py` runs it at 500.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.server_process import (
    ServerProcess,
    bright_spot_models,
    distinct_images,
    predict_images,
    project_request_ids,
    review_env,
)
from tests.support.waiting import wait_for


def kill_while_draining(server: ServerProcess, outbox_dir: Path, expected: int, timeout_s: float = 120.0) -> int:
    """SIGKILL `server` once its outbox drain is under way (some of `expected` items acked, some not).

    Returns how many items were acked at the kill.
    """
    from posewheel.review import Outbox

    outbox = Outbox(outbox_dir)
    wait_for(lambda: outbox.delivered() > 0, timeout_s, "the drain to start", poll_s=0.005)
    acked = outbox.delivered()
    server.kill()
    return acked


def run_fault(ls: Any, work: Path, count: int, kills: int) -> dict[str, Any]:
    """One server, `count` predictions, `kills` SIGKILLs mid-drain with restarts; what Label Studio holds."""
    from posewheel.review import Outbox

    title = f"fault-server-{uuid.uuid4().hex[:8]}"
    production = bright_spot_models(work / "models")
    env = review_env(ls.env(), ls.image_root, title)
    server = ServerProcess(work / "server", production, env)
    outbox_dir = work / "server" / "var" / "outbox"
    outbox = Outbox(outbox_dir)
    started = time.monotonic()
    answers: list[dict] = []
    acked_at_kill: list[int] = []
    try:
        server.start()
        answers = predict_images(server.url, distinct_images(count))
        for _ in range(kills):
            wait_for(lambda: outbox.depth() + outbox.delivered() == count, 60, "every review item to be durable")
            if outbox.depth() == 0:
                break
            acked_at_kill.append(kill_while_draining(server, outbox_dir, count))
            server.start()
        wait_for(lambda: outbox.depth() == 0, 300, "the outbox to drain after the restart")
    finally:
        server.stop()
    held = project_request_ids(ls.client, title)
    sent = {a["request_id"] for a in answers}
    return {
        "predictions": count,
        "kills": len(acked_at_kill),
        "acked_at_kill": acked_at_kill,
        "tasks": sum(held.values()),
        "missing": len(sent - set(held)),
        "duplicated": sum(1 for n in held.values() if n > 1),
        "seconds": round(time.monotonic() - started, 1),
    }
