"""`meterline reconcile` on a real ClickHouse engine: meterline's events as stored by the sink,
the providers' report files from tests/data with planted gaps; the command finds exactly those,
exits 1, stores every line in `reconciliations`, and exits 0 on a report that agrees."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.messages import PricedEvent
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.writer import write_batch
from tests.data import make_reconcile_files as files
from tests.support import reconcile_truth as truth

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data"


def split(total: int | Decimal, parts: int, index: int) -> Any:
    """Part `index` of `total` cut in `parts`, the remainder on the first: the parts add up exactly."""
    if isinstance(total, Decimal):
        share = (total / parts).quantize(Decimal("1e-12"))
        return total - share * (parts - 1) if index == 0 else share
    return total // parts + (total % parts if index == 0 else 0)


def events_of(provider: str, lines: tuple[truth.TruthLine, ...]) -> list[PricedEvent]:
    events = []
    for number, line in enumerate(lines):
        for index in range(line.requests):
            at = datetime.combine(line.day, time(9), UTC) + timedelta(minutes=7 * index)
            cache_read, cache_write = (
                split(line.cache_read, line.requests, index),
                split(line.cache_write, line.requests, index),
            )
            cost = split(line.cost_usd, line.requests, index)
            events.append(
                PricedEvent(
                    event_id=f"{provider}-{number}-{index}",
                    occurred_at=at,
                    ingested_at=at,
                    team="search",
                    project=line.scope,
                    provider=provider,
                    model=line.model,
                    input_tokens=split(line.uncached_input, line.requests, index) + cache_read + cache_write,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                    output_tokens=split(line.output, line.requests, index),
                    priced=True,
                    price_id="test",
                    price_source="test",
                    input_cost_usd=cost,
                    cost_usd=cost,
                )
            )
    # A cache hit the provider never saw: it must not count on meterline's side.
    hit = events[0].model_copy(update={"event_id": f"{provider}-hit", "cache_hit": True, "cost_usd": Decimal(0)})
    return [*events, hit]


@pytest.fixture
def stored(sink_client, sink_dsn: str, tmp_path: Path) -> Path:
    """Both providers' truth stored the way the sink stores events; a meterline.toml naming the database."""
    events = events_of("openai", truth.OPENAI_TRUTH) + events_of("anthropic", truth.ANTHROPIC_TRUTH)
    records = [
        SourceRecord("t.usage.priced", 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)
    ]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange("t.usage.priced", 0, 0, len(events) - 1), records)):
        write_batch(sink_client, insert)
    sink_client.close()  # one process may hold a chDB path: the command opens it itself
    config = tmp_path / "meterline.toml"
    config.write_text(f'clickhouse_dsn = "{sink_dsn}"\n', encoding="utf-8")
    return config


def meterline(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--config", str(config), "reconcile", *args])
    return result.exit_code, result.output


def stored_lines(dsn: str) -> dict[tuple[Any, ...], tuple[str, tuple[str, ...]]]:
    from meterline.sinks.client import open_client

    client = open_client(dsn)
    try:
        rows = client.query("SELECT day, model, scope, status, differing, run_id FROM reconciliations").result_rows
    finally:
        client.close()
    assert len({row[5] for row in rows}) == 1, "one run"
    return {(row[0], row[1], row[2]): (row[3], tuple(row[4])) for row in rows}


def test_openai_usage_and_costs_find_exactly_the_planted_gaps(stored: Path, sink_dsn: str) -> None:
    code, output = meterline(stored, str(DATA / "openai_usage_completions.json"), str(DATA / "openai_costs.json"))

    assert code == 1, output
    assert "6 lines: 2 matched, 2 over tolerance, 1 missing ours, 1 missing provider" in output
    assert "gpt-4.1-2025-04-14" in output and "missing_ours" in output
    assert stored_lines(sink_dsn) == truth.EXPECTED_OPENAI


def test_anthropic_csv_usage_and_json_costs_find_exactly_the_planted_gaps(stored: Path, sink_dsn: str) -> None:
    code, output = meterline(
        stored,
        "--provider",
        "anthropic",
        str(DATA / "anthropic_usage_report.csv"),
        str(DATA / "anthropic_cost_report.json"),
    )

    assert code == 1, output
    assert "5 lines: 2 matched, 1 over tolerance, 1 missing ours, 1 missing provider" in output
    assert stored_lines(sink_dsn) == truth.EXPECTED_ANTHROPIC


def test_a_report_that_agrees_exits_0(stored: Path, tmp_path: Path) -> None:
    usage = tmp_path / "usage.json"
    usage.write_text(json.dumps(files.openai_usage(list(truth.OPENAI_TRUTH))), encoding="utf-8")
    costs = tmp_path / "costs.json"
    costs.write_text(files.openai_costs(list(truth.OPENAI_TRUTH)), encoding="utf-8")

    code, output = meterline(stored, str(usage), str(costs))

    assert code == 0, output
    assert "5 lines: 5 matched, 0 over tolerance, 0 missing ours, 0 missing provider" in output


def test_summed_over_projects_a_gap_hidden_by_the_scope_shows_the_same(stored: Path) -> None:
    code, output = meterline(stored, "--ignore-scope", str(DATA / "openai_usage_completions.json"))
    assert code == 1, output
    assert "over_tolerance" in output and "output_tokens" in output


def test_a_bad_file_exits_1_with_its_reason(stored: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"start_time": "yesterday", "results": []}]}', encoding="utf-8")
    code, output = meterline(stored, str(bad))
    assert code == 1 and "start_time 'yesterday' is not Unix seconds" in output
    code, output = meterline(stored, "--tolerance", "lots", str(DATA / "openai_costs.json"))
    assert code == 2 and "--tolerance 'lots' is not a number" in output
