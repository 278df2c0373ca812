"""A known cost database for the dashboard, report and Grafana tests, written by the sink's own path.

Priced events (some unpriced) over 2026-10-01 .. 2026-11-15, one monthly budget state per team
for October and November, dead letters of two kinds, and alert deliveries in each state.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from meterline.alerts.store import DeliveryLog, DeliveryRecord
from meterline.messages import BudgetState, DeadLetter
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, TopicKind, plan_inserts
from meterline.sinks.writer import write_batch
from tests.support.samples import sample_priced_events

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.messages import PricedEvent

LIMITS = {"search": Decimal(40), "support": Decimal(25), "growth": Decimal(60), "platform": Decimal(30)}
THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))
MONTHS = (
    (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "2026-10"),
    (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), "2026-11"),
)
STATE_AT = datetime(2026, 11, 15, tzinfo=UTC)
DLQ_REASONS = (("schema", "input_tokens: must be >= 0"), ("not_json", "not JSON: Expecting value at line 1"))


def write_records(client: Client, kind: TopicKind, topic: str, values: list[bytes]) -> None:
    records = [SourceRecord(topic, 0, i, None, value, 0) for i, value in enumerate(values)]
    for start in range(0, len(records), 5000):
        chunk = records[start : start + 5000]
        batch = RangeBatch(OffsetRange(topic, 0, start, start + len(chunk) - 1), chunk)
        for insert in plan_inserts(kind, batch):
            write_batch(client, insert)


def budget_states(events: list[PricedEvent]) -> list[BudgetState]:
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for event in events:
        spend[(event.team, event.occurred_at.astimezone(UTC).strftime("%Y-%m"))] += event.cost_usd
    states = []
    for start, end, key in MONTHS:
        for team, limit in sorted(LIMITS.items()):
            total = spend[(team, key)]
            states.append(
                BudgetState(
                    team=team,
                    budget="monthly",
                    period=key,
                    period_start=start,
                    period_end=end,
                    spend_usd=total,
                    limit_usd=limit,
                    percent=(total * 100 / limit).quantize(Decimal("0.0001")),
                    hard_limit=team == "growth",
                    over_hard_limit=False,
                    unpriced_events=0,
                    updated_at=min(end, STATE_AT),
                )
            )
    return states


def write_cost_data(client: Client, events: int = 4000, seed: int = 2026) -> list[PricedEvent]:
    """Fill a migrated database with the known data; return the priced events written."""
    priced = sample_priced_events(events, seed=seed)
    write_records(client, "priced", "c.usage.priced", [e.model_dump_json().encode() for e in priced])
    write_records(client, "budget", "c.budget.state", [s.model_dump_json().encode() for s in budget_states(priced)])
    letters = []
    for index in range(12):
        kind, reason = DLQ_REASONS[index % 2]
        letters.append(
            DeadLetter(
                reason=reason,
                error_kind=kind,
                topic="c.usage",
                partition=0,
                offset=index,
                key_b64=None,
                value_b64=base64.b64encode(b"{bad}").decode(),
                received_at=datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=index),
            )
        )
    write_records(client, "dlq", "c.usage.dlq", [d.model_dump_json().encode() for d in letters])
    log = DeliveryLog(client)
    log.write(
        [
            DeliveryRecord(
                "a1",
                "slack",
                "#search-costs",
                "sent",
                1,
                "",
                "C1/1.2",
                "search",
                "monthly",
                "threshold",
                "2026-11",
                datetime(2026, 11, 10, 9, tzinfo=UTC),
            ),
            DeliveryRecord(
                "a1",
                "email",
                "leads@example.org",
                "failed",
                3,
                "SMTP 550 mailbox unavailable",
                "",
                "search",
                "monthly",
                "threshold",
                "2026-11",
                datetime(2026, 11, 10, 9, 1, tzinfo=UTC),
            ),
            DeliveryRecord(
                "a2",
                "console",
                "",
                "sending",
                0,
                "",
                "",
                "platform",
                "monthly",
                "forecast",
                "2026-11",
                datetime(2026, 11, 12, 8, tzinfo=UTC),
            ),
        ]
    )
    return priced
