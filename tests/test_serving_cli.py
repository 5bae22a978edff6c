"""`posewheel serve`: a real process answering on loopback, and a clear error without a model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.onnx_models import spot_image

POSEWHEEL = str(Path(sys.executable).parent / "posewheel")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_predictions_and_stops_cleanly(production_model: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "POSEWHEEL_ROOT": str(tmp_path), "POSEWHEEL_INTRA_OP_THREADS": "1"}
    proc = subprocess.Popen(
        [POSEWHEEL, "serve", "--port", str(port), "--model", str(production_model)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.post(url + "/v1/predict", files={"image": ("s.png", spot_image(64, 64, (32, 32)))})
        assert r.status_code == 200 and r.json()["model_version"] == "v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    assert "serving model v1" in out
    assert list((tmp_path / "var" / "predictions").glob("*.jsonl")), "the log lives under the project root"


def test_serve_without_a_model_fails_with_one_clear_sentence(tmp_path: Path) -> None:
    r = subprocess.run(
        [POSEWHEEL, "serve", "--model", str(tmp_path / "nothing-here"), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "no model to serve at" in r.stderr and "model.onnx" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_help_names_its_options() -> None:
    r = subprocess.run([POSEWHEEL, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert all(opt in r.stdout for opt in ("--host", "--port", "--model"))
