"""Commands of the loop: `posewheel demo` and `posewheel flywheel status|repro|watch`."""

from __future__ import annotations

from typing import Annotated

import typer

flywheel_app = typer.Typer(help="The data flywheel: status of the loop, and `dvc repro` in the project's venv.")


def demo(
    traffic: Annotated[int, typer.Option(help="street images sent to /v1/predict", min=1)] = 900,
    labels: Annotated[int, typer.Option(help="most persons the simulated annotator labels", min=1)] = 300,
    port: Annotated[int, typer.Option(help="API server port (127.0.0.1)")] = 8000,
    keep: Annotated[bool, typer.Option("--keep", help="leave Label Studio and the API server running")] = False,
    seed: Annotated[int, typer.Option(help="seed of the street traffic")] = 0,
    scenes: Annotated[
        bool,
        typer.Option(
            help="traffic of several people per image (params.yaml synth.scene_persons) sent without boxes; "
            "--no-scenes: one person filling each image (a model without a person detector)"
        ),
    ] = True,
    loops: Annotated[
        int, typer.Option(min=1, help="turns of the wheel, each on fresh street traffic with up to --labels labels")
    ] = 1,
) -> None:
    """Run one turn (or --loops turns) of the whole loop on the synthetic data and print a before/after table."""
    from flywheel.demo import DemoOptions, run_demo

    report = run_demo(
        DemoOptions(traffic=traffic, labels=labels, port=port, keep=keep, seed=seed, scenes=scenes, loops=loops)
    )
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
    """`dvc repro [ARGS]` with the project's virtualenv on PATH (extra arguments go to DVC).

    Holds var/flywheel.lock while it runs: a second run (or `watch`) at the same time exits at once.
    """
    from flywheel.pipeline import PipelineBusyError, PipelinePaths, pipeline_lock, repro

    paths = PipelinePaths.from_settings()
    try:
        with pipeline_lock(paths):
            code = repro(paths.root, *ctx.args).returncode
    except PipelineBusyError as exc:
        typer.echo(f"not started: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@flywheel_app.command("watch")
def watch_command(
    min_labels: Annotated[int, typer.Option(min=1, help="run when at least this many new labels wait")] = 100,
    interval: Annotated[float, typer.Option(min=1.0, help="seconds between polls")] = 300.0,
    once: Annotated[bool, typer.Option("--once", help="poll once and exit (cron, tests)")] = False,
) -> None:
    """Continuous training: poll Label Studio, run `dvc repro` when enough new corrected labels wait.

    One line per poll to the terminal and var/log/flywheel-watch.log. Never two runs at once: a poll
    skips while another run (`watch` or `repro`) holds var/flywheel.lock. Exit code with --once: 1 when
    the poll could not count the labels or the run failed, else 0 (a skipped poll included).
    """
    from flywheel.pipeline import PipelinePaths
    from flywheel.watch import watch

    raise typer.Exit(watch(PipelinePaths.from_settings(), min_labels, interval, once))


def register(app: typer.Typer) -> None:
    """Add the loop's commands to the CLI."""
    app.command("demo")(demo)
    app.add_typer(flywheel_app, name="flywheel")
