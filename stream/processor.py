"""StreamProcessor: one batch of raw usage messages in, every effect out, in one order.

The order of `process()` is the contract (numbered below). Within a partition every effect of
a batch goes out through the partition's Kafka transaction: priced events (JSON Lines, one
record per team and up to `stream.priced_pack_events` events) and dead letters,
budget cells, fired alerts, budget states, alert events, then the batch's de-duplication
marks; the consumer offsets commit in the same transaction. A crash aborts the transaction
and the batch is replayed as a whole: an id is never marked seen without its effects.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from meterline.budgets import BookChanges, BudgetBook, Charge, SpendCell, is_late
from meterline.events import UsageEvent
from meterline.messages import PRICE_CORRECTION_CONTENT_TYPE, PriceCorrection
from meterline.priced_json import encode_priced_event, pack_lines
from meterline.settings import Settings
from meterline.stream.dedup import DedupChunk, DedupIndex, make_chunks
from meterline.stream.metrics import StreamMetrics
from meterline.stream.validate import (
    Rejection,
    dead_letter,
    dlq_key,
    event_lines,
    in_message,
    letter_bytes,
    record_time,
    validate_message,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TableName = str
"""`cells`, `fired` or `dedup`: the stream's changelog-backed tables."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, as the processor needs it."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def is_price_correction(self) -> bool:
        return any(
            name.lower() == "content-type" and value == PRICE_CORRECTION_CONTENT_TYPE for name, value in self.headers
        )


def record_headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """A consumed message's headers as (name, value) pairs, whatever shape the client gave them
    (faust hands over a list of pairs or a mapping)."""
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), bytes(value or b"")) for name, value in items)


class Pricer(Protocol):
    def price_event(self, event: UsageEvent) -> Any: ...


class Effects(Protocol):
    """Where a partition's effects go (the faust app's transactional producer and tables)."""

    async def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None: ...

    async def write_table(self, table: TableName, key: bytes, value: bytes | None, partition: int) -> None: ...

    async def flush(self, partition: int) -> None:
        """Hand everything buffered for `partition` to its transaction, in order."""


def check_correction(key: bytes | None, value: bytes | None) -> PriceCorrection | Rejection:
    """A PriceCorrection from one line, or why it is not one (its dead letter's kind and reason)."""
    if value is None:
        return Rejection("schema", "a price correction message without a value")
    try:
        correction = PriceCorrection.model_validate_json(value)
    except ValidationError as exc:
        return Rejection("schema", f"not a price correction: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    if key != correction.team.encode():
        return Rejection("wrong_key", f"the message key is not the correction's team {correction.team!r}")
    return correction


def correction_charge(correction: PriceCorrection) -> tuple[Charge, int]:
    """What BudgetBook.apply_corrections takes: a Charge carrying the delta, and the unpriced change."""
    charge = Charge(
        correction.event_id,
        correction.team,
        correction.project,
        correction.provider,
        correction.model,
        correction.occurred_at,
        correction.delta_usd,
        correction.unpriced_delta <= 0,
    )
    return charge, correction.unpriced_delta


class StreamProcessor:
    """Validate, de-duplicate, price and budget batches of raw usage messages."""

    def __init__(
        self,
        settings: Settings,
        pricer: Pricer,
        *,
        now: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.pricer = pricer
        self.now = now
        self.metrics = StreamMetrics()
        self.topics = {name: settings.topic(name) for name in ("usage.priced", "usage.dlq", "budget.state", "alerts")}
        self.book = self._new_book()
        self.dedup = DedupIndex(settings.stream.dedup_window.total_seconds())

    def _new_book(self) -> BudgetBook:
        stream = self.settings.stream
        return BudgetBook(
            self.settings.budgets,
            grace=stream.grace,
            forecast_min_elapsed=stream.forecast_min_elapsed,
            forecast_min_spend_fraction=stream.forecast_min_spend_fraction,
        )

    # -- restore ------------------------------------------------------------------------------
    def restore(self, tables: dict[TableName, list[tuple[bytes, bytes]]]) -> None:
        """Rebuild the in-memory book and dedup index from the tables' recovered contents."""
        self.book = self._new_book()
        self.dedup = DedupIndex(self.settings.stream.dedup_window.total_seconds())
        for _, value in tables.get("cells", []):
            self.book.load_cell(SpendCell.from_json(orjson.loads(value)))
        for key, value in tables.get("fired", []):
            self.book.load_fired(key.decode(), value.decode())
        for key, value in tables.get("dedup", []):
            self.dedup.add(DedupChunk.from_json(key.decode(), orjson.loads(value)))
        self.metrics.dedup_ids = len(self.dedup)
        log.info(
            "stream state restored",
            extra={"cells": len(self.book.cells), "fired": len(self.book.fired), "dedup_ids": len(self.dedup)},
        )

    # -- the batch ----------------------------------------------------------------------------
    async def process(self, records: Sequence[Record], effects: Effects) -> None:
        """Handle one batch; every effect of partition p goes out on partition p."""
        by_partition: dict[int, list[Record]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        received = self.now()
        for partition, batch in sorted(by_partition.items()):
            await self._process_partition(partition, batch, effects, received)
        self.metrics.counts["batches"] += 1
        self.metrics.dedup_ids = len(self.dedup)

    async def _process_partition(
        self, partition: int, batch: list[Record], effects: Effects, received: datetime
    ) -> None:
        counts = self.metrics.counts
        grace = self.settings.stream.grace
        max_bytes = self.settings.stream.max_event_bytes
        ingested_at = received.isoformat()
        new_ids: list[str] = []
        fresh: set[str] = set()
        charges: list[Charge] = []
        corrections: list[tuple[Charge, int]] = []
        priced_by_team: dict[str, list[bytes]] = {}
        # 1. Validate, de-duplicate, price: publish every priced event (packed per team, as JSON
        #    Lines) and dead letter. Whatever raises for one event (pricing, budgets,
        #    serialization) dead-letters that event only.
        for record in batch:
            lines = event_lines(record.value)
            counts["events_in"] += len(lines)
            written_at = record_time(record.timestamp, received)
            if record.is_price_correction():
                for index, value in enumerate(lines):
                    checked_correction = check_correction(record.key, value)
                    if isinstance(checked_correction, Rejection):
                        await self._dead_letter(
                            checked_correction, record, index, len(lines), value, received, effects, partition
                        )
                        continue
                    dedup_id = f"correction/{checked_correction.correction_id}"
                    if dedup_id in fresh or dedup_id in self.dedup:
                        counts["duplicates"] += 1
                        continue
                    fresh.add(dedup_id)
                    new_ids.append(dedup_id)
                    corrections.append(correction_charge(checked_correction))
                    counts["corrections"] += 1
                continue
            for index, value in enumerate(lines):
                checked = validate_message(record.key, value, max_bytes)
                if isinstance(checked, Rejection):
                    await self._dead_letter(checked, record, index, len(lines), value, received, effects, partition)
                    continue
                event = checked
                if event.event_id in fresh or event.event_id in self.dedup:
                    counts["duplicates"] += 1
                    continue
                try:
                    price = self.pricer.price_event(event)
                    late = is_late(event.occurred_at, written_at, grace)
                    body = encode_priced_event(event, price, late=late, ingested_at=ingested_at)
                    charge = None
                    if not late:
                        charge = Charge(
                            event.event_id,
                            event.team,
                            event.project,
                            event.provider,
                            event.model,
                            event.occurred_at,
                            price.cost_usd,
                            price.priced,
                        )
                        self.book.admit(charge)
                except Exception as exc:  # one event's failure is its dead letter
                    log.warning("an event could not be processed; dead-lettered", exc_info=True)
                    rejection = Rejection("processing", f"{type(exc).__name__} while processing the event: {exc}")
                    await self._dead_letter(rejection, record, index, len(lines), value, received, effects, partition)
                    continue
                fresh.add(event.event_id)
                new_ids.append(event.event_id)
                priced_by_team.setdefault(event.team, []).append(body)
                if price.priced:
                    counts["priced"] += 1
                else:
                    counts["unpriced"] += 1
                    self.metrics.unpriced_by_team[event.team] += 1
                if charge is None:
                    counts["late"] += 1
                else:
                    charges.append(charge)
        for team, bodies in priced_by_team.items():
            for pack in pack_lines(bodies, max_events=self.settings.stream.priced_pack_events):
                await effects.send(self.topics["usage.priced"], team.encode(), pack, partition)
        # 2. Budgets, aggregated per budget and period over the whole batch.
        changes = self.book.apply(charges, received) if charges else BookChanges()
        await self._write_changes(changes, effects, partition)
        if corrections:
            await self._write_changes(self.book.apply_corrections(corrections, received), effects, partition)
        # 3. Mark the batch's ids seen, then expire chunks older than the window.
        if new_ids:
            for chunk in make_chunks(partition, batch[0].offset, received.timestamp(), new_ids):
                self.dedup.add(chunk)
                await effects.write_table("dedup", chunk.key.encode(), orjson.dumps(chunk.to_json()), partition)
        for key in self.dedup.expire(partition, received.timestamp()):
            await effects.write_table("dedup", key.encode(), None, partition)
        await effects.flush(partition)

    async def _dead_letter(
        self,
        rejection: Rejection,
        record: Record,
        index: int,
        count: int,
        value: bytes | None,
        received: datetime,
        effects: Effects,
        partition: int,
    ) -> None:
        rejection = in_message(rejection, index, count)
        letter = dead_letter(
            rejection,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=value,
            received_at=received,
            line_index=index,
            line_count=count,
        )
        await effects.send(self.topics["usage.dlq"], dlq_key(record.key), letter_bytes(letter), partition)
        self.metrics.counts["dlq"] += 1
        self.metrics.dlq_by_kind[rejection.kind] += 1

    async def _write_changes(self, changes: BookChanges, effects: Effects, partition: int) -> None:
        for key, cell in changes.cells.items():
            value = orjson.dumps(cell.to_json()) if cell is not None else None
            await effects.write_table("cells", key.encode(), value, partition)
        for arm, alert_id in changes.fired.items():
            await effects.write_table("fired", arm.encode(), alert_id.encode() if alert_id else None, partition)
        for state in changes.states:
            state_key = f"{state.team}/{state.budget}".encode()
            await effects.send(self.topics["budget.state"], state_key, state.model_dump_json().encode(), partition)
            self.metrics.counts["budget_states"] += 1
        for alert in changes.alerts:
            await effects.send(self.topics["alerts"], alert.team.encode(), alert.model_dump_json().encode(), partition)
            self.metrics.counts["alerts"] += 1
            log.info(
                "alert fired", extra={"alert_id": alert.alert_id, "kind": alert.kind, "spend_usd": str(alert.spend_usd)}
            )
