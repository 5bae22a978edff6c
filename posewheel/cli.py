"""The `posewheel` command line: the one entry point for users.

    posewheel synth --domain studio --count 500 --seed 0 --out data/seed
    posewheel validate data/seed
    posewheel show data/seed --out grid.png
    posewheel --help                      # every command, including those of the other packages

The core defines its own commands; training, serving, labeling and flywheel add theirs through the
`posewheel.commands` entry point group (each a `register(app)` function), so the core imports none
of them and a serving-only install still has a working CLI.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from posewheel.console import LOG_FORMAT

app = typer.Typer(
    name="posewheel",
    help="2D human pose estimation with a data flywheel: synth, train, serve, review, retrain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """2D human pose estimation with a data flywheel: synth, train, serve, review, retrain."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` to stderr and return the Exit to raise (exit code `code`)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def validate(
    folder: Annotated[Path, typer.Argument(help="dataset folder (annotations.json + images/) or a COCO json file")],
) -> None:
    """Check a COCO keypoint dataset; exit 1 listing every problem (file, id, field)."""
    from posewheel.dataset import DatasetError, load

    try:
        ds = load(folder)
    except DatasetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{folder}: valid: {len(ds.images)} images, {len(ds.annotations)} persons")


def _register_plugins() -> None:
    for ep in entry_points(group="posewheel.commands"):
        try:
            register = ep.load()
        except ImportError as exc:  # a partial install (e.g. serving only) lacks some packages
            logging.getLogger(__name__).debug("commands of %s unavailable: %s", ep.name, exc)
            continue
        register(app)


def _register_core() -> None:
    from posewheel import pretrained_cli, retention, synth_cli

    synth_cli.register(app)
    pretrained_cli.register(app)
    retention.register(app)


def configure_logging() -> None:
    """INFO and up on stderr, less the lines nobody can act on (`posewheel demo` then moves them to its log file)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # httpx logs every request at INFO ("HTTP Request: POST .../v1/predict 200 OK"): hundreds of lines from
    # the demo's traffic and the labeling commands, nothing to act on. Its warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A step's start and end are already a line on the terminal (posewheel.console); its log records are for a
    # log file (console.start_log turns them back on).
    logging.getLogger("posewheel.console").setLevel(logging.WARNING)


def main() -> None:
    """Console entry point."""
    configure_logging()
    _register_core()
    _register_plugins()
    try:
        app(prog_name="posewheel", standalone_mode=True)
    except ModuleNotFoundError as exc:  # e.g. `posewheel train` in the serving-only install
        typer.secho(
            f"error: this command needs {exc.name!r}, which this installation lacks; "
            "install the full project with `pip install -e '.[all]'` (or `make install`)",
            fg=typer.colors.RED,
            err=True,
        )
        raise SystemExit(2) from exc


if __name__ == "__main__":  # pragma: no cover
    main()
