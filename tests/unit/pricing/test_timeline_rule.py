"""Our reading of a time-of-day constraint is genai-prices' own (its private helper, read here only)."""

from __future__ import annotations

from datetime import UTC, time, timedelta, timezone

import pytest
from genai_prices import types as gp

from meterline.pricing.timeline import utc_time_of_day

TIMES = [
    time(0, 0),
    time(16, 30),
    time(23, 59, 59),
    time(16, 30, tzinfo=UTC),
    time(1, 0, tzinfo=timezone(timedelta(hours=8))),  # the day before, in UTC
    time(22, 15, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),  # the day after, in UTC
]


@pytest.mark.parametrize("value", TIMES, ids=str)
def test_utc_time_of_day_is_genai_prices_rule(value: time) -> None:
    ours = utc_time_of_day(value)
    assert ours == gp._utc_timetz(value) and ours.tzinfo is not None and ours.utcoffset() == timedelta(0)
