"""Writes and reads on the real engine: every column type, idempotent re-writes, exact views."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

import pytest

from meterline.messages import BudgetState, PricedEvent
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.rows import USAGE_EVENT_COLUMNS, usage_event_row
from meterline.sinks.writer import write_batch
from tests.support.samples import sample_priced_events

from .support import expected_totals, totals

pytestmark = pytest.mark.integration

TOPIC = "t.usage.priced"


def write_events(
    client, events: list[PricedEvent], first_offset: int = 0, topic: str = TOPIC, kind: str = "priced"
) -> None:
    records = [
        SourceRecord(topic, 0, first_offset + i, None, e.model_dump_json().encode(), 0) for i, e in enumerate(events)
    ]
    batch = RangeBatch(OffsetRange(topic, 0, first_offset, first_offset + len(events) - 1), records)
    for insert in plan_inserts(kind, batch):  # type: ignore[arg-type]  # the kind comes from the test's parameters, a TopicKind
        write_batch(client, insert)


def test_every_column_type_round_trips(sink_client) -> None:
    tokyo = timezone(timedelta(hours=9))
    full = PricedEvent(
        event_id="ev-full",
        occurred_at=datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=tokyo),
        team="search",
        project="ranker",
        app="svc",
        user="ünïcode-user",
        environment="prod",
        provider="anthropic",
        model="claude-sonnet-4-20250514",
        input_tokens=1_000_000_000,
        output_tokens=7,
        cache_read_tokens=3,
        cache_write_tokens=4,
        reasoning_tokens=5,
        batch=True,
        cache_hit=False,
        latency_ms=86_400_000,
        status="error",
        request_id="req-1",
        tags={"feature": "chat", "ключ": "значение", "empty": ""},
        priced=True,
        price_id="p:1",
        price_source="override:prices.toml",
        input_cost_usd=Decimal("0.000000000001"),
        cache_read_cost_usd=Decimal("12345678901234567890.123456789012"),
        cache_write_cost_usd=Decimal("0.1"),
        output_cost_usd=Decimal("0.3"),
        cost_usd=Decimal("12345678901234567890.523456789013"),
        cache_saving_usd=Decimal(0),
        batch_saving_usd=Decimal("0.000000000003"),
        late=True,
        ingested_at=datetime(2026, 11, 1, 0, 0, 0, 1, tzinfo=UTC),
    )
    bare = PricedEvent(
        event_id="ev-bare",
        occurred_at=datetime(2026, 10, 1, tzinfo=UTC),
        team="growth",
        provider="acme",
        model="m",
        priced=False,
        unpriced_reason="no price",
        ingested_at=datetime(2026, 10, 1, tzinfo=UTC),
    )
    write_events(sink_client, [full, bare])
    got = sink_client.query(f"SELECT {', '.join(USAGE_EVENT_COLUMNS)} FROM usage_events ORDER BY event_id").result_rows
    assert [list(row) for row in got] == [usage_event_row(bare), usage_event_row(full)]
    assert got[1][USAGE_EVENT_COLUMNS.index("occurred_at")] == datetime(2026, 10, 31, 14, 59, 59, 999999, tzinfo=UTC)
    assert got[0][USAGE_EVENT_COLUMNS.index("project")] is None
    month = sink_client.query("SELECT toYYYYMM(occurred_at) FROM usage_events WHERE event_id = 'ev-full'").result_rows
    assert month == [(202610,)], "partitioned by the UTC month of occurred_at"
    unpriced = sink_client.query("SELECT event_id, unpriced_reason, project FROM unpriced_events").result_rows
    assert unpriced == [("ev-bare", "no price", None)]
    # A batch whose nullable columns are all NULL and whose tags are all empty.
    alone = bare.model_copy(update={"event_id": "ev-alone"})
    write_events(sink_client, [alone], first_offset=2)
    got = sink_client.query(
        f"SELECT {', '.join(USAGE_EVENT_COLUMNS)} FROM usage_events WHERE event_id = 'ev-alone'"
    ).result_rows
    assert [list(row) for row in got] == [usage_event_row(alone)]


def test_the_same_batch_written_twice_changes_nothing(sink_client) -> None:
    events = sample_priced_events(500, seed=3)
    write_events(sink_client, events)
    before = totals(sink_client)
    hourly_before = sink_client.query("SELECT * FROM usage_hourly ORDER BY ALL").result_rows
    write_events(sink_client, events)
    assert totals(sink_client) == before == expected_totals(events)
    assert sink_client.query("SELECT * FROM usage_hourly ORDER BY ALL").result_rows == hourly_before
    # A different range is a different block: it is written.
    write_events(sink_client, events[:10], first_offset=500)
    assert totals(sink_client)["raw_rows"] == 510
    assert totals(sink_client)["final_rows"] == 500, "ReplacingMergeTree collapses a re-inserted event_id"


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-12"))


def test_views_answer_with_exact_totals(sink_client) -> None:
    events = sample_priced_events(3000, seed=5)
    for start in range(0, 3000, 1000):
        write_events(sink_client, events[start : start + 1000], first_offset=start)

    per_day: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    per_month: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    per_model: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    savings: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    for e in events:
        at = e.occurred_at.astimezone(UTC)
        month = at.date().replace(day=1)
        for table, key in (
            (per_day, (at.date(), e.team)),
            (per_month, (month, e.team)),
            (per_model, (month, e.provider, e.model)),
        ):
            table[key][0] += 1
            table[key][1] += e.cost_usd
        s = savings[(month, e.team)]
        s[0] += e.cache_hit
        s[1] += e.cache_saving_usd
        s[2] += e.batch
        s[3] += e.batch_saving_usd

    def view(sql: str) -> list[tuple]:
        return [tuple(row) for row in sink_client.query(sql).result_rows]

    assert view("SELECT day, team, requests, cost_usd FROM spend_per_team_day ORDER BY day, team") == sorted(
        (k[0], k[1], v[0], _q(v[1])) for k, v in per_day.items()
    )
    assert view("SELECT month, team, requests, cost_usd FROM spend_per_team_month ORDER BY month, team") == sorted(
        (k[0], k[1], v[0], _q(v[1])) for k, v in per_month.items()
    )
    assert view("SELECT month, provider, model, requests, cost_usd FROM spend_per_model ORDER BY ALL") == sorted(
        (*k, v[0], _q(v[1])) for k, v in per_model.items()
    )
    assert view(
        "SELECT month, team, cache_hits, cache_saving_usd, batch_requests, batch_saving_usd, total_saving_usd "
        "FROM cache_batch_savings ORDER BY month, team"
    ) == sorted((*k, v[0], _q(v[1]), v[2], _q(v[3]), _q(v[1] + v[3])) for k, v in savings.items())

    per_1k = view("SELECT requests, cost_usd, cost_per_1k_requests_usd FROM cost_per_1k_requests")
    assert sum(r[0] for r in per_1k) == 3000
    for requests, cost, per in per_1k:
        assert per == (cost * 1000 / requests).quantize(Decimal("1e-12"), rounding=ROUND_DOWN)


def test_spend_vs_budget_shows_the_latest_state_of_each_period(sink_client) -> None:
    def state(spend: str, updated_hour: int, period: str = "2026-10") -> BudgetState:
        return BudgetState(
            team="search",
            budget="monthly",
            period=period,
            period_start=datetime(2026, 10, 1, tzinfo=UTC),
            period_end=datetime(2026, 11, 1, tzinfo=UTC),
            spend_usd=Decimal(spend),
            limit_usd=Decimal("100"),
            percent=Decimal(spend),
            hard_limit=False,
            over_hard_limit=False,
            updated_at=datetime(2026, 10, 9, updated_hour, tzinfo=UTC),
        )

    states = [state("10.5", 1), state("80.25", 3), state("40", 2), state("1", 1, period="2026-11")]
    records = [
        SourceRecord("t.budget.state", 0, i, None, s.model_dump_json().encode(), 0) for i, s in enumerate(states)
    ]
    for insert in plan_inserts("budget", RangeBatch(OffsetRange("t.budget.state", 0, 0, 3), records)):
        write_batch(sink_client, insert)
    rows = sink_client.query(
        "SELECT period, spend_usd, remaining_usd, last_updated_at FROM spend_vs_budget ORDER BY period"
    ).result_rows
    assert rows == [
        ("2026-10", Decimal("80.25"), Decimal("19.75"), datetime(2026, 10, 9, 3, tzinfo=UTC)),
        ("2026-11", Decimal("1"), Decimal("99"), datetime(2026, 10, 9, 1, tzinfo=UTC)),
    ]
