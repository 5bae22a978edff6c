"""Commands that labeling adds to the `posewheel` CLI.

posewheel labelstudio start | status | stop
posewheel labels setup                          # create / update the review project
posewheel labels drain                          # move the review outbox into Label Studio once
posewheel labels annotate --limit 50            # the simulated annotator (synthetic images only)
posewheel labels export --out data/feedback     # completed labels -> COCO dataset
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from posewheel.cli import fail

T = TypeVar("T")

labelstudio_app = typer.Typer(help="Run the project's own Label Studio server.", no_args_is_help=True)
labels_app = typer.Typer(help="The review queue in Label Studio: setup, drain, annotate, export.", no_args_is_help=True)


def _call(what: str, action: Callable[[], T]) -> T:
    """Run `action`; turn Label Studio being down or refusing into one clear sentence and exit code 1."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    from labeling.coco_export import ExportError
    from labeling.labelstudio_process import LabelStudioServiceError
    from labeling.settings import LabelStudioNotConfiguredError, LabelStudioSettings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the report
    try:
        return action()
    except httpx.HTTPError as exc:
        url = LabelStudioSettings().base_url
        raise fail(
            f"{what}: Label Studio at {url} is not reachable ({type(exc).__name__}); run `posewheel labelstudio start`",
            code=1,
        ) from exc
    except ApiError as exc:
        raise fail(f"{what}: Label Studio answered HTTP {exc.status_code}: {str(exc.body)[:300]}", code=1) from exc
    except (LabelStudioServiceError, LabelStudioNotConfiguredError, ExportError) as exc:
        raise fail(f"{what}: {exc}", code=1) from exc


@labelstudio_app.command("start")
def ls_start() -> None:
    """Start Label Studio in the background (first start ~100 s); returns once /health answers."""
    from labeling import labelstudio_process

    status = _call("labelstudio start", labelstudio_process.start)
    typer.echo(f"Label Studio is up at {status.url} (pid {status.pid})")


@labelstudio_app.command("stop")
def ls_stop() -> None:
    """Stop the Label Studio this project started (SIGTERM)."""
    from labeling import labelstudio_process

    typer.echo(
        "Label Studio stopped" if labelstudio_process.stop() else "Label Studio was not running (no live pid file)"
    )


@labelstudio_app.command("status")
def ls_status() -> None:
    """Print Label Studio's URL, whether it answers and its pid; exit 1 when it is not healthy."""
    from labeling import labelstudio_process

    status = _call("labelstudio status", labelstudio_process.status)
    state = "up" if status.healthy else "down"
    typer.echo(f"{status.url} {state}" + (f" (pid {status.pid})" if status.pid else ""))
    if not status.healthy:
        raise typer.Exit(1)


@labels_app.command("setup")
def labels_setup() -> None:
    """Create the review project in Label Studio, or update its config; safe to run again."""
    from labeling.labelstudio_client import connect
    from labeling.project import ensure_project
    from labeling.settings import LabelStudioSettings

    settings = LabelStudioSettings()
    title, sampling = settings.project_title, settings.sampling
    project_id = _call("labels setup", lambda: ensure_project(connect(settings), title, sampling))
    typer.echo(f"project {settings.project_title!r} is id {project_id} at {settings.base_url}/projects/{project_id}")


@labels_app.command("drain")
def labels_drain(
    outbox: Annotated[Path | None, typer.Option(help="outbox folder [default: var/outbox]")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="tasks per import request")] = 100,
) -> None:
    """Move every pending review item from the outbox into Label Studio once, then report."""
    from labeling.queue import OutboxDrainer, ReviewQueue
    from posewheel.review import Outbox
    from posewheel.settings import ProjectSettings

    folder = outbox or ProjectSettings().outbox_dir
    drainer = OutboxDrainer(Outbox(folder), ReviewQueue.connect, batch_size=batch_size)
    report = _call("labels drain", drainer.drain_once)
    typer.echo(f"{report.delivered} review item(s) delivered to Label Studio, {report.pending} still pending")
    if report.pending:
        raise typer.Exit(1)


@labels_app.command("annotate")
def labels_annotate(
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many tasks [default: all open]")] = None,
    noise_px: Annotated[float, typer.Option(min=0.0, help="hand jitter, pixels (Gaussian sigma)")] = 1.5,
    skip_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="fraction of tasks skipped")] = 0.05,
    seed: Annotated[int, typer.Option(help="random seed (per task, order-independent)")] = 0,
    person_limit: Annotated[
        int | None, typer.Option(min=1, help="stop before the persons labeled would pass this many [default: no limit]")
    ] = None,
) -> None:
    """Simulated annotator: correct open tasks from synthetic ground truth, in the project's sampling order."""
    from labeling.annotator import AnnotateSummary, annotate
    from labeling.labelstudio_client import connect
    from labeling.project import ensure_project
    from labeling.settings import LabelStudioSettings
    from posewheel.settings import ProjectSettings
    from posewheel.truth import TruthStore

    settings = LabelStudioSettings()
    truth = TruthStore(ProjectSettings().truth_dir)

    def run() -> AnnotateSummary:
        client = connect(settings)
        project = ensure_project(client, settings.project_title, settings.sampling)
        return annotate(client, project, truth, noise_px, skip_rate, seed, limit, person_limit, settings.sampling)

    summary = _call("labels annotate", run)
    typer.echo(
        f"annotated {summary.annotated} task(s) holding {summary.persons} person(s), skipped {summary.skipped}, "
        f"{summary.no_truth} without ground truth (not synthetic) left open"
    )


@labels_app.command("export")
def labels_export(
    out: Annotated[Path, typer.Option(help="dataset folder to write (replaced atomically)")],
) -> None:
    """Export completed annotations as a COCO keypoint dataset (skipped tasks dropped; deterministic)."""
    from labeling.coco_export import ExportSummary, export_coco
    from labeling.labelstudio_client import connect
    from labeling.project import find_project
    from labeling.settings import LabelStudioSettings
    from posewheel.imagestore import ImageStore
    from posewheel.settings import ProjectSettings

    settings = LabelStudioSettings()
    store = ImageStore(ProjectSettings().image_store_dir)

    def run() -> ExportSummary:
        client = connect(settings)
        project_id = find_project(client, settings.project_title)
        if project_id is None:
            raise fail(
                f"labels export: no project {settings.project_title!r} in Label Studio; run `posewheel labels setup`",
                code=1,
            )
        return export_coco(client, project_id, out, store)

    summary = _call("labels export", run)
    typer.echo(
        f"exported {summary.tasks} labeled task(s) ({summary.empty} with nobody in them), "
        f"{summary.persons} person(s) to {summary.out_dir}; {summary.skipped} skipped task(s) left out"
    )


def register(app: typer.Typer) -> None:
    """Add labeling's commands to the CLI."""
    app.add_typer(labelstudio_app, name="labelstudio")
    app.add_typer(labels_app, name="labels")
