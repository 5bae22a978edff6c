"""`posewheel serve`: a real process answering on loopback, and a clear error without a model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from posewheel.artifact import promote
from tests.support.onnx_models import MakeArtifact, spot_image

POSEWHEEL = str(Path(sys.executable).parent / "posewheel")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, timeout_s: float) -> None:
    """Until /readyz answers 200 or `timeout_s` passes (the test's own requests then tell what went wrong)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


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
        _wait_ready(url, 30)
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


def _metric_sum(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_serve_with_two_workers_shares_the_port_the_metrics_and_a_promotion(
    production_model: Path, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    port = _free_port()
    env = {**os.environ, "POSEWHEEL_ROOT": str(tmp_path), "POSEWHEEL_RELOAD_POLL_S": "0.3"}
    proc = subprocess.Popen(
        [POSEWHEEL, "serve", "--port", str(port), "--model", str(production_model), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    image = spot_image(64, 64, (32, 32))

    def predict(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=url, timeout=30) as client:  # a new connection: either worker may take it
            r = client.post("/v1/predict", files={"image": ("s.png", image)})
            return r.status_code, r.json().get("model_version", r.text)

    try:
        _wait_ready(url, 60)
        time.sleep(2)  # the second worker may still be loading its model
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(predict, range(48)))
        assert answers == [(200, "v1")] * 48
        logs = sorted((tmp_path / "var" / "predictions").glob("*.jsonl"))
        assert len(logs) == 2, f"each worker appends to its own log file: {logs}"
        time.sleep(1)  # the writers flush in the background
        assert sum(len(p.read_text().splitlines()) for p in logs) == 48
        metrics = httpx.get(url + "/metrics").text  # whichever worker answers, it counts both
        assert _metric_sum(metrics, 'posewheel_requests_total{route="/v1/predict",status="200"}') == 48
        assert _metric_sum(metrics, "posewheel_batch_size_sum") == 48

        make_artifact("v2")
        promote(production_model.parent, "v2")
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 30
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < deadline:
                batch = list(pool.map(predict, range(16)))
                seen += batch
                if all(v == "v2" for _, v in batch):
                    break
        assert all(code == 200 for code, _ in seen), "a request failed during the swap"
        assert all(v == "v2" for _, v in seen[-16:]), "both workers serve the promoted model"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert out.count("Application shutdown complete") == 2, out
