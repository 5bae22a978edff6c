"""`posewheel serve` as a child process, and what the reliability and security checks send it.

    with ServerProcess(tmp / "server", bright_spot_models(tmp / "models")).start() as server:
        answers = predict_images(server.url, distinct_images(50))

Used by tests (tests/test_reliability_*.py, tests/test_security.py) and benchmarks (fault_server,
soak, fuzz_api, fault_labelstudio) alike: one real server process with its own log, RSS and signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.support.waiting import answers_ready, free_port, wait_for

POSEWHEEL = str(Path(sys.executable).parent / "posewheel")


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
        command = [POSEWHEEL, "serve", "--port", str(self.port), "--model", str(self.model_dir)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._ready, ready_timeout_s, f"{self.url}/readyz (log: {self.log_path})", poll_s=0.1)
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"posewheel serve exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
        return answers_ready(self.url)

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
