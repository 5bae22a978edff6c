"""Fault: the API server killed with SIGKILL while it drains the review queue into Label Studio, restarted.

    .venv/bin/python benchmarks/fault_server.py                  # 500 predictions, one kill mid-drain
    .venv/bin/python benchmarks/fault_server.py --count 200 --kills 3

A real `posewheel serve` process (POSEWHEEL_REVIEW_DRAIN=true, every prediction queued for review)
drains into a Label Studio of its own. Once every answered prediction is durable in the outbox,
the server is killed with SIGKILL while the drain is under way (some items delivered, some not),
restarted on the same folders, and left to finish. Figures (one JSON line each):

  fault_server_kill     predictions, kills, tasks in Label Studio, request ids missing / duplicated
  baseline_drain        the same count drained by an undisturbed server, seconds (the baseline)
  kill_after_answers    SIGKILL the moment the last answer arrives (no drain): answers that said
                        "queued for review" whose item never reached the outbox on disk

The scenario and the server process live in tests/support (`faults.run_fault`,
`server_process.ServerProcess`), shared with tests/test_reliability_faults.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.faults import run_fault
from tests.support.figures import emit
from tests.support.server_process import (
    ServerProcess,
    bright_spot_models,
    distinct_images,
    predict_images,
)


def run_kill_after_answers(work: Path, count: int) -> dict[str, Any]:
    """SIGKILL the server the moment its last answer arrives: answered-and-queued items vs what is on disk."""
    from posewheel.review import Outbox

    production = bright_spot_models(work / "models")
    env = {
        "POSEWHEEL_REVIEW_THRESHOLD": "1.0",
        "POSEWHEEL_REVIEW_RANDOM_FRACTION": "1.0",
        "POSEWHEEL_REVIEW_CAP_PER_HOUR": "1000000",
    }
    server = ServerProcess(work / "server", production, env)
    try:
        server.start()
        answers = predict_images(server.url, distinct_images(count, seed=11), concurrency=16)
        server.kill()
    finally:
        server.stop()
    queued = {a["request_id"] for a in answers if a["review"]["queued"]}
    outbox = Outbox(work / "server" / "var" / "outbox")
    on_disk = {item.request_id for item in outbox.pending()}
    logged = set()
    for day in (work / "server" / "var" / "predictions").glob("*.jsonl"):
        for line in day.read_text().splitlines():
            try:
                logged.add(json.loads(line)["request_id"])
            except ValueError:
                continue  # a line cut by the kill
    answered = {a["request_id"] for a in answers}
    return {
        "answered": len(answers),
        "answered_queued": len(queued),
        "in_outbox": len(on_disk & queued),
        "in_prediction_log": len(logged & answered),
        "queued_but_lost": len(queued - on_disk),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="predictions sent, each queued for review")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs mid-drain, each followed by a restart")
    args = parser.parse_args()
    from tests.support.labelstudio import running_labelstudio

    with tempfile.TemporaryDirectory(prefix="fault-server-") as tmp, running_labelstudio(Path(tmp) / "ls") as ls:
        baseline = run_fault(ls, Path(tmp) / "baseline", args.count, kills=0)
        emit("baseline_drain", **baseline)
        result = run_fault(ls, Path(tmp) / "fault", args.count, kills=args.kills)
        ok = result["missing"] == 0 and result["duplicated"] == 0
        emit("fault_server_kill", **result, ok=ok, baseline_seconds=baseline["seconds"])
        # The other window: answers said "queued for review" while the item was still in the writer's memory.
        emit("kill_after_answers", **run_kill_after_answers(Path(tmp) / "instant", args.count))


if __name__ == "__main__":
    main()
