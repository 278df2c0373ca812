"""Drive a scenario through the real pipeline and check what came out (ClickHouse, Slack, SMTP).

The checks are the issue's invariants: every distinct event stored exactly once (raw table and
rollup), spend per team exact to 1e-12 USD, every malformed message in the DLQ, unpriced and
late events counted, DLQ + stored + duplicates = sent, and every expected alert delivered
exactly once to each of its routes (and nothing else delivered).
"""

from __future__ import annotations

import csv
import email
import io
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from meterline.producers import ProducerTuning, UsageProducer
from tests.e2e.scenario import Phase, Scenario, budgets_toml
from tests.integration.stream.harness import WorkerProcess
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer

SLACK_TOKEN = "xoxb-e2e-token"
MONEY_TOLERANCE = Decimal("1e-12")
Query = Callable[[str], list[list[str]]]
"""Run a SELECT, return its rows as strings (through /sql or a direct client)."""


def pipeline_toml(scenario: Scenario, slack: FakeSlack, smtp: SmtpServer) -> str:
    """meterline.toml for the worker: small stream batches, fast retries, the doubles' addresses.

    Forecast alerts are off (min elapsed = the whole period): they depend on the time of day,
    and the scenario's expected alerts must not.
    """
    return f"""
[stream]
take_max = 200
take_within = 0.05
forecast_min_elapsed = 1.0

[sink]
batch_seconds = 0.2
retry_max_seconds = 1.0

[alerts]
slack_base_url = "{slack.base_url}"
slack_default_channel = "#finance"
smtp_port = {smtp.port}
smtp_sender = "meterline@example.org"
smtp_default_recipients = ["finance@example.org"]
default_routes = [{{channel = "slack"}}, {{channel = "email"}}]
rate_limit_per_minute = 600
retry_initial_seconds = 0.1
retry_max_seconds = 1.0

{budgets_toml(scenario)}
"""


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 120.0, describe: Callable[[], str] = lambda: ""
) -> None:
    """Poll until `condition()` holds; fail naming `what` (a bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s {describe()}")
        time.sleep(0.25)


def sql_over_http(worker: WorkerProcess) -> Query:
    """Read-only SQL through the worker's /sql endpoint (it holds the embedded database)."""

    def query(sql: str) -> list[list[str]]:
        status, body = worker.get(f"/sql?q={urllib.parse.quote(sql)}&format=csv")
        if status != 200:
            raise AssertionError(f"/sql answered {status}: {body}")
        rows = list(csv.reader(io.StringIO(body)))
        return rows[1:]  # the header

    return query


def sql_direct(client: Any) -> Query:
    def query(sql: str) -> list[list[str]]:
        return [[str(v) for v in row] for row in client.query(sql).result_rows]

    return query


@dataclass
class Sender:
    """The application side: the producer SDK for events, a plain producer for bad messages."""

    bootstrap: str
    topic: str
    spool_dir: Path
    tuning: ProducerTuning | None = None
    producer: UsageProducer | None = None
    raw: KafkaProducer | None = None
    handles: list[Any] = field(default_factory=list)

    def __enter__(self) -> Sender:
        self.producer = UsageProducer(self.bootstrap, self.topic, self.spool_dir, tuning=self.tuning).start()
        self.raw = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.raw is not None:
            self.raw.close(10)
        if self.producer is not None:
            self.producer.close(30)

    def send_raw(self, phase: Phase) -> None:
        assert self.raw is not None
        for raw in phase.raw:
            self.raw.send(self.topic, key=raw.key, value=raw.value)
        self.raw.flush(30)

    def emit(
        self, phase: Phase, *, slices: int = 1, pause: float = 0.0, after_slice: Callable[[int], None] | None = None
    ) -> None:
        """Emit the phase's events in `slices` parts, `pause` seconds apart; `after_slice(i)` after each."""
        assert self.producer is not None
        size = max(1, -(-len(phase.events) // slices))
        for index, start in enumerate(range(0, len(phase.events), size)):
            self.handles += [self.producer.emit(event) for event in phase.events[start : start + size]]
            if after_slice is not None:
                after_slice(index)
            if pause:
                time.sleep(pause)

    def send(self, phase: Phase, **options: Any) -> None:
        self.send_raw(phase)
        self.emit(phase, **options)
        assert self.producer is not None
        assert self.producer.flush(60), "the producer did not settle its events within 60 s"

    def outcomes(self) -> Counter[str]:
        return Counter(handle.outcome for handle in self.handles)


# -- waiting ------------------------------------------------------------------------------------
def stored_counts(query: Query) -> tuple[int, int, int]:
    """(distinct events in usage_events, DLQ rows, unpriced rows)."""
    row = query(
        "SELECT (SELECT uniqExact(event_id) FROM usage_events), (SELECT count() FROM dlq_events FINAL), "
        "(SELECT count() FROM unpriced_events FINAL)"
    )[0]
    return int(row[0]), int(row[1]), int(row[2])


def wait_stored(query: Query, scenario: Scenario, phases: int | None = None, timeout: float = 120.0) -> None:
    """Wait until ClickHouse holds the first `phases` phases' events and bad messages."""
    upto = len(scenario.phases) if phases is None else phases
    events = len(scenario.events_upto(upto))
    dlq = sum(len(p.raw) for p in scenario.phases[:upto])
    unpriced = len(scenario.unpriced_ids & set(scenario.events_upto(upto)))
    last: list[Any] = []

    def done() -> bool:
        try:
            last[:] = [stored_counts(query)]
        except (AssertionError, OSError) as exc:  # the endpoint or engine is busy: try again
            last[:] = [repr(exc)]
            return False
        return last[0] == (events, dlq, unpriced)

    wait_for(
        done,
        f"ClickHouse to hold {(events, dlq, unpriced)} (events, dlq, unpriced)",
        timeout,
        lambda: f"(last: {last})",
    )


def slack_deliveries(slack: FakeSlack) -> Counter[tuple[str, str]]:
    """(channel id, alert id) -> how many Slack messages carried that alert (digests included)."""
    counts: Counter[tuple[str, str]] = Counter()
    with slack._lock:
        messages = {channel: list(found) for channel, found in slack.messages.items()}
    for channel, found in messages.items():
        for message in found:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            for alert_id in payload.get("alert_ids") or [payload.get("alert_id")]:
                counts[(channel, alert_id)] += 1
    return counts


def email_deliveries(smtp: SmtpServer) -> Counter[tuple[str, str]]:
    """(recipient, alert id) -> how many emails carried that alert (digests included)."""
    counts: Counter[tuple[str, str]] = Counter()
    for envelope in list(smtp.messages):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        ids = str(message["X-Meterline-Alert-Ids"] or "").split(",")
        for recipient in envelope.rcpt_tos:
            for alert_id in ids:
                counts[(recipient, alert_id.strip())] += 1
    return counts


def expected_deliveries(
    scenario: Scenario, alert_ids: set[str]
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """What Slack and SMTP must have received: each (destination, alert) exactly once."""
    slack: Counter[tuple[str, str]] = Counter()
    mail: Counter[tuple[str, str]] = Counter()
    for alert_id in alert_ids:
        for channel, target in scenario.routes(alert_id):
            if channel == "slack":
                slack[(FakeSlack.channel_id(target.lstrip("#")), alert_id)] += 1
            else:
                mail[(target, alert_id)] += 1
    return slack, mail


def wait_alerts(
    scenario: Scenario, slack: FakeSlack, smtp: SmtpServer, phases: int | None = None, timeout: float = 120.0
) -> None:
    """Wait until every alert expected after `phases` phases reached both receivers."""
    want_slack, want_mail = expected_deliveries(scenario, scenario.expected_alerts(phases))

    def done() -> bool:
        return set(want_slack) <= set(slack_deliveries(slack)) and set(want_mail) <= set(email_deliveries(smtp))

    wait_for(
        done,
        "every expected alert on Slack and SMTP",
        timeout,
        lambda: (
            f"(slack missing {set(want_slack) - set(slack_deliveries(slack))}, email missing {set(want_mail) - set(email_deliveries(smtp))})"
        ),
    )


def wait_recorded(query: Query, scenario: Scenario, phases: int | None = None, timeout: float = 60.0) -> None:
    """Wait until alert_deliveries records every expected delivery `sent` (nothing in flight)."""
    want = sum(len(scenario.routes(a)) for a in scenario.expected_alerts(phases))

    def done() -> bool:
        try:
            rows = query("SELECT countIf(status = 'sent'), count() FROM alert_deliveries FINAL")
        except (AssertionError, OSError):
            return False
        return [int(v) for v in rows[0]] == [want, want]

    wait_for(done, f"{want} deliveries recorded sent", timeout)


def run_phases(
    scenario: Scenario,
    sender: Sender,
    query: Callable[[], Query],
    slack: FakeSlack,
    smtp: SmtpServer,
    bulk_fault: Callable[[int, Any], None],
) -> None:
    """Send every phase; `bulk_fault(k, phase)` sends bulk phase k and injects the fault.

    After each phase: wait until ClickHouse holds it; after a spike, until its alerts are
    delivered and recorded (so the next fault never cuts an alert send in two).
    """
    bulk = 0
    for index, phase in enumerate(scenario.phases, start=1):
        if phase.spike:
            sender.send(phase)
        else:
            bulk_fault(bulk, phase)
            bulk += 1
        wait_stored(query(), scenario, index, timeout=180)
        if phase.spike:
            wait_alerts(scenario, slack, smtp, index)
            wait_recorded(query(), scenario, index)


# -- the checks -----------------------------------------------------------------------------
def check_clickhouse(client: Any, scenario: Scenario) -> None:
    """Every distinct event once, exact money per team, DLQ and unpriced, nothing unaccounted."""
    expected_ids = Counter(scenario.events.keys())
    stored_ids = Counter(row[0] for row in client.query("SELECT event_id FROM usage_events FINAL").result_rows)
    missing, extra = set(expected_ids) - set(stored_ids), set(stored_ids) - set(expected_ids)
    assert not missing and not extra, f"{len(missing)} events missing, {len(extra)} unexpected"
    assert stored_ids == expected_ids, "an event is stored more than once"
    raw = client.query("SELECT count(), uniqExact(event_id) FROM usage_events").result_rows[0]
    assert raw[1] == len(expected_ids)

    totals = scenario.totals_by_team()
    final = {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in client.query(
            "SELECT team, count(), sum(cost_usd), countIf(late), countIf(NOT priced) FROM usage_events FINAL GROUP BY team"
        ).result_rows
    }
    hourly = {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in client.query(
            "SELECT team, sum(requests), sum(cost_usd), sum(late_requests), sum(unpriced_requests) FROM usage_hourly GROUP BY team"
        ).result_rows
    }
    events = scenario.events
    for team, (count, cost) in totals.items():
        late = sum(1 for i in scenario.late_ids if events[i].team == team)
        unpriced = sum(1 for i in scenario.unpriced_ids if events[i].team == team)
        for table, got in (("usage_events FINAL", final.get(team)), ("usage_hourly", hourly.get(team))):
            assert got is not None, f"{table} has no rows for {team}"
            assert (got[0], got[2], got[3]) == (count, late, unpriced), (
                f"{table} {team}: {got} vs {(count, cost, late, unpriced)}"
            )
            assert abs(Decimal(got[1]) - cost) <= MONEY_TOLERANCE, f"{table} {team}: spend {got[1]} != {cost}"
    assert set(final) == set(totals) == set(hourly)

    dlq = Counter(row[0] for row in client.query("SELECT error_kind FROM dlq_events FINAL").result_rows)
    assert dlq == scenario.malformed, f"DLQ holds {dlq}, sent {scenario.malformed}"
    unpriced_rows = {row[0] for row in client.query("SELECT event_id FROM unpriced_events FINAL").result_rows}
    assert unpriced_rows == scenario.unpriced_ids
    # Nothing unaccounted for: every message sent is stored, a known duplicate, or in the DLQ.
    assert sum(dlq.values()) + len(stored_ids) + scenario.duplicate_sends == scenario.sends


def check_alerts(client: Any, scenario: Scenario, slack: FakeSlack, smtp: SmtpServer) -> None:
    """Each expected alert exactly once per route, nothing else delivered, each recorded `sent`."""
    expected = scenario.expected_alerts()
    assert scenario.threshold_alerts(), "the scenario crosses no threshold: it would prove nothing"
    want_slack, want_mail = expected_deliveries(scenario, expected)
    assert slack_deliveries(slack) == want_slack
    assert email_deliveries(smtp) == want_mail
    rows = client.query("SELECT alert_id, channel, status FROM alert_deliveries FINAL").result_rows
    recorded = Counter((alert_id, channel) for alert_id, channel, _ in rows)
    assert recorded == Counter({(a, c): 1 for a in expected for c, _ in scenario.routes(a)})
    assert {status for _, _, status in rows} == {"sent"}, Counter(status for _, _, status in rows)
