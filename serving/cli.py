"""Commands that serving adds to the `posewheel` CLI.

posewheel serve                                   # models/production on 127.0.0.1:8000
posewheel serve --model models/v3 --port 9000
posewheel serve --workers 2                       # one process per CPU core: the fastest on CPU
POSEWHEEL_API_KEY=secret POSEWHEEL_MAX_BATCH_SIZE=32 posewheel serve --host 0.0.0.0
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from posewheel.cli import fail


def register(app: typer.Typer) -> None:
    """Add serving's commands to the CLI."""
    app.command()(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="interface to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000]")] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="artifact folder (model.onnx + card.json) or symlink [default: models/production]"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="server processes sharing the port; one per CPU core is the fastest [default: 1]")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="log every request (costs throughput)")] = False,
) -> None:
    """Serve pose predictions over HTTP (FastAPI + ONNX Runtime) with hot reload of the model.

    Other settings come from POSEWHEEL_* variables (see serving/settings.py): API keys, batch
    size and wait, limits, review policy, reload poll interval, execution provider.
    """
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
