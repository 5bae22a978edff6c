"""A real uvicorn server on a free loopback port, in a thread, for tests that talk HTTP over TCP.

def test_x(start_server):
    server = start_server(max_batch_size=8)        # ServingSettings overrides
    httpx.get(server.url + "/readyz")
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from serving.app import create_app
from serving.service import PoseService
from serving.settings import ServingSettings
from tests.support.waiting import answers_ready, wait_for

StartServer = Callable[..., "RunningServer"]


@dataclass
class RunningServer:
    url: str
    settings: ServingSettings
    service: PoseService

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Wait until /readyz answers 200 (AssertionError naming it after `timeout_s`)."""
        wait_for(lambda: answers_ready(self.url), timeout_s, f"{self.url}/readyz", poll_s=0.05)


@contextmanager
def run_server(settings: ServingSettings, wait_ready: bool = True) -> Iterator[RunningServer]:
    """Serve `create_app(settings)` with uvicorn on 127.0.0.1:<free port> until the block ends."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    running = RunningServer(f"http://127.0.0.1:{port}", settings, app.state.service)
    try:
        if wait_ready:
            running.wait_ready()
        yield running
    finally:
        server.should_exit = True
        thread.join(15.0)
        sock.close()


def test_settings(root: Path, model_dir: Path, **overrides: object) -> ServingSettings:
    """Settings for a test server: state under `root`, fast reload polling, no random review."""
    values: dict[str, object] = {
        "model_dir": model_dir,
        "predictions_dir": root / "var" / "predictions",
        "image_store_dir": root / "var" / "images",
        "outbox_dir": root / "var" / "outbox",
        "reload_poll_s": 0.2,
        "review_random_fraction": 0.0,
        "intra_op_threads": 1,
        "review_seed": 0,
    }
    values.update(overrides)
    return ServingSettings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def start_server(tmp_path: Path, production_model: Path) -> Iterator[StartServer]:
    """Factory: start a server on the `production_model` symlink with ServingSettings overrides."""
    with ExitStack() as stack:

        def start(**overrides: object) -> RunningServer:
            return stack.enter_context(run_server(test_settings(tmp_path, production_model, **overrides)))

        yield start
