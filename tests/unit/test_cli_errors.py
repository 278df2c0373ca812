"""Errors are printed as text: brackets in a message (a regex, a list, a path) are never rich markup."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from meterline.cli import app
from meterline.cli_support import error_text, print_error


def test_a_settings_error_keeps_the_pattern_it_names(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text('[[budgets]]\nteam = "Bad Team"\nname = "daily"\nlimit_usd = 10\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "prices", "list"])
    assert result.exit_code == 2
    assert "budgets.0.team: String should match pattern '^[a-z0-9._-]{1,64}$'" in result.output


def test_print_error_prints_markup_like_text_as_it_is() -> None:
    console = Console(record=True, width=200, color_system=None)
    for message in ("[red]not red[/red]", "tags [a, b] and [/bold]", "path /tmp/[x]/file"):
        print_error(message, to=console)
    assert console.export_text().splitlines() == [
        "error: [red]not red[/red]",
        "error: tags [a, b] and [/bold]",
        "error: path /tmp/[x]/file",
    ]
    assert error_text("x").spans[0].style == "red"  # only the "error:" label is styled
