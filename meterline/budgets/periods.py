"""Budget periods: calendar day/week/month in a timezone, and rolling windows of 1-minute buckets.

A calendar period is found from an event's `occurred_at` converted to the budget's timezone;
its start and end are local midnights converted back to UTC, so a DST day is 23 or 25 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

CalendarPeriod = Literal["day", "week", "month"]
MINUTE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Period:
    """One budget period: its key (`2026-11-28`, `2026-W48`, `2026-11`) and UTC bounds [start, end)."""

    key: str
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def elapsed_fraction(self, moment: datetime) -> float:
        """How much of the period has passed at `moment` (0..1)."""
        total = self.length.total_seconds()
        done = (moment - self.start).total_seconds()
        return min(1.0, max(0.0, done / total))


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # Midnight exists in every IANA zone we care about; fold=0 picks the first if repeated.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def calendar_period(moment: datetime, period: CalendarPeriod, timezone: str) -> Period:
    """The period of `period` kind containing `moment` (aware), in `timezone`."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone).date()
    if period == "day":
        first, after = local, local + timedelta(days=1)
        key = local.isoformat()
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
        iso_year, iso_week, _ = local.isocalendar()
        key = f"{iso_year}-W{iso_week:02d}"
    elif period == "month":
        first = local.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        key = f"{local.year}-{local.month:02d}"
    else:  # pragma: no cover - Literal guards it
        raise ValueError(f"unknown calendar period {period!r}")
    return Period(key, _local_midnight(first, zone), _local_midnight(after, zone))


def previous_period(current: Period, period: CalendarPeriod, timezone: str) -> Period:
    """The period just before `current`."""
    return calendar_period(current.start - timedelta(microseconds=1), period, timezone)


def minute_of(moment: datetime) -> int:
    """The 1-minute bucket (minutes since the epoch) containing `moment`."""
    return int(moment.timestamp()) // MINUTE_SECONDS


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * MINUTE_SECONDS, tz=UTC)


def window_label(window: timedelta) -> str:
    """`24h`, `30d`, `90m`: whole days beyond one day, else hours, else minutes."""
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0 and seconds > 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rolling_key(window: timedelta) -> str:
    """The period key of a rolling budget: `rolling:24h`."""
    return f"rolling:{window_label(window)}"


def rolling_bounds(latest_minute: int, window: timedelta) -> tuple[int, int]:
    """Minute buckets [first, last] inside a rolling window ending with `latest_minute`."""
    minutes = max(1, int(window.total_seconds()) // MINUTE_SECONDS)
    return latest_minute - minutes + 1, latest_minute


def is_late(occurred_at: datetime, arrived_at: datetime, grace: timedelta) -> bool:
    """True when an event arrived more than `grace` after it occurred (it must not move budgets).

    `arrived_at` is the Kafka record's timestamp, so a replay classifies every event alike.
    """
    return arrived_at - occurred_at > grace
