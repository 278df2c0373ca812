"""`meterline reprice` on a real ClickHouse engine: planted price changes (a dated change in
an override file, a model that had no price) are applied exactly to usage_events, usage_hourly
and the views, nothing is counted twice, the audit row is written, and a second run changes
nothing."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.events import UsageEvent
from meterline.messages import PricedEvent
from meterline.pricing import PriceCatalog
from meterline.pricing.reprice import RepriceScope
from meterline.settings import PricingSettings
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.reprice import run_reprice
from meterline.sinks.writer import write_batch
from tests.support.prices import ACME_PRICES_BEFORE, ACME_PRICES_NOW

pytestmark = pytest.mark.integration

TEAMS = ("search", "support", "growth")
MODELS = ("acme-chat", "acme-new")
START = datetime(2026, 10, 20, tzinfo=UTC)


def catalog_of(tmp_path: Path, name: str, text: str) -> tuple[PriceCatalog, Path]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return PriceCatalog.load(PricingSettings(override_files=[path])), path


def usage_events(count: int, seed: int = 3) -> list[UsageEvent]:
    """Events over 20 days across October and November, every team and model, some batch,
    cached or cache-hit calls."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        input_tokens = rng.randrange(1, 9000)
        events.append(
            UsageEvent(
                event_id=f"ev-{index:05d}",
                occurred_at=START + timedelta(minutes=rng.randrange(20 * 24 * 60), microseconds=rng.randrange(10**6)),
                team=rng.choice(TEAMS),
                project=rng.choice(("ranker", None)),
                provider="openai",
                model=rng.choice(MODELS),
                input_tokens=input_tokens,
                output_tokens=rng.randrange(0, 3000),
                cache_read_tokens=rng.randrange(0, input_tokens) if rng.random() < 0.3 else 0,
                batch=rng.random() < 0.2,
                cache_hit=rng.random() < 0.05,
                status="error" if rng.random() < 0.05 else "ok",
            )
        )
    return events


def priced(events: list[UsageEvent], catalog: PriceCatalog) -> list[PricedEvent]:
    return [
        PricedEvent(
            **event.model_dump(),
            **catalog.price_event(event).as_fields(),
            ingested_at=event.occurred_at + timedelta(seconds=1),
        )
        for event in events
    ]


def store(client: Any, events: list[PricedEvent]) -> None:
    """Write the events the way the sink does (the same planned inserts)."""
    records = [
        SourceRecord("t.usage.priced", 0, i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)
    ]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange("t.usage.priced", 0, 0, len(events) - 1), records)):
        write_batch(client, insert)


def rollup_by_key(client: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """usage_hourly summed per key: requests, unpriced, tokens, every money column."""
    rows = client.query(
        "SELECT hour, team, project, model, sum(requests), sum(unpriced_requests), sum(input_tokens), sum(output_tokens), "
        "sum(input_cost_usd), sum(cache_read_cost_usd), sum(output_cost_usd), sum(cost_usd), sum(batch_saving_usd), "
        "sum(cache_saving_usd) FROM usage_hourly GROUP BY hour, team, project, model HAVING sum(requests) > 0"
    ).result_rows
    return {tuple(row[:4]): tuple(row[4:]) for row in rows}


def expected_rollup(events: list[PricedEvent]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, *[Decimal(0)] * 6])
    for e in events:
        hour = e.occurred_at.replace(minute=0, second=0, microsecond=0).astimezone(UTC).replace(tzinfo=None)
        line = sums[(hour, e.team, e.project or "", e.model)]
        for index, value in enumerate(
            (
                1,
                int(not e.priced),
                e.input_tokens,
                e.output_tokens,
                e.input_cost_usd,
                e.cache_read_cost_usd,
                e.output_cost_usd,
                e.cost_usd,
                e.batch_saving_usd,
                e.cache_saving_usd,
            )
        ):
            line[index] += value
    return {key: tuple(values) for key, values in sums.items()}


def stored_prices(client: Any) -> dict[str, tuple[Any, ...]]:
    rows = client.query(
        "SELECT event_id, priced, price_id, input_cost_usd, cache_read_cost_usd, output_cost_usd, cost_usd, "
        "batch_saving_usd, cache_saving_usd FROM usage_events FINAL"
    ).result_rows
    return {row[0]: tuple(row[1:]) for row in rows}


def expected_prices(events: list[PricedEvent]) -> dict[str, tuple[Any, ...]]:
    return {
        e.event_id: (
            e.priced,
            e.price_id,
            e.input_cost_usd,
            e.cache_read_cost_usd,
            e.output_cost_usd,
            e.cost_usd,
            e.batch_saving_usd,
            e.cache_saving_usd,
        )
        for e in events
    }


def naive_hours(rollup: dict[tuple[Any, ...], tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {(key[0].replace(tzinfo=None), *key[1:]): value for key, value in rollup.items()}


@pytest.fixture
def planted(sink_client, tmp_path: Path):
    """1,500 events stored at the old prices; the catalog as it is now; the events as it prices them."""
    before, _ = catalog_of(tmp_path, "before.toml", ACME_PRICES_BEFORE)
    after, _ = catalog_of(tmp_path, "after.toml", ACME_PRICES_NOW)
    events = usage_events(1_500)
    old = priced(events, before)
    store(sink_client, old)
    assert any(not e.priced for e in old) and any(e.priced for e in old)
    return sink_client, after, old, priced(events, after)


def raw_row_count(client: Any) -> int:
    return int(client.query("SELECT count() FROM usage_events").result_rows[0][0])


def test_a_dry_run_reports_the_deltas_and_writes_nothing(planted) -> None:
    client, after, old, new = planted
    before_rollup = rollup_by_key(client)

    run = run_reprice(client, after, RepriceScope(since=START), run_id="dry", catalog_fingerprint="f", apply=False)

    expected: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for was, now in zip(old, new, strict=True):
        line = expected[(was.team, was.model)]
        line[0] += 1
        line[1] += int((was.priced, was.price_id, was.cost_usd) != (now.priced, now.price_id, now.cost_usd))
        line[2] += was.cost_usd
        line[3] += now.cost_usd
    assert {(t, m): [g.events, g.changed, g.old_cost_usd, g.new_cost_usd] for t, m, g in run.tally.lines()} == expected
    assert run.tally.newly_priced == sum(1 for was in old if not was.priced)
    assert raw_row_count(client) == len(old)
    assert rollup_by_key(client) == before_rollup
    assert client.query("SELECT count() FROM reprice_runs").result_rows == [(0,)]


def test_an_applied_run_corrects_every_table_exactly_and_a_second_run_changes_nothing(planted) -> None:
    client, after, old, new = planted
    assert naive_hours(rollup_by_key(client)) == expected_rollup(old)

    run = run_reprice(
        client, after, RepriceScope(since=START), run_id="r1", catalog_fingerprint="fp1", apply=True, page_rows=400
    )

    changed = [
        now for was, now in zip(old, new, strict=True) if (was.price_id, was.cost_usd) != (now.price_id, now.cost_usd)
    ]
    assert 0 < len(changed) < len(old), "the October acme-chat events keep their price"
    assert stored_prices(client) == expected_prices(new)
    assert naive_hours(rollup_by_key(client)) == expected_rollup(new)
    run_ids = dict(client.query("SELECT event_id, reprice_run_id FROM usage_events FINAL").result_rows)
    assert {e.event_id for e in changed} == {event_id for event_id, run_id in run_ids.items() if run_id == "r1"}
    assert sum(1 for run_id in run_ids.values() if run_id == "") == len(old) - len(changed)

    total_new = sum((e.cost_usd for e in new), Decimal(0))
    views = {
        "spend_per_team_day": "SELECT sum(cost_usd), sum(requests) FROM spend_per_team_day",
        "spend_per_team_month": "SELECT sum(cost_usd), sum(requests) FROM spend_per_team_month",
        "spend_per_model": "SELECT sum(cost_usd), sum(requests) FROM spend_per_model",
        "cost_per_1k_requests": "SELECT sum(cost_usd), sum(requests) FROM cost_per_1k_requests",
    }
    for view, sql in views.items():
        assert client.query(sql).result_rows == [(total_new, len(new))], view
    assert client.query("SELECT sum(batch_saving_usd) FROM cache_batch_savings").result_rows == [
        (sum((e.batch_saving_usd for e in new), Decimal(0)),)
    ]
    unpriced_now = {e.event_id for e in new if not e.priced}
    assert {r[0] for r in client.query("SELECT event_id FROM unpriced_events FINAL").result_rows} == unpriced_now

    audit = client.query(
        "SELECT run_id, catalog_fingerprint, events_scanned, events_changed, events_newly_priced, "
        "old_cost_usd, new_cost_usd, delta_usd FROM reprice_runs"
    ).result_rows
    total_old = sum((e.cost_usd for e in old), Decimal(0))
    newly_priced = sum(1 for e in old if not e.priced)
    assert audit == [("r1", "fp1", len(old), len(changed), newly_priced, total_old, total_new, total_new - total_old)]
    assert run.tally.total().changed == len(changed)

    rows_after_first = raw_row_count(client)
    rollup_after_first = rollup_by_key(client)
    again = run_reprice(client, after, RepriceScope(since=START), run_id="r2", catalog_fingerprint="fp1", apply=True)
    assert again.tally.total().changed == 0
    assert raw_row_count(client) == rows_after_first
    assert rollup_by_key(client) == rollup_after_first
    assert stored_prices(client) == expected_prices(new)

    # Merged, the tables hold the same amounts: the corrections were rows, not read-time tricks.
    client.command("OPTIMIZE TABLE usage_events FINAL")
    client.command("OPTIMIZE TABLE usage_hourly FINAL")
    assert raw_row_count(client) == len(new)
    assert stored_prices(client) == expected_prices(new)
    assert naive_hours(rollup_by_key(client)) == expected_rollup(new)


def test_the_scope_limits_what_changes(planted) -> None:
    client, after, old, new = planted
    scope = RepriceScope(
        since=datetime(2026, 11, 5, tzinfo=UTC),
        until=datetime(2026, 11, 8, tzinfo=UTC),
        team="search",
        model="acme-chat",
    )

    run_reprice(client, after, scope, run_id="r-scope", catalog_fingerprint="f", apply=True)

    def in_scope(e: PricedEvent) -> bool:
        return e.team == "search" and e.model == "acme-chat" and scope.since <= e.occurred_at < scope.until  # type: ignore[operator]

    mixed = [now if in_scope(now) else was for was, now in zip(old, new, strict=True)]
    assert any(in_scope(e) for e in new)
    assert stored_prices(client) == expected_prices(mixed)
    assert naive_hours(rollup_by_key(client)) == expected_rollup(mixed)
    assert client.query("SELECT since, until, team, model, provider FROM reprice_runs").result_rows == [
        (scope.since, scope.until, "search", "acme-chat", None)
    ]


def test_the_command_prints_the_dry_run_table_then_applies(sink_client, sink_dsn: str, tmp_path: Path) -> None:
    before, _ = catalog_of(tmp_path, "before.toml", ACME_PRICES_BEFORE)
    _, after_path = catalog_of(tmp_path, "after.toml", ACME_PRICES_NOW)
    events = usage_events(40, seed=9)
    store(sink_client, priced(events, before))
    sink_client.close()  # one process may hold a chDB path: the command opens it itself
    config = tmp_path / "meterline.toml"
    config.write_text(
        f'clickhouse_dsn = "{sink_dsn}"\n[pricing]\noverride_files = ["{after_path}"]\n', encoding="utf-8"
    )

    def meterline(*args: str) -> tuple[int, str]:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--config", str(config), "reprice", *args])
        return result.exit_code, result.output

    code, output = meterline("--since", "2026-10-01", "--dry-run")
    assert code == 0, output
    assert "dry run: nothing written" in output and "acme-new" in output and "total" in output
    code, output = meterline("--since", "2026-10-01")
    assert code == 0, output
    assert "applied" in output
    code, output = meterline("--since", "2026-10-01")
    assert code == 0, output
    assert "nothing changed" in output
    code, output = meterline("--since", "October")
    assert code == 2 and "--since 'October' is not a date" in output
