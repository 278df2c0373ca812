"""StreamProcessor against the real price catalog, with an in-memory record of its effects."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import orjson

from meterline.events import UsageEvent
from meterline.messages import AlertEvent, BudgetState, DeadLetter, PricedEvent
from meterline.priced_json import PACK_MAX_BYTES
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from meterline.stream.processor import Record, StreamProcessor

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
TOML_BUDGET = {"team": "ml", "name": "daily", "limit_usd": D("0.01"), "period": "day"}


class Recorded:
    """The effects of a batch, kept in order (the processor's contract is its order)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.tables: list[tuple[str, bytes, bytes | None, int]] = []
        self.order: list[str] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((topic, key, value, partition))
        self.order.append(topic.split(".", 1)[1])

    async def write_table(self, table: str, key: bytes, value: bytes | None, partition: int) -> None:
        self.tables.append((table, key, value, partition))
        self.order.append(f"table:{table}")

    async def flush(self, partition: int) -> None:
        self.order.append("flush")

    def on(self, topic: str) -> list[bytes]:
        """The messages sent to `topic`, a packed record's JSON lines each on its own."""
        return [line for t, _, value, _ in self.sent if t.endswith(topic) for line in value.split(b"\n")]

    def records(self, topic: str) -> list[tuple[bytes, bytes]]:
        """The records sent to `topic` as they are: (key, value)."""
        return [(key, value) for t, key, value, _ in self.sent if t.endswith(topic)]


def processor() -> StreamProcessor:
    settings = Settings(topic_prefix="p.", budgets=[TOML_BUDGET])
    return StreamProcessor(settings, PriceCatalog.load(settings.pricing), now=lambda: NOW)


def record(
    offset: int, event: UsageEvent | bytes, *, partition: int = 0, key: bytes = b"ml", arrived: datetime = NOW
) -> Record:
    value = event if isinstance(event, bytes) else event.to_json_bytes()
    return Record("p.usage", partition, offset, arrived.timestamp(), key, value)


def usage(n: int, **kw: object) -> UsageEvent:
    fields: dict[str, object] = {
        "team": "ml",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 100,
        "occurred_at": NOW - timedelta(minutes=1),
        "event_id": f"id-{n}",
    }
    fields.update(kw)
    return UsageEvent(**fields)


def test_batch_effects_in_contract_order() -> None:
    proc, out = processor(), Recorded()
    catalog = PriceCatalog.load(Settings().pricing)
    events = [usage(i) for i in range(5)]
    asyncio.run(proc.process([record(i, e) for i, e in enumerate(events)] + [record(5, b"nope")], out))
    priced = [PricedEvent.model_validate_json(v) for v in out.on("usage.priced")]
    assert [p.event_id for p in priced] == [e.event_id for e in events]
    expected = sum((catalog.price_event(e).cost_usd for e in events), D(0))
    assert sum((p.cost_usd for p in priced), D(0)) == expected
    state = BudgetState.model_validate_json(out.on("budget.state")[-1])
    assert state.spend_usd == expected
    assert DeadLetter.model_validate_json(out.on("usage.dlq")[0]).offset == 5
    # Dedup marks are the very last effects of the batch.
    assert out.order[-2:] == ["table:dedup", "flush"]
    assert out.order.index("table:dedup") > max(i for i, name in enumerate(out.order[:-1]) if name != "table:dedup")


def test_duplicates_within_and_across_batches_count_once() -> None:
    proc, out = processor(), Recorded()
    asyncio.run(proc.process([record(0, usage(1)), record(1, usage(1))], out))
    asyncio.run(proc.process([record(2, usage(1)), record(3, usage(2))], out))
    assert [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")] == ["id-1", "id-2"]
    assert proc.metrics.counts["duplicates"] == 2


def test_late_event_is_published_marked_and_moves_no_budget() -> None:
    proc, out = processor(), Recorded()
    old = usage(1, occurred_at=NOW - timedelta(hours=49))
    inside = usage(2, occurred_at=NOW - timedelta(hours=47))
    asyncio.run(proc.process([record(0, old), record(1, inside)], out))
    priced = {p.event_id: p for p in (PricedEvent.model_validate_json(v) for v in out.on("usage.priced"))}
    assert priced["id-1"].late is True and priced["id-2"].late is False
    assert proc.metrics.counts["late"] == 1
    states = [BudgetState.model_validate_json(v) for v in out.on("budget.state")]
    assert [s.spend_usd for s in states] == [priced["id-2"].cost_usd]


def test_unpriced_event_is_published_counted_and_alerted() -> None:
    proc, out = processor(), Recorded()
    asyncio.run(proc.process([record(0, usage(1, provider="nobody", model="unknown-model"))], out))
    priced = PricedEvent.model_validate_json(out.on("usage.priced")[0])
    assert priced.priced is False and priced.unpriced_reason
    assert proc.metrics.unpriced_by_team["ml"] == 1
    alerts = [AlertEvent.model_validate_json(v) for v in out.on("alerts")]
    assert [a.kind for a in alerts] == ["unpriced"]


def test_restore_from_tables_keeps_dedup_and_fired() -> None:
    proc, out = processor(), Recorded()
    big = usage(1, input_tokens=2_000_000)  # well over the $0.01 limit
    asyncio.run(proc.process([record(0, big)], out))
    fired_first = {a.alert_id for a in (AlertEvent.model_validate_json(v) for v in out.on("alerts"))}
    tables: dict[str, dict[bytes, bytes]] = {}
    for table, key, value, _ in out.tables:
        rows = tables.setdefault(table, {})
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value
    again, out2 = processor(), Recorded()
    again.restore({name: list(rows.items()) for name, rows in tables.items()})
    asyncio.run(again.process([record(1, big), record(2, usage(2, input_tokens=2_000_000))], out2))
    assert again.metrics.counts["duplicates"] == 1
    assert not {a.alert_id for a in (AlertEvent.model_validate_json(v) for v in out2.on("alerts"))} & fired_first
    cell = orjson.loads([v for t, _, v, _ in out2.tables if t == "cells" and v is not None][-1])
    assert cell["events"] == 2


def test_a_message_of_json_lines_is_each_of_its_events_and_a_bad_line_alone_goes_to_the_dlq() -> None:
    proc, out = processor(), Recorded()
    catalog = PriceCatalog.load(Settings().pricing)
    events = [usage(i) for i in range(4)]
    bad = b'{"team": "ml"}'
    packed = b"\n".join([events[0].to_json_bytes(), events[1].to_json_bytes(), bad, events[2].to_json_bytes()])
    # Event 1 again in the next message: a duplicate across messages counts once.
    again = b"\n".join([events[1].to_json_bytes(), events[3].to_json_bytes()])
    asyncio.run(proc.process([record(7, packed), record(8, again)], out))

    priced = [PricedEvent.model_validate_json(v) for v in out.on("usage.priced")]
    assert [p.event_id for p in priced] == [e.event_id for e in events]
    assert sum((p.cost_usd for p in priced), D(0)) == sum((catalog.price_event(e).cost_usd for e in events), D(0))
    (letter,) = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    assert (letter.offset, letter.error_kind) == (7, "schema")
    assert letter.reason.startswith("line 3 of 4 in the message: schema violation")
    assert base64.b64decode(letter.value_b64) == bad, "the DLQ keeps the bad line's own bytes"
    counts = proc.metrics.counts
    assert (counts["events_in"], counts["priced"], counts["dlq"], counts["duplicates"]) == (6, 4, 1, 1)
    state = BudgetState.model_validate_json(out.on("budget.state")[-1])
    assert state.spend_usd == sum((p.cost_usd for p in priced), D(0))


def test_priced_events_go_out_packed_one_record_per_team_and_partition_in_their_order() -> None:
    proc, out = processor(), Recorded()
    teams = ["ml", "search", "ml", "ads", "search", "ml"]
    events = [usage(i, team=team) for i, team in enumerate(teams)]
    batch = [record(i, e, key=e.team.encode(), partition=i % 2) for i, e in enumerate(events)]
    asyncio.run(proc.process(batch, out))
    sent = [(key, value, partition) for topic, key, value, partition in out.sent if topic.endswith("usage.priced")]
    assert sorted((key, partition) for key, _, partition in sent) == [
        (b"ads", 1),
        (b"ml", 0),
        (b"ml", 1),
        (b"search", 0),
        (b"search", 1),
    ], "one record per (team, partition) of the batch"
    for key, value, partition in sent:
        packed = [PricedEvent.model_validate_json(line) for line in value.split(b"\n")]
        assert {p.team.encode() for p in packed} == {key}
        expected = [e.event_id for i, e in enumerate(events) if e.team.encode() == key and i % 2 == partition]
        assert [p.event_id for p in packed] == expected, "a team's events keep their order"


def test_a_team_with_more_events_than_a_pack_holds_gets_several_records() -> None:
    proc, out = processor(), Recorded()
    pack_events = Settings().stream.priced_pack_events
    count = pack_events * 2 + 3
    lines = b"\n".join(usage(i).to_json_bytes() for i in range(count))
    asyncio.run(proc.process([record(0, lines)], out))
    packs = [value for _, value in out.records("usage.priced")]
    sizes = [len(value.split(b"\n")) for value in packs]
    assert len(packs) > 2 and sum(sizes) == count
    assert max(sizes) <= pack_events and max(map(len, packs)) <= PACK_MAX_BYTES
    assert [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")] == [
        f"id-{i}" for i in range(count)
    ]


def test_packs_of_one_event_are_one_record_per_event_as_before() -> None:
    settings = Settings(topic_prefix="p.", stream={"priced_pack_events": 1})
    proc, out = StreamProcessor(settings, PriceCatalog.load(settings.pricing), now=lambda: NOW), Recorded()
    asyncio.run(proc.process([record(i, usage(i)) for i in range(4)], out))
    assert [PricedEvent.model_validate_json(v).event_id for _, v in out.records("usage.priced")] == [
        f"id-{i}" for i in range(4)
    ]
