"""`posewheel demo`: one turn of the whole loop on the embedded synthetic data, measured.

    posewheel demo                 # start Label Studio + API, build or reuse the first model, run the loop
    posewheel demo --keep          # leave the services up afterwards for a person to try
    posewheel demo --traffic 900 --labels 300

Steps: Label Studio and the API server start; `dvc repro` builds the first model when there is none;
`street` traffic goes to /v1/predict; the review queue fills Label Studio; the simulated annotator
corrects the least confident tasks; `dvc repro` exports, retrains, evaluates and promotes; the running
server hot-reloads the new model; a before/after table is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flywheel.pipeline import PipelinePaths, repro, venv_environ
from flywheel.stages.synth import TRAFFIC_SEED_OFFSET
from flywheel.tracking import wandb_environ
from posewheel import artifact
from posewheel.params import load_params
from posewheel.review import Outbox
from posewheel.settings import ProjectSettings


@dataclass
class DemoOptions:
    traffic: int = 900  # enough for `labels` review items at the demo's review policy (see _start_server)
    labels: int = 300
    port: int = 8000
    keep: bool = False
    concurrency: int = 8
    noise_px: float = 1.5
    skip_rate: float = 0.03
    seed: int = 0
    drain_timeout_s: float = 300.0


@dataclass
class DemoReport:
    before_version: str | None = None
    after_version: str | None = None
    served_version: str | None = None
    promoted: bool = False
    reason: str = ""
    labels_used: int = 0
    predictions: int = 0
    queued: int = 0
    minutes: dict[str, float] = field(default_factory=dict)
    metrics_before: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics_after: dict[str, dict[str, float]] = field(default_factory=dict)


class Step:
    """Times a named step of the demo and prints it as it starts and ends."""

    def __init__(self, report: DemoReport):
        self.report = report

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"\n==> {name}", flush=True)
        start = time.monotonic()
        yield
        minutes = (time.monotonic() - start) / 60
        self.report.minutes[name] = round(minutes, 2)
        print(f"    done in {minutes:.1f} min", flush=True)


def _posewheel(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [str(Path(sys.executable).with_name("posewheel")), *args]
    result = subprocess.run(cmd, env=venv_environ(env), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`posewheel {' '.join(args)}` failed with exit code {result.returncode}")


def _start_server(root: Path, port: int, log_path: Path, review_cap: int) -> subprocess.Popen[bytes]:
    # The hourly review cap (default 200) must not stop the demo short of the labels it asks for.
    # How much street traffic scores under the review threshold depends on the first model (one
    # queued 300+ of 900, another 162): a random 30% share fills the rest of the label budget
    # (random picks taught as much as the least confident ones: benchmarks/flywheel_curve.py).
    # Whatever the user set in the environment wins.
    cap = os.environ.get("POSEWHEEL_REVIEW_CAP_PER_HOUR", str(review_cap))
    share = os.environ.get("POSEWHEEL_REVIEW_RANDOM_FRACTION", "0.3")
    env = venv_environ(
        {
            "POSEWHEEL_ROOT": str(root),
            "POSEWHEEL_REVIEW_DRAIN": "true",
            "POSEWHEEL_REVIEW_CAP_PER_HOUR": cap,
            "POSEWHEEL_REVIEW_RANDOM_FRACTION": share,
        }
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("posewheel")), "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(base: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the API server at {base} did not become ready in {timeout_s:.0f} s")


async def _send_traffic(base: str, images: list[Path], concurrency: int) -> tuple[int, int]:
    """POST every image to /v1/predict; returns (answered, queued for review)."""
    limiter = asyncio.Semaphore(concurrency)
    answered = queued = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(path: Path) -> None:
            nonlocal answered, queued
            async with limiter:
                files = {"image": (path.name, path.read_bytes(), "image/jpeg")}
                response = await client.post("/v1/predict", files=files)
                response.raise_for_status()
                answered += 1
                queued += bool(response.json()["review"]["queued"])

        await asyncio.gather(*(one(p) for p in images))
    return answered, queued


def _wait_drained(outbox: Outbox, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while outbox.depth() and time.monotonic() < deadline:
        print(f"    review queue: {outbox.depth()} waiting for Label Studio", flush=True)
        time.sleep(3)
    if outbox.depth():
        raise RuntimeError(f"{outbox.depth()} review items still queued after {timeout_s:.0f} s: is Label Studio up?")


def _wait_served(base: str, version: str, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    served = ""
    while time.monotonic() < deadline:
        served = httpx.get(f"{base}/v1/model", timeout=5).json()["version"]
        if served == version:
            return served
        time.sleep(1)
    raise RuntimeError(f"the server still answers with {served} {timeout_s:.0f} s after promoting {version}")


def run_demo(options: DemoOptions) -> DemoReport:
    settings = ProjectSettings()
    root, paths = settings.root, PipelinePaths.from_settings(settings)
    os.environ.update({k: v for k, v in wandb_environ(root).items() if k not in os.environ})
    report = DemoReport()
    step = Step(report)
    base = f"http://127.0.0.1:{options.port}"
    server: subprocess.Popen[bytes] | None = None
    started_labelstudio = False
    try:
        with step("start Label Studio"):
            from labeling import labelstudio_process

            if not labelstudio_process.status().healthy:  # reuse a running (or external) Label Studio
                _posewheel("labelstudio", "start")
                started_labelstudio = True
            _posewheel("labels", "setup")
        if not artifact.production_dir(paths.models).exists():
            with step("build the first model (dvc repro)"):
                if repro(root).returncode != 0:
                    raise RuntimeError("the first `dvc repro` failed; see its output above")
        report.before_version = artifact.production_version(paths.models)
        with step("start the API server"):
            server = _start_server(root, options.port, settings.var_dir / "logs" / "serve.log", options.labels)
            _wait_ready(base)
        with step(f"send {options.traffic} street images to /v1/predict"):
            from posewheel.synth import generate

            traffic_dir = settings.var_dir / "traffic" / f"street-{options.seed}-{options.traffic}"
            if not traffic_dir.exists():
                seed = options.seed + TRAFFIC_SEED_OFFSET
                truth = settings.truth_dir
                generate(domain="street", count=options.traffic, seed=seed, out=traffic_dir, truth_dir=truth)
            images = sorted((traffic_dir / "images").iterdir())
            report.predictions, report.queued = asyncio.run(_send_traffic(base, images, options.concurrency))
            print(f"    {report.predictions} answered, {report.queued} queued for review", flush=True)
        with step("review queue drains into Label Studio"):
            _wait_drained(Outbox(settings.outbox_dir), options.drain_timeout_s)
        with step(f"simulated annotator corrects up to {options.labels} tasks"):
            annotator = {"--limit": options.labels, "--noise-px": options.noise_px, "--skip-rate": options.skip_rate}
            _posewheel("labels", "annotate", *(str(part) for item in annotator.items() for part in item))
        with step("dvc repro: export, retrain, evaluate, promote"):
            if repro(root).returncode != 0:
                raise RuntimeError("`dvc repro` failed; see its output above")
        decision = json.loads(paths.promotion.read_text(encoding="utf-8"))
        report.promoted, report.reason = bool(decision["promoted"]), str(decision["reason"])
        report.labels_used = int(decision["feedback_labels"])
        report.metrics_after = decision["candidate"]
        report.metrics_before = decision["production"] or {}
        report.after_version = decision["production_version_after"]
        with step("the running server picks up the production model"):
            report.served_version = _wait_served(base, str(report.after_version))
    finally:
        if server is not None and not options.keep:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if started_labelstudio and not options.keep:
            with contextlib.suppress(RuntimeError):
                _posewheel("labelstudio", "stop")
    print(format_report(report, options, root))
    return report


def labelstudio_url() -> str:
    from labeling.settings import LabelStudioSettings

    return LabelStudioSettings().base_url


def training_budget(root: Path) -> str:
    """The demo's (lighter than the benchmarks') training budget, from params.yaml, as the train stage reads it."""
    from training.config import TrainConfig

    try:
        params = load_params(root)
        first, fine = TrainConfig.from_params(params), TrainConfig.from_params(params, fine_tune=True)
    except (OSError, ValueError):
        return "params.yaml unreadable"
    return (
        f"first model {first.max_minutes:g} min, each fine-tune {fine.max_minutes:g} min of training "
        "(params.yaml; benchmarks/train_accuracy.py trains the first model for 20)"
    )


def format_report(report: DemoReport, options: DemoOptions, root: Path) -> str:
    def ap(metrics: dict[str, dict[str, float]], holdout: str) -> str:
        return f"{metrics[holdout]['oks_ap']:.3f}" if holdout in metrics else "  -  "

    b, a = report.metrics_before, report.metrics_after
    lines = [
        "",
        "Posewheel demo: one turn of the flywheel",
        f"  model            before {report.before_version}  ->  after {report.after_version}"
        f"  ({'promoted' if report.promoted else 'not promoted'}: {report.reason})",
        f"  studio OKS AP    {ap(b, 'studio')}  ->  {ap(a, 'studio')}",
        f"  street OKS AP    {ap(b, 'street')}  ->  {ap(a, 'street')}",
        f"  labels used      {report.labels_used} corrected street labels "
        f"({report.predictions} predictions, {report.queued} queued for review)",
        f"  server answers   {report.served_version}",
        f"  parameters       {training_budget(root)}",
        f"  minutes          {sum(report.minutes.values()):.1f} in all: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report.minutes.items()),
        "",
        "Where to look:",
        f"  Label Studio     {labelstudio_url()} (login: var/secrets/labelstudio.json)",
        f"  API docs         http://127.0.0.1:{options.port}/docs",
        f"  demo page        http://127.0.0.1:{options.port}/",
        f"  W&B runs         {root / 'wandb'} (offline; `wandb sync wandb/offline-run-*` uploads them)",
        "  metrics          dvc metrics show; dvc plots show; posewheel flywheel status",
    ]
    if not options.keep:
        lines.append("  (services stopped; run `posewheel demo --keep` to leave them up)")
    return "\n".join(lines)
