"""Serving under load: posewheel's server against its own offline limit, a naive torch server and LitServe.

    .venv/bin/python benchmarks/serve_load.py                    # 30 s per level, about 9 minutes
    .venv/bin/python benchmarks/serve_load.py --duration 5       # a quick look
    .venv/bin/python benchmarks/serve_load.py --model models/production   # another artifact
    .venv/bin/python benchmarks/serve_load.py --posewheel-workers 2 --lanes 1   # posewheel as 2 processes

All targets serve the same artifact (by default the params.yaml default network, MoveNet Lightning,
with its pretrained weights: what a fresh install serves) to the same JPEG street images with their
person box, over real HTTP on 127.0.0.1. Each server runs in its best configuration for this
machine: LitServe with `--workers` inference processes (one per core, one ONNX Runtime thread each:
its API process balances requests over them), posewheel with `--posewheel-workers` processes of
`--lanes` inference lanes each (default one process, one lane per core, one thread per lane). The
load generator (benchmarks/serve_client.py, raw keep-alive connections, ~0.1 ms of CPU per request)
is a separate process; the CPU each side used is reported, since both share this machine's cores.

Prints one JSON line per figure:
  idle_cpu                 per server, CPU it takes with no request (% of a core); while one target is
                           loaded the other servers are paused (SIGSTOP), so their idle loops take nothing
  offline_limit            engine without HTTP: decode, crop, batched ONNX inference, decoding (img/s)
  single_image_latency     the same pipeline for one image at a time (ms)
  load                     per target/format/concurrency: req/s, p50/p95/p99 ms, errors, CPU split
  server_cpu_vs_engine     per target/format at concurrency 32: its CPU a request over the offline engine's a picture;
                           what the server adds (HTTP, JSON, its allocator: session 55 caught a 1.20x that was 1.05x)
  goal                     each goal of the issue with its measured ratio and pass/fail
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script, sys.path[0] is benchmarks/

from tests.support.figures import emit
from tests.support.waiting import answers_ready, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CONCURRENCY = (1, 8, 32)


def build_artifact(folder: Path) -> Path:
    """Export the default network (params.yaml train.config) with its pretrained weights."""
    from posewheel.params import load_params
    from training.pretrained import export_pretrained

    return export_pretrained(str(load_params(ROOT / "params.yaml")["train"]["config"]), folder)


def street_images(count: int, size: int) -> list[tuple[bytes, list[float] | None]]:
    """JPEG street scenes from the synthetic generator with their person box [x, y, w, h]."""
    from posewheel.synth.writer import iter_encoded

    return [(e.data, [float(v) for v in e.bbox]) for e in iter_encoded("street", count, seed=7, size=size)]


def scene_images(count: int, size: int, persons: tuple[int, int]) -> list[tuple[bytes, list[float] | None]]:
    """JPEG studio scenes of `persons` people each, sent without boxes: the server's detector finds them."""
    from posewheel.synth.writer import iter_encoded

    return [(e.data, None) for e in iter_encoded("studio", count, seed=7, size=size, persons=persons)]


def bodies(images: list[tuple[bytes, list[float] | None]], fmt: str) -> list[tuple[str, bytes]]:
    out = []
    for data, box in images:
        if fmt == "json":
            fields = {"image_base64": base64.b64encode(data).decode()} | ({"boxes": [box]} if box else {})
            out.append(("application/json", json.dumps(fields).encode()))
        else:
            boundary = "posewheelbench"
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="i.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n".encode()
                + data
                + b"\r\n",
                f'--{boundary}\r\nContent-Disposition: form-data; name="boxes"\r\n\r\n{json.dumps([box])}\r\n'.encode()
                if box
                else b"",
                f"--{boundary}--\r\n".encode(),
            ]
            out.append((f"multipart/form-data; boundary={boundary}", b"".join(parts)))
    return out


class Offline:
    """The engine without HTTP, in this process: decode, crop, batched ONNX inference, decoding (and, for an image
    sent without boxes, the person detector before and one answer per confirmed person after, as served).

    Throughput is measured the way the server runs the engine at its best on this machine, so that
    it is a fair limit: `threads` lanes, each a thread that decodes and crops a batch then infers it
    on a one-thread ONNX Runtime session (ONNX Runtime releases the GIL, so lanes run in parallel).
    Single-image latency is one image at a time through the whole pipeline, inferred with all
    `threads` ONNX Runtime threads (the fastest one image can go).
    """

    def __init__(
        self, artifact: Path, images: list[tuple[bytes, list[float] | None]], batch: int, threads: int
    ) -> None:
        from serving.engine import load_model
        from serving.reload import fingerprint

        self.model = load_model(artifact, fingerprint(artifact), threads)
        self.lane_model = load_model(artifact, fingerprint(artifact), 1)
        self.images, self.batch, self.threads = images, batch, threads
        self.done, self.seconds, self.cpu_s, self.single_s = 0, 0.0, 0.0, list[float]()
        self.answer(images[:batch])  # warm-up
        self.answer(images[:batch], self.lane_model)

    def answer(self, chunk: list[tuple[bytes, list[float] | None]], model: Any = None) -> None:
        """Decode, crop, one batched inference and decoding (`ServedModel.answer`); an image without a box goes
        through `model`'s person detector, its crowded persons read alone (`ServedModel.find_people`), and gets
        one answer per confirmed person, as the server does, so that the limit holds the same work as a served
        request."""
        from serving.images import decode_image, parse_boxes

        model = model or self.model
        prepared = []
        for data, box in chunk:
            decoded = decode_image(data, 40_000_000)
            if box is None:
                prepared.append(model.find_people(decoded.image))
            else:
                boxes = parse_boxes([box], decoded.width, decoded.height, 64)
                prepared.append(model.read_boxes(decoded.image, boxes))
        model.answer(prepared)

    def lane(self, deadline: float, first: int) -> int:
        """One lane until `deadline`: batches of images from `first` on; returns the images it did."""
        done = 0
        while time.perf_counter() < deadline:
            chunk = [self.images[(first + done + i) % len(self.images)] for i in range(self.batch)]
            self.answer(chunk, self.lane_model)
            done += self.batch
        return done

    def run_round(self, seconds: float) -> None:
        """Half the time batched throughput on `threads` lanes, half single-image latency."""
        from concurrent.futures import ThreadPoolExecutor

        start, cpu0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(self.threads) as pool:
            lanes = [pool.submit(self.lane, start + seconds / 2, 7 * i) for i in range(self.threads)]
            self.done += sum(f.result() for f in lanes)
        self.seconds += time.perf_counter() - start
        self.cpu_s += time.process_time() - cpu0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            t0 = time.perf_counter()
            self.answer([self.images[len(self.single_s) % len(self.images)]])
            self.single_s.append(time.perf_counter() - t0)

    @property
    def limit(self) -> float:
        return self.done / self.seconds

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_s / max(self.done, 1)

    def single_ms(self, q: float) -> float:
        return float(np.percentile(np.array(self.single_s) * 1000, q))


def start(cmd: list[str], env: dict[str, str], ready_url: str, timeout_s: float = 120.0) -> subprocess.Popen[bytes]:
    log = tempfile.NamedTemporaryFile(prefix="serve-bench-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}; see {log.name}")
        return answers_ready(ready_url, path="")

    try:
        wait_for(ready, timeout_s, f"{cmd[:3]} at {ready_url} (log {log.name})", poll_s=0.3)
    except AssertionError:
        proc.kill()
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.terminate()
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def only_running(active: subprocess.Popen[bytes] | None, servers: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Pause (SIGSTOP) every server in `servers` but `active`, with its children, until the block ends.

    A server waiting for requests is not free: LitServe's worker processes poll their queues (about 30%
    of a core here, `idle_cpu`), which the target under test would otherwise lose. Between rounds no
    request is in flight, so a paused server loses nothing and resumes where it was.
    """
    paused: list[psutil.Process] = []
    try:
        for proc in servers:
            if proc is not active:
                root = psutil.Process(proc.pid)
                for p in [root, *root.children(recursive=True)]:
                    p.suspend()
                    paused.append(p)
        deadline = time.monotonic() + 2.0  # SIGSTOP is delivered asynchronously: wait until every one has stopped
        while any(_running(p) for p in paused) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield
    finally:
        for p in paused:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.resume()


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return False


def idle_cpu_pct(proc: subprocess.Popen[bytes], seconds: float = 3.0) -> float:
    """CPU the server tree uses with no request, in % of a core."""
    before = tree_cpu(proc.pid)
    time.sleep(seconds)
    return 100 * (tree_cpu(proc.pid) - before) / seconds


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children (alive ones)."""
    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Target:
    name: str
    fmt: str
    url: str
    proc: subprocess.Popen[bytes]
    bodies: Path
    completed: int = 0
    completed_all: int = 0  # including warm-up and the edges of the window, for CPU per request
    window_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    wall_s: float = 0.0

    def run_round(self, concurrency: int, seconds: float, warmup_s: float, nice: int) -> None:
        """One client process for `seconds` (after `warmup_s`), adding up its results and CPU."""
        server_cpu0, wall0 = tree_cpu(self.proc.pid), time.perf_counter()
        client = subprocess.run(
            [
                PY,
                str(ROOT / "benchmarks" / "serve_client.py"),
                self.url,
                str(self.bodies),
                str(concurrency),
                str(seconds),
                str(warmup_s),
                str(nice),
            ],
            stdout=subprocess.PIPE,
            check=True,
        )
        self.wall_s += time.perf_counter() - wall0
        self.server_cpu_s += tree_cpu(self.proc.pid) - server_cpu0
        result = json.loads(client.stdout)
        self.client_cpu_s += result["client_cpu_s"]
        self.completed += result["completed"]
        self.completed_all += result["completed_all"]
        self.window_s += result["window_s"]
        self.latencies_s += result["latencies_s"]
        for key, n in result["errors"].items():
            self.errors[key] = self.errors.get(key, 0) + n

    def report(self, concurrency: int) -> dict[str, Any]:
        lat = np.array(self.latencies_s or [0.0]) * 1000
        row = {
            "target": self.name,
            "format": self.fmt,
            "concurrency": concurrency,
            "throughput_rps": round(self.completed / self.window_s, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "server_cpu_pct": round(100 * self.server_cpu_s / self.wall_s, 1),
            "server_cpu_ms_per_request": round(1000 * self.server_cpu_s / max(1, self.completed_all), 2),
            "client_cpu_pct": round(100 * self.client_cpu_s / self.wall_s, 1),
        }
        emit("load", **row)
        self.completed, self.completed_all, self.window_s, self.latencies_s, self.errors = 0, 0, 0.0, [], {}
        self.server_cpu_s = self.client_cpu_s = self.wall_s = 0.0
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="timed seconds per target and concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="the duration is split into this many interleaved rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="untimed seconds at the start of each round")
    parser.add_argument("--model", type=Path, help="artifact folder (default: the pretrained default network)")
    parser.add_argument("--batch", type=int, default=16, help="max batch size for posewheel, LitServe and offline")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="ONNX Runtime threads in all")
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="LitServe inference processes (each gets threads / workers)",
    )
    parser.add_argument("--posewheel-workers", type=int, default=1, help="posewheel server processes")
    parser.add_argument("--lanes", type=int, default=0, help="posewheel inference lanes per process (0: auto)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--client-nice", type=int, default=10, help="niceness of the load generator process")
    parser.add_argument("--size", type=int, default=256, help="image side, pixels")
    parser.add_argument(
        "--persons",
        help="LO-HI: studio scenes of LO to HI people sent WITHOUT boxes (the artifact's detector finds them); "
        "default: one-person street images with their box",
    )
    parser.add_argument("--targets", default="posewheel,litserve,naive", help="comma-separated subset")
    parser.add_argument("--formats", default="json,multipart", help="posewheel request formats to load")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    artifact = args.model.resolve() if args.model else build_artifact(work / "models" / "bench")
    if args.persons:
        lo, _, hi = args.persons.partition("-")
        images = scene_images(args.images, args.size, (int(lo), int(hi or lo)))
    else:
        images = street_images(args.images, args.size)
    body_files = {}
    for fmt in ("json", "multipart"):
        body_files[fmt] = work / f"bodies-{fmt}.pkl"
        body_files[fmt].write_bytes(pickle.dumps(bodies(images, fmt)))
    emit(
        "setup",
        artifact=str(artifact),
        images=len(images),
        size=args.size,
        persons=args.persons,
        cpus=len(os.sched_getaffinity(0)),
        duration_s=args.duration,
        rounds=args.rounds,
        batch=args.batch,
        threads=args.threads,
        workers=args.workers,
        posewheel_workers=args.posewheel_workers,
        lanes=args.lanes,
        client_nice=args.client_nice,
        loadavg_1m=os.getloadavg()[0],
    )

    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSEWHEEL_ROOT": str(work), "OMP_NUM_THREADS": str(args.threads)}
    wanted = args.targets.split(",")
    per_worker = max(1, args.threads // args.workers)
    targets: list[Target] = []
    try:
        if "posewheel" in wanted:
            port = free_port()
            server_env = {
                **env,
                "POSEWHEEL_MAX_BATCH_SIZE": str(args.batch),
                "POSEWHEEL_WORKERS": str(args.posewheel_workers),
                "POSEWHEEL_INFERENCE_LANES": str(args.lanes),
            }
            proc = start(
                [str(Path(PY).parent / "posewheel"), "serve", "--model", str(artifact), "--port", str(port)],
                server_env,
                f"http://127.0.0.1:{port}/readyz",
            )
            # /readyz answered by one worker: let the others load too
            time.sleep(2.0 if args.posewheel_workers > 1 else 0.0)
            for fmt in args.formats.split(","):
                targets.append(Target("posewheel", fmt, f"http://127.0.0.1:{port}/v1/predict", proc, body_files[fmt]))
        if "litserve" in wanted:
            port = free_port()
            cmd = [
                PY,
                str(ROOT / "benchmarks" / "serve_litserve.py"),
                str(artifact),
                str(port),
                str(args.batch),
                "0.002",
                str(per_worker),
                str(args.workers),
            ]
            proc = start(cmd, env, f"http://127.0.0.1:{port}/health")
            targets.append(Target("litserve", "json", f"http://127.0.0.1:{port}/predict", proc, body_files["json"]))
        if "naive" in wanted:
            port = free_port()
            proc = start(
                [PY, str(ROOT / "benchmarks" / "serve_naive.py"), str(artifact), str(port)],
                env,
                f"http://127.0.0.1:{port}/docs",
            )
            targets.append(
                Target("naive-torch", "json", f"http://127.0.0.1:{port}/v1/predict", proc, body_files["json"])
            )
        servers = list({id(t.proc): t.proc for t in targets}.values())
        for target in {id(t.proc): t for t in targets}.values():
            with only_running(target.proc, servers):
                emit("idle_cpu", target=target.name, pct=round(idle_cpu_pct(target.proc), 1))
        offline = Offline(artifact, images, args.batch, args.threads)
        round_s = args.duration / args.rounds
        results: dict[int, dict[str, dict[str, Any]]] = {}
        for c in CONCURRENCY:
            for r in range(args.rounds):
                # rotate the order so that drifting load from other processes hits every target alike
                for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                    with only_running(target.proc, servers):  # the others' idle loops take no CPU from it
                        target.run_round(c, round_s, args.warmup, args.client_nice)
                with only_running(None, servers):
                    offline.run_round(round_s)
            results[c] = {f"{t.name}-{t.fmt}": t.report(c) for t in targets}
        emit(
            "offline_limit",
            value=round(offline.limit, 1),
            unit="img/s",
            batch=args.batch,
            threads=args.threads,
            cpu_ms_per_image=round(offline.cpu_ms_per_image, 2),
        )
        emit(
            "single_image_latency",
            p50_ms=round(offline.single_ms(50), 2),
            p99_ms=round(offline.single_ms(99), 2),
            n=len(offline.single_s),
        )
    finally:
        for proc in {id(t.proc): t.proc for t in targets}.values():
            stop(proc)
    goals(results, offline)


def goals(results: dict[int, dict[str, dict[str, Any]]], offline: Offline) -> None:
    top = max(CONCURRENCY)
    engine_ms = offline.cpu_ms_per_image
    for row in results[top].values():
        emit(
            "server_cpu_vs_engine",
            target=row["target"],
            format=row["format"],
            concurrency=top,
            ratio=round(row["server_cpu_ms_per_request"] / engine_ms, 3),
            server_cpu_ms_per_request=row["server_cpu_ms_per_request"],
            engine_cpu_ms_per_image=round(engine_ms, 2),
        )
    if any("posewheel-json" not in results[c] for c in CONCURRENCY):
        return
    ours = {c: results[c]["posewheel-json"] for c in CONCURRENCY}
    rps = ours[top]["throughput_rps"]
    emit(
        "goal",
        name="c32_vs_offline_limit",
        ratio=round(rps / offline.limit, 3),
        need=">= 0.8",
        passed=rps >= 0.8 * offline.limit,
    )
    if "litserve-json" in results[top]:
        ratio = rps / max(results[top]["litserve-json"]["throughput_rps"], 1e-9)
        emit("goal", name="c32_vs_litserve", ratio=round(ratio, 3), need=">= 1.2", passed=ratio >= 1.2)  # issue #13
    p99 = ours[1]["p99_ms"]
    emit(
        "goal",
        name="c1_p99_vs_engine_single_image_p50",
        ratio=round(p99 / offline.single_ms(50), 3),
        need="< 1.5",
        passed=p99 < 1.5 * offline.single_ms(50),
    )
    emit(
        "goal",
        name="c1_p99_vs_engine_single_image_p99",
        ratio=round(p99 / offline.single_ms(99), 3),
        need="< 1.5",
        passed=p99 < 1.5 * offline.single_ms(99),
    )
    errors = sum(row["errors"] for c in CONCURRENCY for key, row in results[c].items() if key.startswith("posewheel"))
    emit("goal", name="zero_errors", errors=errors, passed=errors == 0)


if __name__ == "__main__":
    main()
