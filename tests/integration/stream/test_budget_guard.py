"""BudgetGuard raises soon after a hard-limited budget is exhausted (bounded poll, no timing)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from meterline.pricing import PriceCatalog
from meterline.producers import BudgetExceededError, BudgetGuard
from meterline.settings import Settings
from tests.integration.stream.harness import WorkerProcess, event, make_producer, produce_events

pytestmark = pytest.mark.integration


def test_guard_raises_once_hard_limit_is_exhausted(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    first = event(0, team="ml", input_tokens=10_000, output_tokens=1_000)
    cost = PriceCatalog.load(Settings().pricing).price_event(first).cost_usd
    start_worker(f"""
[[budgets]]
team = "ml"
name = "hard"
limit_usd = "{cost * 3}"
period = "month"
hard_limit = true

[[budgets]]
team = "ml"
name = "soft"
limit_usd = "{cost}"
period = "month"
""")
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    producer = make_producer(kafka_bootstrap)
    with BudgetGuard.from_settings(settings) as guard:
        assert guard.wait_ready(30)
        produce_events(
            producer, f"{topic_prefix}usage", [first, event(1, team="ml", input_tokens=10_000, output_tokens=1_000)]
        )
        deadline = time.monotonic() + 30
        while len(guard.status("ml")) < 2 or guard.status("ml")[0].spend_usd < cost * 2:
            assert time.monotonic() < deadline, "no budget state arrived"
            time.sleep(0.1)
        guard.check("ml")  # 2/3 of the hard limit; the soft budget is over but does not block
        assert [s.budget for s in guard.status("ml")] == ["hard", "soft"]
        guard.check("other-team")

        produce_events(
            producer, f"{topic_prefix}usage", [event(2, team="ml", input_tokens=10_000, output_tokens=1_000)]
        )
        producer.close()
        deadline = time.monotonic() + 30
        raised: BudgetExceededError | None = None
        while raised is None and time.monotonic() < deadline:
            try:
                guard.check("ml")
            except BudgetExceededError as exc:
                raised = exc
            time.sleep(0.1)
        assert raised is not None, "BudgetGuard did not raise within 30 s of exhausting the budget"
        assert (raised.team, raised.budget, raised.spend, raised.limit) == ("ml", "hard", cost * 3, cost * 3)
