"""`posewheel demo`: one turn of the whole loop on the embedded synthetic data, measured.

    posewheel demo                 # start Label Studio + API, build or reuse the first model, run the loop
    posewheel demo --keep          # leave the services up afterwards for a person to try
    posewheel demo --traffic 900 --labels 300

Steps: Label Studio and the API server start; `dvc repro` builds the first model when there is none;
`street` traffic goes to /v1/predict: scenes of several people (`synth.scene_persons`, empty ones
included) sent without boxes, so the server's detector finds the people; the review queue fills
Label Studio; the simulated annotator corrects open tasks in the project's order (at random by
default, as measured in docs/flywheel.md), fixing, adding and deleting persons, up to `labels`
persons; `dvc repro` exports, retrains, evaluates and promotes; the
running server hot-reloads the new model; a before/after table is printed, the street scenes' OKS AP
without boxes in it.

The terminal shows one line per step (a spinner and bars while it runs); everything else, the
server's, DVC's and training's output included, goes to `var/log/demo-<UTC time>.log`, which the
summary names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flywheel.pipeline import (
    AGREEMENT,
    ONE_PERSON_AGREEMENT,
    REAL_PHOTOS,
    SCENES_HOLDOUT,
    SMALL_PEOPLE_AGREEMENT,
    SMALL_PEOPLE_SERVED_AGREEMENT,
    PipelinePaths,
    dvc_command,
    pipeline_lock,
    venv_environ,
)
from flywheel.stages.synth import TRAFFIC_SEED_OFFSET, scene_persons
from flywheel.tracking import wandb_environ
from posewheel import artifact, atomic, console
from posewheel.console import terminal
from posewheel.params import load_params
from posewheel.review import Outbox
from posewheel.settings import ProjectSettings

# metrics the evaluate stage scores and promote does not re-score: the first model's come from its card
UNSCORED = (SCENES_HOLDOUT,)


@dataclass
class DemoOptions:
    traffic: int = 900  # street scenes; enough for `labels` reviewed persons at the demo's review policy
    labels: int = 300  # persons the simulated annotator labels at most (a label is a person)
    scenes: bool = True  # traffic of several people per image, no boxes; False: one person filling each image
    loops: int = 1  # turns of the wheel, each on fresh traffic (seed + turn) with up to `labels` new labels
    port: int = 8000
    keep: bool = False
    concurrency: int = 8
    noise_px: float = 1.5
    skip_rate: float = 0.03
    seed: int = 0
    drain_timeout_s: float = 300.0


@dataclass
class Turn:
    """One turn of the wheel: its traffic, the labels so far, the candidate's metrics and the decision."""

    number: int
    predictions: int
    queued: int
    labels: int  # corrected persons in the feedback set after this turn (all turns so far)
    images: int  # images they are in
    candidate: dict[str, dict[str, float]]
    promoted: bool
    reason: str
    production: str  # the production version after the turn
    production_metrics: dict[str, dict[str, float]]  # the production before the turn, re-evaluated by promote
    minutes: float
    candidate_version: str = ""  # the model this turn trained, promoted or not


@dataclass
class DemoReport:
    before_version: str | None = None
    after_version: str | None = None
    served_version: str | None = None
    promoted: bool = False
    reason: str = ""
    labels_used: int = 0
    labeled_images: int = 0
    persons: tuple[int, int] | None = None  # people per traffic image (lo, hi); None: one filling the image
    predictions: int = 0
    queued: int = 0
    minutes: dict[str, float] = field(default_factory=dict)
    metrics_before: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics_after: dict[str, dict[str, float]] = field(default_factory=dict)
    log_file: Path | None = None  # var/log/demo-<time>.log: everything the terminal does not show
    turns: list[Turn] = field(default_factory=list)


class Step:
    """A named step of the demo on the terminal (console.stage), its minutes kept for the report."""

    def __init__(self, report: DemoReport):
        self.report = report

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[console.Stage]:
        start = time.monotonic()
        with console.stage(name) as stage:
            yield stage
        self.report.minutes[name] = round((time.monotonic() - start) / 60, 2)


def _posewheel(log_file: Path, *args: str) -> None:
    cmd = [str(Path(sys.executable).with_name("posewheel")), *args]
    code = console.run_logged(cmd, log_file, env=venv_environ())
    if code != 0:
        raise RuntimeError(f"`posewheel {' '.join(args)}` failed with exit code {code}; its output is in {log_file}")


def _repro(root: Path, log_file: Path, stage: console.Stage, train_minutes: float) -> None:
    """`dvc repro` with its output in the log; the step's line names the DVC stage running, with a bar of
    the training budget (wall-clock minutes, params.yaml) during `train`."""
    training: tuple[console.Bar, float] | None = None

    def follow(lines: list[str]) -> None:
        nonlocal training
        for line in lines:
            running = re.match(r"Running stage '([^']+)'", line)
            if running is None:
                continue
            stage.status(f"dvc stage {running[1]}")
            if training is not None:
                training[0].finish()
                training = None
            if running[1] == "train":
                bar = stage.bar("training", total=train_minutes, unit="min")
                training = (bar, time.monotonic())
        if training is not None:
            bar, start = training
            bar.update(min(train_minutes, (time.monotonic() - start) / 60))

    with pipeline_lock(PipelinePaths(root)):  # one pipeline run at a time, as `flywheel repro` and `watch` hold it
        code = console.run_logged(dvc_command("repro"), log_file, cwd=root, env=venv_environ(), on_output=follow)
    if code != 0:
        raise RuntimeError(f"`dvc repro` failed with exit code {code}; its output is in {log_file}")


def start_server(root: Path, port: int, log_path: Path, review_cap: int) -> subprocess.Popen[bytes]:
    """`posewheel serve` for the project at `root`, its output appended to `log_path` (never the terminal)."""
    # The hourly review cap (default 200) must not stop any turn short of fresh tasks, and
    # the demo's traffic is a burst of a minute, which the server's automatic share (the cap over an
    # hour's traffic) would read as a busy hour. So the demo fixes the share: the rule is labels per
    # turn / (people per scene x scenes per turn) = 300 / (2 x 900) = 0.17, and 0.3 leaves room for
    # skips, empty scenes and the budget's stop (random picks taught as much as the least confident
    # ones: docs/flywheel.md). Whatever the user set in the environment wins.
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


def wait_ready(base: str, timeout_s: float = 120.0) -> None:
    """Wait until the server at `base` answers /readyz with 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the API server at {base} did not become ready in {timeout_s:.0f} s")


async def send_traffic(
    base: str, images: list[Path], concurrency: int, on_answer: Callable[[], None] = lambda: None
) -> tuple[int, int]:
    """POST every image to /v1/predict (`on_answer` after each answer); returns (answered, queued for review)."""
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
                on_answer()

        await asyncio.gather(*(one(p) for p in images))
    return answered, queued


def _wait_drained(outbox: Outbox, timeout_s: float, stage: console.Stage) -> None:
    deadline = time.monotonic() + timeout_s
    queued = outbox.depth()
    bar = stage.bar("sent to Label Studio", total=queued, unit="tasks")
    while outbox.depth() and time.monotonic() < deadline:
        bar.update(queued - outbox.depth())
        time.sleep(1)
    bar.update(queued - outbox.depth())
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
    log_file = console.start_log(settings.var_dir / "log", "demo")
    report = DemoReport(log_file=log_file)
    terminal.print(f"[bold]Posewheel demo[/] [dim]· full log: {_shown(log_file, root)}[/]", soft_wrap=True)
    step = Step(report)
    base = f"http://127.0.0.1:{options.port}"
    server: subprocess.Popen[bytes] | None = None
    started_labelstudio = False
    try:
        with step("start Label Studio"):
            from labeling import labelstudio_process

            if not labelstudio_process.status().healthy:  # reuse a running (or external) Label Studio
                _posewheel(log_file, "labelstudio", "start")
                started_labelstudio = True
            _posewheel(log_file, "labels", "setup")
        first, fine_tune = train_minutes(root)
        if not artifact.production_dir(paths.models).exists():
            with step("build the first model (dvc repro)") as stage:
                _repro(root, log_file, stage, first)
        report.before_version = artifact.production_version(paths.models)
        # scored by the evaluate stage that made the first model; promote re-scores studio, street and real photos
        informative = {k: v for k, v in artifact.load_card(paths.production).metrics.items() if k in UNSCORED}
        report.persons = scene_persons(load_params(root)["synth"]) if options.scenes else None
        with step("start the API server") as stage:
            # A demo's turns fall within one hour: a cap of the labels wanted (300 a turn) let turn 1's
            # picks fill it and left turn 3 of a 3-turn run no fresh task. The share sizes the queue.
            server = start_server(root, options.port, log_file, options.traffic * options.loops)
            wait_ready(base)
            stage.result(f"{base}, model {report.before_version}")
        for number in range(1, options.loops + 1):
            turn = run_turn(number, options, report, step, base, fine_tune)
            report.turns.append(turn)
            if number == 1:
                report.metrics_before = {**turn.production_metrics, **informative}
        summarise_turns(report)
    except Exception:
        # The step's own output is in the log: show its end here, so the failure can be read without opening it.
        terminal.print(f"\n[dim]last lines of {_shown(log_file, root)}:[/]")
        terminal.print(console.tail(log_file), markup=False, soft_wrap=True)
        raise
    finally:
        if server is not None and not options.keep:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if started_labelstudio and not options.keep:
            with contextlib.suppress(RuntimeError):
                _posewheel(log_file, "labelstudio", "stop")
    terminal.print(format_report(report, options, root), markup=False, soft_wrap=True)
    atomic.write_json(log_file.with_suffix(".json"), report_record(report))
    return report


def report_record(report: DemoReport) -> dict[str, object]:
    """The report as JSON (var/log/demo-<time>.json, beside the log): what benchmarks/flywheel_turns.py reads."""
    record = dataclasses.asdict(report)
    record["log_file"] = str(report.log_file) if report.log_file else None
    return record


def run_turn(number: int, options: DemoOptions, report: DemoReport, step: Step, base: str, minutes: float) -> Turn:
    """Traffic, review, labels, `dvc repro` and the hot swap, on fresh traffic (seed + number - 1)."""
    settings = ProjectSettings()
    root, paths, log_file = settings.root, PipelinePaths.from_settings(settings), report.log_file
    assert log_file is not None
    prefix = f"turn {number}/{options.loops}: " if options.loops > 1 else ""
    started = time.monotonic()
    with step(f"{prefix}send {options.traffic} {traffic_kind(report.persons)} to /v1/predict") as stage:
        from posewheel.synth import generate

        seed, persons = options.seed + number - 1, report.persons
        people = "" if persons is None else f"-{persons[0]}-{persons[1]}"
        traffic_dir = settings.var_dir / "traffic" / f"street-{seed}-{options.traffic}{people}"
        if not traffic_dir.exists():
            stage.status("generating the street images")
            truth = settings.truth_dir
            generate(
                "street", options.traffic, seed + TRAFFIC_SEED_OFFSET, traffic_dir, truth_dir=truth, persons=persons
            )
        images = sorted((traffic_dir / "images").iterdir())
        answers = stage.bar("answered", total=len(images), unit="images")
        predictions, queued = asyncio.run(send_traffic(base, images, options.concurrency, on_answer=answers.advance))
        stage.result(f"{predictions} answered, {queued} queued for review")
    with step(f"{prefix}review queue drains into Label Studio") as stage:
        _wait_drained(Outbox(settings.outbox_dir), options.drain_timeout_s, stage)
    with step(f"{prefix}simulated annotator labels up to {options.labels} persons"):
        annotator = {"--person-limit": options.labels, "--noise-px": options.noise_px, "--skip-rate": options.skip_rate}
        _posewheel(log_file, "labels", "annotate", *(str(part) for item in annotator.items() for part in item))
    with step(f"{prefix}dvc repro: export, retrain, evaluate, promote") as stage:
        _repro(root, log_file, stage, minutes)
    decision = json.loads(paths.promotion.read_text(encoding="utf-8"))
    version = str(decision["production_version_after"])
    with step(f"{prefix}the running server picks up the production model") as stage:
        report.served_version = _wait_served(base, version)
        stage.result(report.served_version)
    return Turn(
        number=number,
        predictions=predictions,
        queued=queued,
        labels=int(decision["feedback_labels"]),
        images=feedback_images(paths),
        candidate=decision["candidate"],
        promoted=bool(decision["promoted"]),
        reason=str(decision["reason"]),
        production=version,
        production_metrics=decision["production"] or {},
        minutes=round((time.monotonic() - started) / 60, 2),
        candidate_version=str(decision["candidate_version"]),
    )


def summarise_turns(report: DemoReport) -> None:
    """The report's totals and its after column from its turns. One turn: the candidate, promoted or not,
    with the rule's reason. Several: the production model they end with (the last promoted candidate, or
    the first model when none was), and the turns that promoted."""
    turns, last = report.turns, report.turns[-1]
    report.promoted = any(t.promoted for t in turns)
    report.labels_used, report.labeled_images = last.labels, last.images
    report.predictions = sum(t.predictions for t in turns)
    report.queued = sum(t.queued for t in turns)
    report.after_version = last.production
    if len(turns) == 1:
        report.metrics_after, report.reason = last.candidate, last.reason
        return
    kept = [t for t in turns if t.promoted]
    report.metrics_after = kept[-1].candidate if kept else report.metrics_before
    report.reason = f"in turn {', '.join(str(t.number) for t in kept) or 'none'} of {len(turns)}"
    if not last.promoted:
        report.reason += f"; turn {last.number} not: {last.reason}"


def traffic_kind(persons: tuple[int, int] | None) -> str:
    if persons is None:
        return "street images (one person each, no boxes)"
    return "street scenes ({}-{} people, no boxes)".format(*persons)


def feedback_images(paths: PipelinePaths) -> int:
    """Images in the exported feedback set (each holds zero or more labeled persons)."""
    from posewheel.dataset import ANNOTATIONS_FILE

    ann = paths.feedback / ANNOTATIONS_FILE
    return len(json.loads(ann.read_text(encoding="utf-8"))["images"]) if ann.is_file() else 0


def _shown(path: Path, root: Path) -> str:
    """`path` relative to the project when it is inside it (shorter to read), else as is."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def labelstudio_url() -> str:
    from labeling.settings import LabelStudioSettings

    return LabelStudioSettings().base_url


def train_minutes(root: Path) -> tuple[float, float]:
    """Wall-clock training budgets from params.yaml, as the train stage reads them: (first model, each fine-tune)."""
    from training.config import TrainConfig

    params = load_params(root)
    return TrainConfig.from_params(params).max_minutes, TrainConfig.from_params(params, fine_tune=True).max_minutes


def training_budget(root: Path) -> str:
    """The demo's (lighter than the benchmarks') training budget, from params.yaml, as the train stage reads it."""
    try:
        first, fine = train_minutes(root)
    except (OSError, ValueError):
        return "params.yaml unreadable"
    return (
        f"first model {first:g} min, each fine-tune {fine:g} min of training "
        "(params.yaml; benchmarks/train_accuracy.py trains the first model for 20)"
    )


def format_report(report: DemoReport, options: DemoOptions, root: Path) -> str:
    def ap(metrics: dict[str, dict[str, float]], holdout: str, key: str = "oks_ap") -> str:
        return f"{metrics[holdout][key]:.3f}" if key in metrics.get(holdout, {}) else "  -  "

    b, a = report.metrics_before, report.metrics_after
    scene_people = "{}-{}".format(*scene_persons(load_params(root)["synth"]))
    turns = len(report.turns)
    lines = [
        "",
        f"Posewheel demo: {'one turn' if turns <= 1 else f'{turns} turns'} of the flywheel",
        f"  model            before {report.before_version}  ->  after {report.after_version}"
        f"  ({'promoted' if report.promoted else 'not promoted'}: {report.reason})",
        f"  studio OKS AP    {ap(b, 'studio')}  ->  {ap(a, 'studio')}",
        f"  street OKS AP    {ap(b, 'street')}  ->  {ap(a, 'street')}",
        f"  street scenes    {ap(b, SCENES_HOLDOUT)}  ->  {ap(a, SCENES_HOLDOUT)}  OKS AP without boxes "
        f"({scene_people} people; given the true boxes {ap(b, SCENES_HOLDOUT, 'true_boxes_oks_ap')}"
        f"  ->  {ap(a, SCENES_HOLDOUT, 'true_boxes_oks_ap')}; box AP {ap(b, SCENES_HOLDOUT, 'box_ap')}"
        f"  ->  {ap(a, SCENES_HOLDOUT, 'box_ap')})",
        f"  real photos      {ap(b, REAL_PHOTOS, AGREEMENT)}  ->  {ap(a, REAL_PHOTOS, AGREEMENT)}  agreement with the "
        "pretrained MoveNet (its confident keypoints within 5% on the check set; docs/real-photos.md)",
        f"  one person       {ap(b, REAL_PHOTOS, ONE_PERSON_AGREEMENT)}  ->  {ap(a, REAL_PHOTOS, ONE_PERSON_AGREEMENT)}"
        "  the same on its photographs of one person (the other, ascent, shows two climbers; without a box a model"
        " answers either)",
        f"  small people     {ap(b, REAL_PHOTOS, SMALL_PEOPLE_AGREEMENT)}  ->  "
        f"{ap(a, REAL_PHOTOS, SMALL_PEOPLE_AGREEMENT)}"
        "  the same, the check set's single people pasted at about half the side onto people-free photographs",
        f"    as served      {ap(b, REAL_PHOTOS, SMALL_PEOPLE_SERVED_AGREEMENT)}  ->  "
        f"{ap(a, REAL_PHOTOS, SMALL_PEOPLE_SERVED_AGREEMENT)}"
        "  the same pictures as the server reads them: its detector finds each person, the network reads their crop",
        f"  labels used      {report.labels_used} corrected street persons in {report.labeled_images} images "
        f"({report.predictions} predictions on {traffic_kind(report.persons)}, {report.queued} queued for review)",
        f"  server answers   {report.served_version}",
        f"  parameters       {training_budget(root)}",
        f"  minutes          {sum(report.minutes.values()):.1f} in all: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report.minutes.items() if turns <= 1 or not k.startswith("turn "))
        + ("" if turns <= 1 else ", the turns as below"),
    ]
    if turns > 1:
        lines += [
            "",
            "  turn  labels so far (images)  studio AP  street AP  scenes AP no boxes  real photos  one person"
            "  promoted  minutes",
        ]
        lines.append(
            f"  0     {'-':<23}  {ap(b, 'studio'):<9}  {ap(b, 'street'):<9}  {ap(b, SCENES_HOLDOUT):<18}  "
            f"{ap(b, REAL_PHOTOS, AGREEMENT):<11}  {ap(b, REAL_PHOTOS, ONE_PERSON_AGREEMENT):<10}"
        )
        for t in report.turns:
            c, labels = t.candidate, f"{t.labels} ({t.images})"
            lines.append(
                f"  {t.number:<4}  {labels:<23}  {ap(c, 'studio'):<9}  {ap(c, 'street'):<9}  "
                f"{ap(c, SCENES_HOLDOUT):<18}  {ap(c, REAL_PHOTOS, AGREEMENT):<11}  "
                f"{ap(c, REAL_PHOTOS, ONE_PERSON_AGREEMENT):<10}  {'yes' if t.promoted else 'no':<8}  {t.minutes:.1f}"
            )
    lines += [
        "",
        "Where to look:",
        f"  Label Studio     {labelstudio_url()} (login: var/secrets/labelstudio.json)",
        f"  API docs         http://127.0.0.1:{options.port}/docs",
        f"  demo page        http://127.0.0.1:{options.port}/",
        f"  W&B runs         {root / 'wandb'} (offline; `wandb sync wandb/offline-run-*` uploads them)",
        "  metrics          dvc metrics show; dvc plots show; posewheel flywheel status",
    ]
    if report.log_file is not None:
        lines.append(f"  full log         {_shown(report.log_file, root)} (the server's, DVC's and training's output)")
    if not options.keep:
        lines.append("  (services stopped; run `posewheel demo --keep` to leave them up)")
    return "\n".join(lines)
