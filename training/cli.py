"""Commands that training adds to the `posewheel` CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add training's commands to the CLI."""
