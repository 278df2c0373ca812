"""`meterline validate` and `meterline schema` (no Kafka needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from meterline.cli import app
from meterline.events import usage_event_json_schema

GOOD = '{"team":"team-01","provider":"openai","model":"gpt-4o","occurred_at":"2025-05-01T00:00:00Z","input_tokens":10}'


def test_validate_reports_each_invalid_line_by_number(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    file.write_text(
        "\n".join(
            [
                GOOD,
                "",
                GOOD.replace('"team-01"', '"Team 1"'),
                "not json",
                GOOD.replace('"input_tokens":10', '"input_tokens":10,"cache_read_tokens":11'),
                GOOD,
            ]
        )
        + "\n"
    )
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("line 3: team: String should match pattern")
    assert lines[1].startswith("line 4: Invalid JSON")
    assert lines[2].startswith("line 5: ") and "must not exceed input_tokens" in lines[2]
    assert lines[3] == "2 valid, 3 invalid"


def test_validate_passes_a_clean_file(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    file.write_text(GOOD + "\n" + GOOD + "\n")
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "2 valid, 0 invalid"


def test_validate_missing_file_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_schema_prints_and_writes_the_json_schema(tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["schema"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == usage_event_json_schema()
    out = tmp_path / "schema.json"
    written = CliRunner().invoke(app, ["schema", "--output", str(out)])
    assert written.exit_code == 0
    assert out.read_text() == printed.stdout


def test_emit_without_event_flags_says_what_to_do() -> None:
    result = CliRunner().invoke(app, ["emit", "--team", "t"])
    assert result.exit_code == 1
    assert "--file" in result.output


def test_validate_applies_the_streams_checks_size_repeated_keys_and_time_range(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    big = GOOD.replace('"input_tokens":10', '"input_tokens":10,"tags":{"pad":"' + "x" * 250 + '"}')
    file.write_text(
        "\n".join(
            [
                GOOD,
                GOOD.replace('"input_tokens":10', '"input_tokens":-5,"input_tokens":10'),
                GOOD.replace("2025-05-01T00:00:00Z", "9999-12-31T23:59:59-23:59"),
                big,
            ]
        )
        + "\n"
    )
    config = tmp_path / "meterline.toml"
    config.write_text("[stream]\nmax_event_bytes = 300\n")
    result = CliRunner().invoke(app, ["--config", str(config), "validate", str(file)])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "line 2: the JSON names 'input_tokens' twice; send every key once"
    assert lines[1].startswith("line 3: ") and "outside the accepted range" in lines[1]
    assert lines[2].startswith("line 4: the event is ") and "stream.max_event_bytes = 300" in lines[2]
    assert lines[3] == "1 valid, 3 invalid"
