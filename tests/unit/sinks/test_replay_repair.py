"""The pure part of the replay check: which planned rows are missing, and the rollup's shortfall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

from meterline.sinks.insert_plan import InsertBatch, SourceRecord, record_lines
from meterline.sinks.replay_repair import (
    ROLLUP_COUNTS,
    ROLLUP_MONEY,
    absent_rows,
    normalized,
    repair_token,
    rollup_shortfall,
    row_key,
)
from meterline.sinks.rows import BUDGET_SNAPSHOTS, DLQ_EVENTS, USAGE_EVENTS

WIDTH = len(ROLLUP_COUNTS) + len(ROLLUP_MONEY)
HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)


def source(offset: int) -> SourceRecord:
    return SourceRecord("usage.priced", 0, offset, None, b"{}", 0)


def usage(*ids: str) -> InsertBatch:
    rows = [[event_id, "team-a"] for event_id in ids]
    return InsertBatch(USAGE_EVENTS, ("event_id", "team"), rows, "t:0:0-9", [source(i) for i in range(len(ids))])


def measures(requests: int, cost: str) -> tuple[object, ...]:
    return (requests, *([0] * (len(ROLLUP_COUNTS) - 1)), D(cost), *([D(0)] * (len(ROLLUP_MONEY) - 1)))


def test_a_key_is_the_same_text_for_the_planned_row_and_the_row_read_back() -> None:
    planned = datetime(2026, 12, 1, 11, 30, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    read_back = datetime(2026, 12, 1, 10, 30, 0, 5)  # naive UTC, as a driver may return it
    assert normalized(planned) == normalized(read_back) == "2026-12-01T10:30:00.000005+00:00"
    assert normalized(7) == "7"
    batch = InsertBatch(BUDGET_SNAPSHOTS, ("team", "budget", "period", "updated_at", "spend_usd"), [], "t")
    assert row_key(batch, ["a", "monthly", "2026-12", planned, D(1)]) == (
        "a",
        "monthly",
        "2026-12",
        normalized(planned),
    )
    dlq = InsertBatch(DLQ_EVENTS, ("topic", "partition", "offset", "line_index", "reason"), [], "t")
    assert row_key(dlq, ["usage", 2, 40, 0, "bad"]) == ("usage", "2", "40", "0")


def test_only_the_rows_whose_key_is_missing_are_written_again_with_their_records() -> None:
    batch = usage("e1", "e2", "e3")
    missing = absent_rows(batch, {("e1",), ("e3",)}, "repair:x")
    assert missing is not None
    assert (missing.rows, missing.dedup_token, missing.sources) == ([["e2", "team-a"]], "repair:x", [source(1)])
    assert absent_rows(batch, {("e1",), ("e2",), ("e3",)}, "repair:x") is None, "all there: nothing to write"


def test_a_row_clickhouse_refused_for_good_is_not_missing() -> None:
    batch = usage("e1", "e2")
    missing = absent_rows(batch, set(), "repair:x", frozenset({("usage.priced", 0, 0, 0)}))
    assert missing is not None and missing.rows == [["e2", "team-a"]], "e1 is in dlq_events as unwritable"


def test_a_refused_line_of_a_packed_record_leaves_its_other_lines_missing() -> None:
    packed = SourceRecord("usage.priced", 0, 7, b"team-a", b'{"a":1}\n{"b":2}\n{"c":3}', 0)
    lines = record_lines(packed)
    batch = InsertBatch(USAGE_EVENTS, ("event_id", "team"), [[i, "team-a"] for i in "abc"], "t:0:7-7", lines)
    missing = absent_rows(batch, set(), "repair:x", frozenset({("usage.priced", 0, 7, 1)}))
    assert missing is not None and missing.rows == [["a", "team-a"], ["c", "team-a"]], "only line 1 is unwritable"


def test_the_rollup_gets_the_difference_and_a_key_it_holds_too_much_of_is_reported_not_written() -> None:
    a = (HOUR, "team-a", "", "openai", "gpt-4o")
    b = (HOUR, "team-b", "", "openai", "gpt-4o")
    c = (HOUR, "team-c", "p", "anthropic", "claude")
    raw = {a: measures(5, "1.5"), b: measures(2, "0.2"), c: measures(1, "0.1")}
    rollup = {a: measures(3, "1.0"), b: measures(2, "0.2"), c: measures(2, "0.2")}

    rows, ahead = rollup_shortfall(raw, rollup)

    assert rows == [[*a, *measures(2, "0.5")]], "team-a is short by 2 requests and 0.5 USD; team-b agrees"
    assert ahead == [c], "more in the rollup than in the raw table: never guessed at"
    assert len(rows[0]) == 5 + WIDTH


def test_a_key_the_rollup_lacks_entirely_is_written_whole() -> None:
    a = (HOUR, "team-a", "", "openai", "gpt-4o")
    rows, ahead = rollup_shortfall({a: measures(4, "2")}, {})
    assert rows == [[*a, *measures(4, "2")]] and ahead == []


def test_each_repair_has_its_own_token() -> None:
    assert repair_token("t:0:0-9") != repair_token("t:0:0-9")
    assert repair_token("t:0:0-9").endswith(":t:0:0-9")
