"""Calendar periods in a timezone (DST included), rolling buckets, lateness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterline.budgets.periods import (
    calendar_period,
    is_late,
    minute_of,
    previous_period,
    rolling_bounds,
    rolling_key,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "period", "tz", "key", "start", "end"),
    [
        # UTC day.
        ("2026-11-28T23:59:59", "day", "UTC", "2026-11-28", "2026-11-28T00:00:00", "2026-11-29T00:00:00"),
        # 23:30 UTC is already the next day in Berlin (UTC+1 in winter).
        ("2026-11-28T23:30:00", "day", "Europe/Berlin", "2026-11-29", "2026-11-28T23:00:00", "2026-11-29T23:00:00"),
        ("2026-11-28T22:59:59", "day", "Europe/Berlin", "2026-11-28", "2026-11-27T23:00:00", "2026-11-28T23:00:00"),
        # New York is behind: 03:00 UTC on the 1st is still the previous month there.
        ("2026-12-01T03:00:00", "month", "America/New_York", "2026-11", "2026-11-01T04:00:00", "2026-12-01T05:00:00"),
        ("2026-12-01T05:00:00", "month", "America/New_York", "2026-12", "2026-12-01T05:00:00", "2027-01-01T05:00:00"),
        # DST spring forward in Berlin (2026-03-29): a 23-hour day.
        ("2026-03-29T12:00:00", "day", "Europe/Berlin", "2026-03-29", "2026-03-28T23:00:00", "2026-03-29T22:00:00"),
        # DST fall back in Berlin (2026-10-25): a 25-hour day.
        ("2026-10-25T12:00:00", "day", "Europe/Berlin", "2026-10-25", "2026-10-24T22:00:00", "2026-10-25T23:00:00"),
        # ISO weeks start on Monday; 2026-11-28 is a Saturday in week 48.
        ("2026-11-28T10:00:00", "week", "UTC", "2026-W48", "2026-11-23T00:00:00", "2026-11-30T00:00:00"),
        # Sunday 23:30 UTC is Monday 08:30 in Tokyo: the next ISO week.
        ("2026-11-29T23:30:00", "week", "Asia/Tokyo", "2026-W49", "2026-11-29T15:00:00", "2026-12-06T15:00:00"),
        # ISO week-year differs from the calendar year at the turn of the year.
        ("2027-01-01T12:00:00", "week", "UTC", "2026-W53", "2026-12-28T00:00:00", "2027-01-04T00:00:00"),
        # A month containing the fall-back transition (Berlin October).
        ("2026-10-15T00:00:00", "month", "Europe/Berlin", "2026-10", "2026-09-30T22:00:00", "2026-10-31T23:00:00"),
    ],
)
def test_calendar_period(moment: str, period: str, tz: str, key: str, start: str, end: str) -> None:
    found = calendar_period(utc(moment), period, tz)  # type: ignore[arg-type]  # the parametrised period is a BudgetPeriod literal
    assert (found.key, found.start, found.end) == (key, utc(start), utc(end))
    assert found.start <= utc(moment) < found.end


def test_dst_day_lengths() -> None:
    spring = calendar_period(utc("2026-03-29T12:00:00"), "day", "Europe/Berlin")
    autumn = calendar_period(utc("2026-10-25T12:00:00"), "day", "Europe/Berlin")
    assert spring.length == timedelta(hours=23)
    assert autumn.length == timedelta(hours=25)


@pytest.mark.parametrize(
    ("moment", "period", "tz", "previous_key"),
    [
        ("2026-03-01T12:00:00", "month", "UTC", "2026-02"),
        ("2026-01-01T12:00:00", "month", "Europe/Berlin", "2025-12"),
        ("2026-03-30T12:00:00", "day", "Europe/Berlin", "2026-03-29"),
        ("2026-11-23T12:00:00", "week", "UTC", "2026-W47"),
    ],
)
def test_previous_period(moment: str, period: str, tz: str, previous_key: str) -> None:
    current = calendar_period(utc(moment), period, tz)  # type: ignore[arg-type]  # the parametrised period is a BudgetPeriod literal
    before = previous_period(current, period, tz)  # type: ignore[arg-type]  # the parametrised period is a BudgetPeriod literal
    assert before.key == previous_key
    assert before.end == current.start


def test_elapsed_fraction() -> None:
    day = calendar_period(utc("2026-11-28T06:00:00"), "day", "UTC")
    assert day.elapsed_fraction(utc("2026-11-28T06:00:00")) == 0.25
    assert day.elapsed_fraction(utc("2026-11-30T00:00:00")) == 1.0


@pytest.mark.parametrize(
    ("window", "key", "minutes"),
    [
        (timedelta(hours=24), "rolling:24h", 1440),
        (timedelta(days=30), "rolling:30d", 43200),
        (timedelta(minutes=90), "rolling:90m", 90),
        (timedelta(days=14), "rolling:14d", 20160),
    ],
)
def test_rolling_windows(window: timedelta, key: str, minutes: int) -> None:
    assert rolling_key(window) == key
    latest = minute_of(utc("2026-11-28T12:34:56"))
    first, last = rolling_bounds(latest, window)
    assert last == latest and last - first + 1 == minutes


def test_minute_of_is_floor() -> None:
    assert minute_of(utc("2026-11-28T12:34:00")) == minute_of(utc("2026-11-28T12:34:59.999"))
    assert minute_of(utc("2026-11-28T12:35:00")) == minute_of(utc("2026-11-28T12:34:00")) + 1


@pytest.mark.parametrize(
    ("occurred", "arrived", "late"),
    [
        ("2026-11-26T12:00:00", "2026-11-28T12:00:00", False),  # exactly 48 h: still inside
        ("2026-11-26T11:59:59", "2026-11-28T12:00:00", True),
        ("2026-11-28T11:00:00", "2026-11-28T12:00:00", False),
        ("2026-11-28T13:00:00", "2026-11-28T12:00:00", False),  # clock skew: not late
    ],
)
def test_is_late(occurred: str, arrived: str, late: bool) -> None:
    assert is_late(utc(occurred), utc(arrived), timedelta(hours=48)) is late
