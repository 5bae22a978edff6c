"""Micro-batching, hot reload and the model pinning that keeps versions apart, on a real server."""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from posewheel.artifact import promote
from serving.engine import Answer, MicroBatcher, Prepared, ServedModel, load_model, prepare
from serving.reload import fingerprint
from tests.support.onnx_models import MakeArtifact, spot_image
from tests.support.server import RunningServer, StartServer


def _metric(server: RunningServer, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def _centre(pose: dict) -> np.ndarray:
    return np.array([[k["x"], k["y"]] for k in pose["keypoints"]]).mean(axis=0)


def test_concurrent_requests_share_batches_and_each_gets_its_own_answer(start_server: StartServer) -> None:
    # One lane, held busy by a large photo first (a 4000x3000 JPEG decodes in ~150 ms here): the 16
    # small requests arrive while it decodes, so they queue and share batches. Without it, on a loaded
    # machine each small request could be parsed only after the previous one had been answered alone
    # (CI once saw 16 batches of one): the test measured the machine's speed, not the batcher.
    server = start_server(max_batch_size=8, max_wait_ms=30, inference_lanes=1, prepare_threads=2)
    spots = [(40 + 12 * i, 30 + 8 * i) for i in range(16)]
    texture = np.random.default_rng(0).integers(0, 256, (188, 250, 3), dtype=np.uint8)
    blocker = io.BytesIO()
    Image.fromarray(texture).resize((4000, 3000), Image.Resampling.BILINEAR).save(blocker, format="JPEG", quality=90)

    async def fire() -> tuple[httpx.Response, list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            first = asyncio.ensure_future(client.post("/v1/predict", files={"image": ("big.jpg", blocker.getvalue())}))
            await asyncio.sleep(0.05)  # a head start: the blocker is sent and being decoded before the rest come
            calls = [client.post("/v1/predict", files={"image": ("s.png", spot_image(256, 192, s))}) for s in spots]
            return await first, await asyncio.gather(*calls)

    held, responses = asyncio.run(fire())
    assert held.status_code == 200, held.text
    assert all(r.status_code == 200 for r in responses)
    for spot, r in zip(spots, responses, strict=True):
        assert np.abs(_centre(r.json()["poses"][0]) - spot).max() < 12, (spot, r.json()["poses"][0]["keypoints"][0])
    assert len({r.json()["request_id"] for r in responses}) == 16
    crops = _metric(server, "posewheel_batch_size_sum")
    batches = _metric(server, "posewheel_batch_size_count")
    assert crops == 17
    assert batches < 17, "no two concurrent requests shared a batch"  # 5-9 quiet, 6-12 under 3 busy processes


def test_a_lone_request_does_not_wait_for_company(start_server: StartServer) -> None:
    server = start_server(max_batch_size=32, max_wait_ms=1000)
    data = spot_image(128, 96, (64, 48))
    httpx.post(server.url + "/v1/predict", files={"image": ("s.png", data)})  # warm
    started = time.perf_counter()
    assert httpx.post(server.url + "/v1/predict", files={"image": ("s.png", data)}).status_code == 200
    assert time.perf_counter() - started < 0.5  # far below the 1 s max wait


def test_batches_never_mix_model_versions(make_artifact: MakeArtifact) -> None:
    old_dir, new_dir = make_artifact("old", scale=1.0), make_artifact("new", scale=0.5)
    old = load_model(old_dir, fingerprint(old_dir), 1)
    new = load_model(new_dir, fingerprint(new_dir), 1)
    from serving.images import decode_image

    image = decode_image(spot_image(96, 128, (48, 64)), 10**6).image
    inputs, windows = prepare(image, [(0, 0, 96, 128)], old.spec)

    async def run() -> list[Answer]:
        batcher = MicroBatcher(max_batch_size=64, max_wait_s=0.05)
        batcher.start()
        try:
            prepared = Prepared(inputs, windows)
            jobs = [batcher.submit(old if i % 2 else new, lambda: prepared) for i in range(20)]
            return await asyncio.gather(*jobs)
        finally:
            await batcher.stop()

    for i, answer in enumerate(asyncio.run(run())):
        scores = answer.scores
        expected = 1.0 if i % 2 else 0.5  # each job answered by the model it was prepared for
        assert abs(scores.max() / expected - 0.99) < 0.02, (i, scores.max())


class _SlowModel:
    """Stands in for a ServedModel whose inference takes `seconds` (sleeping releases the GIL, as ONNX Runtime does)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.running, self.most = seconds, 0, 0
        self.lock = threading.Lock()

    def infer_decode(self, inputs: np.ndarray, windows: list) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return np.zeros((len(windows), 17, 2)), np.zeros((len(windows), 17))

    answer = ServedModel.answer  # the real batching and answers, over this stand-in's inference
    answers = ServedModel.answers
    settle = ServedModel.settle


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_lanes_run_that_many_batches_at_once_from_one_queue(lanes: int) -> None:
    model = _SlowModel(0.1)
    prepared = Prepared(np.zeros((1, 3, 8, 8), np.float32), [(0.0, 0.0, 8.0, 8.0)])

    async def run() -> list[Answer]:
        batcher = MicroBatcher(max_batch_size=1, max_wait_s=0.0, lanes=lanes)
        batcher.start()
        try:
            return await asyncio.gather(*[batcher.submit(model, lambda: prepared) for _ in range(8)])  # type: ignore[arg-type]
        finally:
            await batcher.stop()

    started = time.perf_counter()
    answers = asyncio.run(run())
    elapsed = time.perf_counter() - started
    assert len(answers) == 8 and all(a.points.shape == (1, 17, 2) for a in answers)
    assert model.most == lanes, f"{model.most} batches ran at once with {lanes} lanes"
    assert elapsed < 0.1 * 8 / lanes + 0.3, f"8 one-request batches of 0.1 s on {lanes} lanes took {elapsed:.2f} s"


def test_the_deferred_step_runs_on_the_inference_lane_and_fails_only_its_own_request() -> None:
    """Finding the people (Prepared.finish) runs on a lane's thread, not on a decoding thread; an
    error there is that request's answer and the others in its batch still get theirs."""
    model = _SlowModel(0.0)
    threads: list[str] = []

    def finish(fail: bool) -> Prepared:
        threads.append(threading.current_thread().name)
        if fail:
            raise ValueError("the detector choked")
        return Prepared(np.zeros((2, 3, 8, 8), np.float32), [(0.0, 0.0, 8.0, 8.0)] * 2)

    def deferred(fail: bool) -> Prepared:
        return Prepared(np.zeros((0, 3, 8, 8), np.float32), [], finish=lambda: finish(fail))

    async def run() -> list[Answer | BaseException]:
        batcher = MicroBatcher(max_batch_size=8, max_wait_s=0.05, lanes=2)
        batcher.start()
        try:
            jobs = [batcher.submit(model, lambda i=i: deferred(i == 3)) for i in range(6)]  # type: ignore[arg-type,misc]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.stop()

    answers = asyncio.run(run())
    assert [type(a).__name__ for a in answers] == ["Answer"] * 3 + ["ValueError"] + ["Answer"] * 2
    assert all(a.points.shape == (2, 17, 2) for a in answers if isinstance(a, Answer))
    assert len(threads) == 6 and all(name.startswith("posewheel-infer") for name in threads), threads


def _hammer(server: RunningServer, stop: threading.Event, seen: list[tuple[int, str]]) -> None:
    data = spot_image(128, 96, (64, 48))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while not stop.is_set():
            r = client.post("/v1/predict", files={"image": ("s.png", data)})
            seen.append((r.status_code, r.json().get("model_version", "") if r.status_code == 200 else r.text))


def test_promoting_a_new_model_swaps_it_in_without_a_failed_request(
    start_server: StartServer, make_artifact: MakeArtifact, production_model: Path
) -> None:
    server = start_server(reload_poll_s=0.1)
    stop, seen = threading.Event(), list[tuple[int, str]]()
    clients = [threading.Thread(target=_hammer, args=(server, stop, seen)) for _ in range(3)]
    for t in clients:
        t.start()
    try:
        time.sleep(0.3)
        make_artifact("v2", scale=0.9)
        promote(production_model.parent, "v2")
        deadline = time.monotonic() + 15
        while not any(v == "v2" for _, v in seen[-3:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert [s for s in seen if s[0] != 200] == []
    versions = [v for _, v in seen]
    assert versions[0] == "v1" and versions[-1] == "v2"
    assert httpx.get(server.url + "/readyz").json()["model_version"] == "v2"
    assert 'posewheel_model_info{version="v2"} 1.0' in httpx.get(server.url + "/metrics").text


def test_a_broken_artifact_is_refused_and_the_old_model_keeps_serving(
    start_server: StartServer, make_artifact: MakeArtifact, production_model: Path
) -> None:
    server = start_server(reload_poll_s=0.1, admin_key="adm1n")
    make_artifact("garbage", corrupt=True)
    make_artifact("wrongshape", keypoints=5)
    for n, version in enumerate(["garbage", "wrongshape"], start=1):
        promote(production_model.parent, version)
        deadline = time.monotonic() + 10
        while _metric(server, "posewheel_model_reload_failures_total") < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _metric(server, "posewheel_model_reload_failures_total") == n
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["model_version"] == "v1"
        r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", spot_image(64, 64, (32, 32)))})
        assert r.status_code == 200 and r.json()["model_version"] == "v1"
    r = httpx.post(server.url + "/v1/admin/reload", headers={"X-API-Key": "adm1n"})
    assert r.status_code == 409 and "smoke test" in r.json()["detail"]
    make_artifact("v3")
    promote(production_model.parent, "v3")
    r = httpx.post(server.url + "/v1/admin/reload", headers={"X-API-Key": "adm1n"})
    assert r.status_code == 200 and r.json()["model_version"] == "v3"  # the watcher may have been first


def test_server_without_a_model_is_alive_but_not_ready_until_one_is_promoted(
    start_server: StartServer, make_artifact: MakeArtifact, production_model: Path
) -> None:
    production_model.unlink()
    from tests.support.server import run_server, test_settings

    root = production_model.parent.parent
    with run_server(test_settings(root, production_model, reload_poll_s=0.1), wait_ready=False) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/readyz").status_code == 503
        r = httpx.post(server.url + "/v1/predict", files={"image": ("s.png", spot_image(64, 64, (32, 32)))})
        assert r.status_code == 503
        promote(production_model.parent, "v1")
        server.wait_ready(10)


def test_cuda_setting_falls_back_to_the_cpu_where_onnxruntime_has_no_cuda(make_artifact: MakeArtifact) -> None:
    import onnxruntime as ort

    from serving.engine import providers_for

    folder = make_artifact("v1")
    model = load_model(folder, fingerprint(folder), 1, execution_provider="cuda")
    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPU"
    assert model.session.get_providers()[0].startswith(expected)
    assert providers_for("cpu") == ["CPUExecutionProvider"]


@pytest.mark.gpu
def test_cuda_provider_serves_on_the_gpu(make_artifact: MakeArtifact) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu on a GPU machine)")
    folder = make_artifact("v1")
    model = load_model(folder, fingerprint(folder), 1, execution_provider="cuda")
    assert model.session.get_providers()[0] == "CUDAExecutionProvider"
