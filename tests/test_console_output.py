"""What `posewheel demo` prints: one line per step, no per-request HTTP lines; the rest goes to its log file.

The demo's own pieces run in a child process (so its stdout and stderr are a real terminal's file
descriptors that the test reads): the CLI's logging, the demo's log file, the real API server started
by the demo with its output redirected, and the demo's traffic with its progress bar.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from posewheel import console
from tests.support.onnx_models import spot_image
from tests.support.waiting import free_port

# httpx's per-request INFO line, or an access line from uvicorn (step lines, `✓ ...`/`… ...`, may name a route).
PER_REQUEST = re.compile(r'HTTP Request:|"(GET|POST) /\S* HTTP/1\.[01]"|/v1/predict|/readyz')
STEP_LINE = re.compile(r"^[✓✗…] ")

DEMO_TRAFFIC = """
import asyncio, os, signal, sys
from pathlib import Path

from flywheel import demo
from posewheel import console
from posewheel.cli import configure_logging

root, port = Path(sys.argv[1]), int(sys.argv[2])
images = sorted((root / "traffic").iterdir())
configure_logging()  # what `posewheel` sets up before any command runs
log_file = console.start_log(root / "var" / "log", "demo")
server = demo.start_server(root, port, log_file, review_cap=10)
try:
    with console.stage("start the API server"):
        demo.wait_ready(f"http://127.0.0.1:{port}")
    with console.stage(f"send {len(images)} street images to /v1/predict") as stage:
        bar = stage.bar("answered", total=len(images), unit="images")
        answered, queued = asyncio.run(demo.send_traffic(f"http://127.0.0.1:{port}", images, 4, bar.advance))
        stage.result(f"{answered} answered, {queued} queued for review")
finally:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
print(f"log: {log_file}")
"""


def test_demo_terminal_shows_steps_and_no_http_request_lines(tmp_path: Path, production_model: Path) -> None:
    root = production_model.parent.parent  # the project: models/production is the bright-spot model
    (root / "traffic").mkdir()
    for n in range(24):
        (root / "traffic" / f"{n:03d}.jpg").write_bytes(spot_image(96, 128, (20 + 2 * n, 64), fmt="JPEG"))

    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DEMO_TRAFFIC), str(root), str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    terminal = child.stdout + child.stderr
    assert child.returncode == 0, terminal[-4000:]

    assert "✓ start the API server" in terminal
    assert re.search(r"✓ send 24 street images to /v1/predict .* 24 answered", terminal), terminal
    noisy = [line for line in terminal.splitlines() if PER_REQUEST.search(line) and not STEP_LINE.match(line)]
    assert not noisy, f"per-request lines reached the terminal: {noisy[:5]}"

    log_file = Path(terminal.split("log: ")[-1].strip())
    assert log_file.parent == root / "var" / "log" and log_file.name.startswith("demo-")
    logged = log_file.read_text(encoding="utf-8")
    assert "Uvicorn running" in logged, "the server's output did not reach the demo's log file"
    assert "step done: send 24 street images" in logged


def test_child_output_goes_to_the_log_file_not_the_terminal(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    seen: list[str] = []
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    code = console.run_logged([sys.executable, "-c", script], log_file, on_output=seen.extend, poll_s=0.05)
    assert code == 3
    assert set(seen) == {"to stdout", "to stderr"}
    assert set(log_file.read_text().splitlines()) == {"to stdout", "to stderr"}
    assert console.tail(log_file, lines=1) in {"to stdout", "to stderr"}


def test_durations_read_as_seconds_then_minutes() -> None:
    assert console.duration(42.4) == "42 s"
    assert console.duration(185) == "3 min 05 s"
