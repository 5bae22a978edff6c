"""Commands of the loop: `posewheel demo` and `posewheel flywheel status|repro`."""

from __future__ import annotations

from typing import Annotated

import typer

flywheel_app = typer.Typer(help="The data flywheel: status of the loop, and `dvc repro` in the project's venv.")


def demo(
    traffic: Annotated[int, typer.Option(help="street images sent to /v1/predict", min=1)] = 900,
    labels: Annotated[int, typer.Option(help="most tasks the simulated annotator corrects", min=1)] = 300,
    port: Annotated[int, typer.Option(help="API server port (127.0.0.1)")] = 8000,
    keep: Annotated[bool, typer.Option("--keep", help="leave Label Studio and the API server running")] = False,
    seed: Annotated[int, typer.Option(help="seed of the street traffic")] = 0,
) -> None:
    """Run one turn of the whole loop on the synthetic data and print a before/after table."""
    from flywheel.demo import DemoOptions, run_demo

    report = run_demo(DemoOptions(traffic=traffic, labels=labels, port=port, keep=keep, seed=seed))
    if not report.promoted:
        raise typer.Exit(1)


@flywheel_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Queue depth, labeled and exported counts, production model and its metrics history."""
    from flywheel.status import format_status, read_status, status_json

    current = read_status()
    typer.echo(status_json(current) if as_json else format_status(current))


@flywheel_app.command("repro", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def repro_command(ctx: typer.Context) -> None:
    """`dvc repro [ARGS]` with the project's virtualenv on PATH (extra arguments go to DVC)."""
    from flywheel.pipeline import repro
    from posewheel.settings import ProjectSettings

    raise typer.Exit(repro(ProjectSettings().root, *ctx.args).returncode)


def register(app: typer.Typer) -> None:
    """Add the loop's commands to the CLI."""
    app.command("demo")(demo)
    app.add_typer(flywheel_app, name="flywheel")
