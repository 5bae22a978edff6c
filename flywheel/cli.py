"""Commands that flywheel adds to the `posewheel` CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add flywheel's commands to the CLI."""
