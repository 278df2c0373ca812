"""What every command module shares: the consoles, how an error is printed, `fail` and `settings_from`.

Component CLIs (producers/cli.py, stream/cli.py, …) import this module, never meterline/cli.py,
which imports them all to register their commands. It imports only typer, rich and
meterline.errors / meterline.settings, so importing it keeps `--help` fast.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from meterline.errors import MeterlineError
from meterline.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def error_text(message: str) -> Text:
    """`error: <message>` with the message as plain text: brackets in it (a regex, a list) are
    printed as they are, never read as rich markup."""
    return Text.assemble(("error:", "red"), " ", message)


def print_error(message: str, to: Console | None = None) -> None:
    """Print `error: <message>` (to stderr unless `to` says otherwise)."""
    (to or err_console).print(error_text(message), highlight=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error that says what to do and return the Exit to raise."""
    print_error(message)
    return typer.Exit(code)


def settings_from(ctx: typer.Context) -> Settings:
    """Build (once per invocation) the Settings for a command; exit 2 with every bad key."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "settings" not in root.obj:
        try:
            root.obj["settings"] = load_settings(root.obj.get("config"))
        except MeterlineError as exc:
            raise fail(str(exc), 2) from exc
    settings: Settings = root.obj["settings"]
    return settings
