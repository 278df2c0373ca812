"""Figures of a scaled-out run (lost, doubled) and, when events are missing, where they went.

`figures` counts instead of asserting (the soak script prints them after every round);
`trace_missing` follows missing events through Kafka: in the usage topic at which offsets,
whether the stream group committed past them, whether they reached usage.priced. Events the
group committed past that never reached usage.priced were lost by the stream's commit.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from tests.e2e.pipeline import MONEY_TOLERANCE, email_deliveries, expected_deliveries, slack_deliveries
from tests.e2e.scenario import Scenario
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer


def figures(
    client: Any, scenario: Scenario, slack: FakeSlack, smtp: SmtpServer, phases: int | None = None
) -> dict[str, Any]:
    """Lost and doubled events, money off, alerts missing or doubled, after `phases` phases."""
    upto = len(scenario.phases) if phases is None else phases
    expected = set(scenario.events_upto(upto))
    stored = Counter(row[0] for row in client.query("SELECT event_id FROM usage_events FINAL").result_rows)
    hourly_requests = int(client.query("SELECT sum(requests) FROM usage_hourly").result_rows[0][0] or 0)
    money = Decimal(str(client.query("SELECT sum(cost_usd) FROM usage_hourly").result_rows[0][0] or 0))
    want_money = sum((scenario.prices[i].cost_usd for i in expected), Decimal(0))
    want_slack, want_mail = expected_deliveries(scenario, scenario.expected_alerts(upto))
    got = slack_deliveries(slack) + email_deliveries(smtp)
    want = want_slack + want_mail
    return {
        "events": len(expected),
        "stored": len(stored),
        "lost": len(expected - set(stored)),
        "unexpected": len(set(stored) - expected),
        "doubled": sum(n - 1 for n in stored.values() if n > 1) + max(0, hourly_requests - len(stored)),
        "money_off_usd": str(money - want_money) if abs(money - want_money) > MONEY_TOLERANCE else "0",
        "alerts_missing": sum(1 for key in want if got[key] == 0),
        "alerts_doubled": sum(got[key] - 1 for key in got if got[key] > 1),
    }


def trace_missing(bootstrap: str, prefix: str, missing: set[str], limit: int = 20) -> str:
    """Where the missing event ids are in Kafka, and what the stream group committed."""
    if not missing:
        return "nothing missing"
    usage, priced = f"{prefix}usage", f"{prefix}usage.priced"
    found: dict[str, tuple[int, int]] = {}
    for record in _read_all(bootstrap, usage):
        for line in (record.value or b"").splitlines():
            try:
                event_id = json.loads(line).get("event_id")
            except (ValueError, AttributeError):
                continue
            if event_id in missing:
                found[event_id] = (record.partition, record.offset)
    in_priced = set()
    for record in _read_all(bootstrap, priced):
        for line in (record.value or b"").splitlines():  # the stream packs a team's events
            try:
                event_id = json.loads(line).get("event_id")
            except (ValueError, AttributeError, TypeError):
                continue
            if event_id in missing:
                in_priced.add(event_id)
    committed = _committed(bootstrap, f"{prefix}stream", usage)
    by_partition: dict[int, list[int]] = {}
    for partition, offset in found.values():
        by_partition.setdefault(partition, []).append(offset)
    lines = [f"{len(missing)} missing; {len(found)} found in {usage}; {len(in_priced)} in {priced} (read_committed)"]
    for partition, offsets in sorted(by_partition.items()):
        offsets.sort()
        past = sum(1 for o in offsets if committed.get(partition, -1) > o)
        lines.append(
            f"  {usage}[{partition}]: offsets {offsets[0]}..{offsets[-1]} ({len(offsets)}), group committed "
            f"{committed.get(partition)}: {past} of them below the committed offset"
        )
    not_found = sorted(missing - set(found))[:limit]
    if not_found:
        lines.append(f"  never in {usage}: {not_found}")
    return "\n".join(lines)


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=3000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        empty = 0
        while empty < 5 and any(consumer.position(tp) < end[tp] for tp in partitions):
            polled = consumer.poll(timeout_ms=1000)
            empty = 0 if polled else empty + 1
            for batch in polled.values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10000)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    finally:
        admin.close()
