"""Commands that serving adds to the `posewheel` CLI.

posewheel serve                                   # models/production on 127.0.0.1:8000
posewheel serve --model models/v3 --port 9000
posewheel serve --workers 2                       # two processes (each with one inference lane per core)
POSEWHEEL_API_KEY=secret POSEWHEEL_MAX_BATCH_SIZE=32 posewheel serve --host 0.0.0.0
posewheel predict photos/ clip.mp4 --fps 5 --out results.json --render overlays/   # in process, no HTTP
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from posewheel.cli import fail


def register(app: typer.Typer) -> None:
    """Add serving's commands to the CLI."""
    app.command()(serve)
    app.command()(predict)


# A decoded picture's buffers: glibc serves large ones from a heap once one that size was freed (its mmap threshold
# rises to the largest block freed) and a heap keeps what it held. With crops that read every pixel (session 54,
# slower to prepare) eight concurrent 36-megapixel pictures grew the server by 796-826 MiB where its two decoding
# threads hold two pictures at once (tests/test_reliability_hostile.py; 479 MiB with session 53's crops). A fixed
# threshold, read by the allocator as the process starts (mallopt later did not help: 667-826 MiB), maps every
# buffer of BIG_BUFFER bytes or more on its own and gives it back when freed: 344-389 MiB over three runs.
# Fixing the threshold also stops glibc raising the trim threshold with it (to twice the mmap threshold, up to
# 64 MiB), so at its 128 KiB default every heap's free top went back to the kernel and was faulted in again by the
# next request: c32 throughput 2.5-5.3% lower (session 55, /v1/predict on 256 px pictures, two interleaved runs).
# KEEP_TOP, the most glibc's own rule would keep, gave that back (the eight bombs grew it by 351-386 MiB, four runs).
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
TRIM_THRESHOLD_ENV = "MALLOC_TRIM_THRESHOLD_"
BIG_BUFFER = 4 * 1024 * 1024
KEEP_TOP = 64 * 1024 * 1024


def with_big_buffers_mapped() -> None:
    """Start this command again (same process id, arguments and files) with `MMAP_THRESHOLD_ENV` set, and
    `TRIM_THRESHOLD_ENV` unless it is set; not where the first is set already, the C library is not glibc's (Linux
    only) or this is not the `posewheel` command itself (a test's in-process call)."""
    import platform
    import sys

    if os.environ.get(MMAP_THRESHOLD_ENV) or sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    if Path(sys.argv[0]).name != "posewheel" or not Path(sys.argv[0]).is_file():
        return
    os.environ[MMAP_THRESHOLD_ENV] = str(BIG_BUFFER)
    os.environ.setdefault(TRIM_THRESHOLD_ENV, str(KEEP_TOP))
    os.execv(sys.executable, [sys.executable, *sys.argv])


def serve(
    host: Annotated[str | None, typer.Option(help="interface to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000]")] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="artifact folder (model.onnx + card.json) or symlink [default: models/production]"),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="server processes sharing the port; one, with an inference lane per core, is the fastest [default: 1]"
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="log every request (costs throughput)")] = False,
) -> None:
    """Serve pose predictions over HTTP (FastAPI + ONNX Runtime) with hot reload of the model.

    Other settings come from POSEWHEEL_* variables (see serving/settings.py): API keys, batch
    size and wait, limits, review policy, reload poll interval, execution provider.
    """
    with_big_buffers_mapped()
    import uvicorn
    from pydantic import ValidationError

    from posewheel.artifact import ArtifactError, load_card
    from serving.app import create_app
    from serving.settings import ServingSettings

    overrides = {
        k: v for k, v in {"host": host, "port": port, "model_dir": model, "workers": workers}.items() if v is not None
    }
    try:
        settings = ServingSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise fail(f"invalid serving settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    folder = settings.resolved_model_dir()
    try:
        card = load_card(folder)
    except ArtifactError as exc:
        hint = " (promote a model first, or pass --model DIR)" if model is None else ""
        raise fail(f"no model to serve at {folder}: {exc}{hint}") from exc
    typer.echo(f"serving model {card.version} from {folder} on http://{settings.host}:{settings.port}")
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": access_log,
        "log_level": "info",
        "timeout_graceful_shutdown": 10,
        "limit_concurrency": settings.max_connections,  # slow or idle clients cannot hold unbounded sockets
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    # Each worker process builds its app from the environment: hand it this command's options too.
    os.environ["POSEWHEEL_MODEL_DIR"] = str(folder)
    os.environ["POSEWHEEL_WORKERS"] = str(settings.workers)
    metrics_dir = Path(tempfile.mkdtemp(prefix="posewheel-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # set before any worker imports prometheus_client
    try:
        uvicorn.run("serving.app:app_from_env", factory=True, workers=settings.workers, **common)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(help="images (JPEG, PNG, WebP, HEIC), videos, or folders of them (searched recursively)"),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="COCO keypoint results JSON, written atomically; a video's persons also carry frame_index, "
            "timestamp_s and a track_id that stays theirs while in view"
        ),
    ] = Path("results.json"),
    model: Annotated[
        Path | None,
        typer.Option(help="artifact folder (model.onnx + card.json) or symlink [default: models/production]"),
    ] = None,
    render: Annotated[
        Path | None,
        typer.Option(
            help="write overlays here: a PNG per image, an MP4 per video with each person's track id (under each "
            "one's relative path)"
        ),
    ] = None,
    every: Annotated[int, typer.Option(min=1, help="videos: predict every N-th frame")] = 1,
    fps: Annotated[
        float | None, typer.Option(min=0.001, help="videos: predict this many frames per second (instead of --every)")
    ] = None,
    carry: Annotated[
        bool,
        typer.Option(
            help="videos: look for a person the detector misses in a frame where their track says they are, as the "
            "API does for a stream's frame sent with its tracks"
        ),
    ] = True,
    review: Annotated[
        bool, typer.Option(help="send predictions to review: the server's review policy, image store and outbox")
    ] = False,
    max_persons: Annotated[
        int | None, typer.Option(min=1, max=64, help="answer at most this many persons per image (best first)")
    ] = None,
    score_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="persons the detector scores below this are left out [default: the card's]"
        ),
    ] = None,
    tiles: Annotated[
        bool | None,
        typer.Option(
            help="look again, in tiles, at a large picture where the detector found a small person "
            "[default: POSEWHEEL_DETECTOR_TILES, true]"
        ),
    ] = None,
    pose_confirms: Annotated[
        bool | None,
        typer.Option(
            help="answer a box the detector scored under its threshold, down to half of it, where the pose "
            "network reads a confident pose in it [default: POSEWHEEL_DETECTOR_POSE_CONFIRMS, true]"
        ),
    ] = None,
    read_alone: Annotated[
        bool | None,
        typer.Option(
            help="read a person whose crop holds another person's box with everything outside their own box "
            "blanked [default: POSEWHEEL_DETECTOR_READ_ALONE, true]"
        ),
    ] = None,
    turns: Annotated[
        bool | None,
        typer.Option(
            help="read a person the pose network reads unsure turned a quarter, a half and three quarters too "
            "(one lying down or upside down), and a picture lying turned upright again "
            "[default: POSEWHEEL_DETECTOR_TURNS, true]"
        ),
    ] = None,
    probe_turns: Annotated[
        bool | None,
        typer.Option(
            help="with --turns, look at a picture in doubt (nobody sure in it) small, turned each way, and upright "
            "again where the detector is sure of more people [default: POSEWHEEL_DETECTOR_PROBE_TURNS, true]"
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="person crops per inference batch")] = 16,
    threads: Annotated[
        int | None, typer.Option(min=1, help="ONNX Runtime threads and decoding threads [default: CPU cores]")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Predict poses for images, folders and videos in this process (no HTTP), with the server's engine.

    Same decoding, person detector and model as POST /v1/predict, so an image's keypoints are the API's.
    Files that cannot be read are reported and skipped; the exit code is then 1.
    """
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from serving.batch_predict import BatchPredictor, Options, estimate_frames, find_sources, write_results
    from serving.engine import ModelLoadError, load_model
    from serving.reload import fingerprint
    from serving.settings import ServingSettings

    if fps is not None and every != 1:
        raise fail("give --every or --fps, not both")
    try:
        # host: predict listens nowhere, so a POSEWHEEL_HOST beyond loopback needs no API key here
        overrides: dict[str, object] = {"host": "127.0.0.1", **({"model_dir": model} if model is not None else {})}
        overrides |= {"detector_tiles": tiles} if tiles is not None else {}
        overrides |= {"detector_pose_confirms": pose_confirms} if pose_confirms is not None else {}
        overrides |= {"detector_read_alone": read_alone} if read_alone is not None else {}
        overrides |= {"detector_turns": turns} if turns is not None else {}
        overrides |= {"detector_probe_turns": probe_turns} if probe_turns is not None else {}
        settings = ServingSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise fail(f"invalid serving settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    sources, missing = find_sources(paths)
    if not sources and not missing:
        raise fail(f"no images or videos found in {', '.join(map(str, paths))}")
    folder = settings.resolved_model_dir()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_threads = threads or cores
    try:
        pose_model = load_model(
            folder.resolve(),
            fingerprint(folder),
            n_threads,
            settings.execution_provider,
            settings.find_options(),
        )
    except ModelLoadError as exc:
        hint = " (promote a model first, or pass --model DIR)" if model is None else ""
        raise fail(f"no model at {folder}: {exc}{hint}") from exc
    options = Options(
        batch_size=batch_size,
        threads=n_threads,
        every=every,
        fps=fps,
        max_persons=max_persons,
        score_threshold=score_threshold,
        render_dir=render,
        review=review,
        carry=carry,
    )
    console = Console(stderr=True)
    for name, why in missing.items():
        console.print(f"[red]error[/red]: {name}: {why}", markup=True, highlight=False, soft_wrap=True)
    total = sum(1 if s.kind == "image" else estimate_frames(s, options) for s in sources)
    bar = Progress(
        TextColumn("predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} images/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task("predict", total=total or None, rate=0.0)
        started = time.perf_counter()

        def advance() -> None:
            done = bar.tasks[0].completed + 1
            bar.update(task, completed=done, rate=done / max(1e-9, time.perf_counter() - started))

        def report(name: str, why: str) -> None:
            bar.console.print(f"[red]error[/red]: {name}: {why}", markup=True, highlight=False, soft_wrap=True)

        predictor = BatchPredictor(pose_model, settings, options, on_item=advance, on_failure=report)
        summary = predictor.run(sources)
    summary.failed = {**missing, **summary.failed}
    write_results(out, predictor.results)
    typer.echo(f"model {pose_model.version}: {summary.line()}; results in {out}")
    if summary.failed:
        raise typer.Exit(1)
