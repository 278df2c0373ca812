"""Commands of meterline.sinks (registered on the main `meterline` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
