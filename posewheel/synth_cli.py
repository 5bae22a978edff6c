"""Core data commands: synth and show (registered by posewheel.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the synthetic-data commands."""
