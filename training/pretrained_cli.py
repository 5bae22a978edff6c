"""`posewheel pretrained promote NAME`: a servable artifact from pretrained weights alone.

    posewheel pretrained promote movenet-lightning               # models/pretrained-movenet-lightning
    posewheel pretrained promote movenet-thunder --production    # ... and make it production

So a fresh install answers real photographs sensibly before any training: the artifact is the
ported network (training/movenet.py) with Google's weights, exported like every trained model, and
its card records the package, version, integrity and licence the weights came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from posewheel.cli import fail
from posewheel.pretrained import PretrainedMissingError


def promote(
    name: Annotated[str, typer.Argument(help="movenet-lightning | movenet-thunder")],
    models: Annotated[Path, typer.Option(help="models folder")] = Path("models"),
    production: Annotated[bool, typer.Option(help="also make it models/production")] = False,
) -> None:
    """Export the pretrained network `name` as the artifact models/pretrained-NAME (optionally production)."""
    from posewheel import artifact
    from training.pretrained import export_pretrained

    try:
        folder = export_pretrained(name, models)
    except (PretrainedMissingError, ValueError) as exc:
        raise fail(f"pretrained promote: {exc}") from exc
    typer.echo(f"wrote {folder}")
    if production:
        artifact.promote(models, folder.name)
        typer.echo(f"{artifact.production_dir(models)} -> {folder.name}")


def register(app: typer.Typer) -> None:
    from posewheel.pretrained_cli import pretrained_app

    pretrained_app.command()(promote)
