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

`ServerProcess` (a `posewheel serve` subprocess with its own log, RSS and signals) is also what the
reliability and security tests use.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
POSEWHEEL = str(Path(sys.executable).parent / "posewheel")


def emit(figure: str, **fields: Any) -> None:
    """Print one benchmark figure as a JSON line."""
    print(json.dumps({"figure": figure, **fields}), flush=True)


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class ServerProcess:
    """`posewheel serve` as a child process on 127.0.0.1: state under `root`, output appended to `log_path`.

    `env` adds POSEWHEEL_* settings; a restart keeps the port, the folders and the log file.
    """

    root: Path
    model_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server was not started"
        return self.proc.pid

    def start(self, ready_timeout_s: float = 60.0) -> ServerProcess:
        """Start the server and wait until /readyz answers 200."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "POSEWHEEL_ROOT": str(self.root), "POSEWHEEL_INTRA_OP_THREADS": "1", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [POSEWHEEL, "serve", "--port", str(self.port), "--model", str(self.model_dir)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(self._ready, ready_timeout_s, f"{self.url}/readyz (log: {self.log_path})", poll_s=0.1)
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"posewheel serve exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the server process, bytes."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM and wait (SIGKILL after `timeout_s`)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.is_file() else ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bright_spot_models(models: Path, versions: tuple[str, ...] = ("v1",)) -> Path:
    """Bright-spot test artifacts (tests/support/onnx_models.py) under `models`; the first promoted.

    Returns the `production` symlink.
    """
    from posewheel.artifact import promote
    from tests.support.onnx_models import write_artifact

    for n, version in enumerate(versions):
        write_artifact(models / version, version, scale=1.0 - 0.05 * n)
    promote(models, versions[0])
    return models / "production"


def predict_images(url: str, images: list[bytes], concurrency: int = 8, timeout_s: float = 60.0) -> list[dict]:
    """POST each image to /v1/predict (multipart) from `concurrency` threads; the JSON answers, in order."""

    def one(data: bytes) -> dict:
        r = httpx.post(url + "/v1/predict", files={"image": ("p.png", data, "image/png")}, timeout=timeout_s)
        r.raise_for_status()
        return dict(r.json())

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, images))


def distinct_images(count: int, seed: int = 0) -> list[bytes]:
    """`count` different small PNGs (a white spot at varying places): distinct content hashes."""
    from tests.support.onnx_models import spot_image

    return [spot_image(96, 128, (20 + (seed + i) % 56, 20 + ((seed + i) // 56) % 88), size=12) for i in range(count)]


def review_env(ls_env: dict[str, str], image_store: Path, title: str) -> dict[str, str]:
    """Server settings that queue every prediction for review and drain into Label Studio `title`."""
    return {
        **ls_env,
        "POSEWHEEL_LABELSTUDIO_PROJECT_TITLE": title,
        "POSEWHEEL_REVIEW_DRAIN": "true",
        "POSEWHEEL_REVIEW_THRESHOLD": "1.0",
        "POSEWHEEL_REVIEW_RANDOM_FRACTION": "1.0",
        "POSEWHEEL_REVIEW_CAP_PER_HOUR": "1000000",
        "POSEWHEEL_IMAGE_STORE_DIR": str(image_store),
    }


def project_request_ids(client: Any, title: str) -> Counter[str]:
    """How many tasks of Label Studio project `title` carry each request id."""
    from labeling.project import find_project

    project_id = find_project(client, title)
    if project_id is None:
        return Counter()
    tasks = client.tasks.list(project=project_id, fields="task_only", resolve_uri=False, page_size=1000)
    return Counter(str(t.data["request_id"]) for t in tasks)


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


def run_kill_after_answers(work: Path, count: int) -> dict[str, Any]:
    """SIGKILL the server the moment its last answer arrives: answered-and-queued items vs what is on disk."""
    from posewheel.review import Outbox

    production = bright_spot_models(work / "models")
    env = {"POSEWHEEL_REVIEW_THRESHOLD": "1.0", "POSEWHEEL_REVIEW_RANDOM_FRACTION": "1.0",
           "POSEWHEEL_REVIEW_CAP_PER_HOUR": "1000000"}  # fmt: skip
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
    return {"answered": len(answers), "answered_queued": len(queued), "in_outbox": len(on_disk & queued),
            "in_prediction_log": len(logged & {a["request_id"] for a in answers}),
            "queued_but_lost": len(queued - on_disk)}  # fmt: skip


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
        emit("fault_server_kill", **result, ok=result["missing"] == 0 and result["duplicated"] == 0,
             baseline_seconds=baseline["seconds"])  # fmt: skip
        # The other window: answers said "queued for review" while the item was still in the writer's memory.
        emit("kill_after_answers", **run_kill_after_answers(Path(tmp) / "instant", args.count))


if __name__ == "__main__":
    main()
