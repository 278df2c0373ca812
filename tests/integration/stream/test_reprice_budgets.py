"""Re-priced history moves the budgets through the stream: a real broker, the stream worker
pricing with the old catalog, the events stored in a real chDB the way the sink stores them,
then `run_reprice` with today's catalog and budget corrections. The current month's budget
and the rolling hour move by the exact delta, the event that got its first price leaves the unpriced count, each
threshold the correction crosses alerts once, and corrections sent again change nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.budgets.corrections import budget_horizons
from meterline.messages import AlertEvent, BudgetState, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.pricing.reprice import RepriceScope
from meterline.settings import PricingSettings, Settings
from meterline.sinks.budget_corrections import CorrectionPublisher
from meterline.sinks.client import open_client
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.reprice import BudgetCorrections, run_reprice
from meterline.sinks.writer import write_batch
from tests.integration.stream.harness import Reader, WorkerProcess, make_producer, produce_events
from tests.integration.stream.reprice_support import BUDGET, acme_calls
from tests.support.prices import ACME_PRICES_BEFORE, ACME_PRICES_NOW

pytestmark = pytest.mark.integration


def latest_state(reader: Reader, budget: str = "monthly") -> BudgetState | None:
    states = [BudgetState.model_validate_json(r.value) for r in reader.records]
    states = [state for state in states if state.budget == budget]
    return states[-1] if states else None


def test_a_reprice_moves_the_current_budget_by_the_delta_and_alerts_once(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, chdb_dsn: str
) -> None:
    before_file, now_file = tmp_path / "before.toml", tmp_path / "now.toml"
    before_file.write_text(ACME_PRICES_BEFORE, encoding="utf-8")
    now_file.write_text(ACME_PRICES_NOW, encoding="utf-8")
    worker = start_worker(f'{BUDGET}\n[pricing]\noverride_files = ["{before_file}"]\n')
    start = datetime.now(UTC) - timedelta(minutes=30)
    events = acme_calls(start)
    producer = make_producer(kafka_bootstrap)
    produce_events(producer, f"{topic_prefix}usage", events)
    producer.close()

    priced_reader = Reader(kafka_bootstrap, f"{topic_prefix}usage.priced")
    priced = [PricedEvent.model_validate_json(r.value) for r in priced_reader.poll_until(lambda rs: len(rs) >= 11)]
    assert len(priced) == 11
    states = Reader(kafka_bootstrap, f"{topic_prefix}budget.state")
    states.poll_until(lambda rs: bool(rs) and (latest_state(states) or BudgetState).unpriced_events == 1)
    before = latest_state(states)
    assert before is not None and before.spend_usd == Decimal("3.4") and before.unpriced_events == 1

    # The sink's part, done here: the priced events stored in ClickHouse.
    client = open_client(chdb_dsn)
    apply_migrations(client)
    records = [SourceRecord("t", 0, i, None, p.model_dump_json().encode(), 0) for i, p in enumerate(priced)]
    for insert in plan_inserts("priced", RangeBatch(OffsetRange("t", 0, 0, len(records) - 1), records)):
        write_batch(client, insert)

    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        budgets=[
            {"team": "search", "name": "monthly", "limit_usd": "10", "period": "month", "thresholds": [50, 80, 100]}
        ],
    )
    catalog = PriceCatalog.load(PricingSettings(override_files=[now_file]))
    publisher = CorrectionPublisher(settings).start()
    sent: list[list[object]] = []

    def send(corrections: list) -> None:
        sent.append(list(corrections))
        publisher.send(corrections)

    budgets = BudgetCorrections(budget_horizons(settings.budgets, datetime.now(UTC)), send)
    scope = RepriceScope(since=start - timedelta(hours=1))
    try:
        run = run_reprice(client, catalog, scope, run_id="r1", catalog_fingerprint="f", apply=True, budgets=budgets)
        assert run.corrections_sent == 11

        states.poll_until(lambda rs: (latest_state(states) or before).spend_usd == Decimal("9.26"))
        after = latest_state(states)
        assert after is not None and after.spend_usd == Decimal("9.26") and after.unpriced_events == 0
        states.poll_until(lambda rs: (latest_state(states, "hourly") or before).spend_usd == Decimal("9.26"))
        window = latest_state(states, "hourly")
        assert window is not None and window.period == "rolling:1h", "the rolling hour moves by the same delta"
        assert window.spend_usd == Decimal("9.26") and window.unpriced_events == 0

        alerts_reader = Reader(kafka_bootstrap, f"{topic_prefix}alerts")
        alerts_reader.poll_until(lambda rs: len([r for r in rs if b'"threshold"' in r.value]) >= 4)
        # Sent again: the same run repeated, and the same messages re-sent. Counted once.
        again = run_reprice(client, catalog, scope, run_id="r2", catalog_fingerprint="f", apply=True, budgets=budgets)
        assert again.corrections_sent == 0 and again.tally.total().changed == 0
        duplicates_before = worker.metric("meterline_stream_duplicates_total")
        publisher.send(sent[0])  # type: ignore[arg-type]
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while (
            worker.metric("meterline_stream_duplicates_total") < duplicates_before + 11 and datetime.now(UTC) < deadline
        ):
            states.settle(quiet=0.5, timeout=2)
        assert worker.metric("meterline_stream_duplicates_total") >= duplicates_before + 11
        states.settle(quiet=2)
        assert latest_state(states).spend_usd == Decimal("9.26")  # type: ignore[union-attr]
        assert latest_state(states, "hourly").spend_usd == Decimal("9.26")  # type: ignore[union-attr]

        alerts = [AlertEvent.model_validate_json(r.value) for r in alerts_reader.settle(quiet=2)]
        crossed = sorted((a.budget, a.threshold_percent or Decimal(0)) for a in alerts if a.kind == "threshold")
        assert crossed == [
            ("hourly", Decimal(50)),
            ("hourly", Decimal(80)),
            ("monthly", Decimal(50)),
            ("monthly", Decimal(80)),
        ], "each crossed threshold alerts once in each budget; 100 % is not reached"
        assert worker.metric("meterline_stream_corrections_total") == 11
    finally:
        publisher.close()
        client.close()
