"""What the stream's re-price tests share: a month budget and a rolling hour of 10 USD each, and
the calls they price (all inside the hour).

At the old acme price (tests/support/prices.py) the 11 calls cost 3.40 USD (34 %); at today's,
9.26 USD (92.6 %): the correction crosses 50 % and 80 %, not 100 %, in both budgets.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from meterline.events import UsageEvent
from tests.integration.stream.harness import event

BUDGET = """
[[budgets]]
team = "search"
name = "monthly"
limit_usd = "10"
period = "month"
thresholds = [50, 80, 100]

[[budgets]]
team = "search"
name = "hourly"
limit_usd = "10"
period = "rolling"
window = "1h"
thresholds = [50, 80, 100]
"""


def acme_calls(start: datetime) -> list[UsageEvent]:
    """10 acme-chat calls of 100k input and 100k output tokens (0.34 USD each at the old price,
    0.90 at today's), and one acme-new call, unpriced before, 0.26 USD today."""
    calls = [
        event(
            i,
            team="search",
            model="acme-chat",
            input_tokens=100_000,
            output_tokens=100_000,
            at=start + timedelta(seconds=i),
        )
        for i in range(10)
    ]
    calls.append(event(10, team="search", model="acme-new", input_tokens=100_000, output_tokens=100_000, at=start))
    return calls
