"""The named queries behind the dashboard, the chargeback report and their tests (pure: no I/O).

Each query reads the same tables the views of migration 0004 read, with the same sums:
`usage_hourly` summed (what spend_per_team_day, spend_per_model and cache_batch_savings sum),
`spend_vs_budget`, and `FINAL` reads of the side tables. The dashboard's endpoint runs only
these, by name, with their parameters bound by ClickHouse (`{name:Type}`): the page never sends
SQL. `DashboardFilter` is the one check of what a caller may ask for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args

from meterline.sinks.errors import QueryParameterError

Bucket = Literal["hour", "day"]
BUCKETS: tuple[str, ...] = get_args(Bucket)
FILTER_FIELDS = ("team", "project", "model")
MAX_FILTER_CHARS = 200
MAX_PERIOD_DAYS = 400
MAX_HOURLY_DAYS = 31
TOP_LIMIT = 10
RECENT_ALERTS = 50
MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# A filter left empty means "all"; ClickHouse compares the bound value, so nothing is spliced.
_USAGE_FILTER = """
    hour >= {start:DateTime('UTC')} AND hour < {end:DateTime('UTC')}
    AND ({team:String} = '' OR team = {team:String})
    AND ({project:String} = '' OR project = {project:String})
    AND ({model:String} = '' OR model = {model:String})"""

_SPEND_OVER_TIME = f"""
SELECT if({{bucket:String}} = 'hour', hour, toStartOfDay(hour)) AS bucket_start, team,
       sum(requests) AS requests, sum(cost_usd) AS cost_usd
FROM usage_hourly
WHERE {_USAGE_FILTER}
GROUP BY bucket_start, team
ORDER BY bucket_start, team"""

_TOTALS = f"""
SELECT sum(requests) AS requests, sum(cost_usd) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_saving_usd) AS cache_saving_usd, sum(batch_saving_usd) AS batch_saving_usd,
       sum(unpriced_requests) AS unpriced_requests, sum(error_requests) AS error_requests
FROM usage_hourly
WHERE {_USAGE_FILTER}"""

_TOP_MODELS = f"""
SELECT provider, model, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd
FROM usage_hourly
WHERE {_USAGE_FILTER}
GROUP BY provider, model
ORDER BY cost_usd DESC, provider, model
LIMIT {TOP_LIMIT}"""

_TOP_PROVIDERS = f"""
SELECT provider, sum(requests) AS requests, sum(cost_usd) AS cost_usd
FROM usage_hourly
WHERE {_USAGE_FILTER}
GROUP BY provider
ORDER BY cost_usd DESC, provider
LIMIT {TOP_LIMIT}"""

_SAVINGS = f"""
SELECT team, sum(cache_hits) AS cache_hits, sum(cache_saving_usd) AS cache_saving_usd,
       sum(batch_requests) AS batch_requests, sum(batch_saving_usd) AS batch_saving_usd,
       cache_saving_usd + batch_saving_usd AS total_saving_usd
FROM usage_hourly
WHERE {_USAGE_FILTER}
GROUP BY team
ORDER BY team"""

_UNPRICED = """
SELECT team, provider, model, unpriced_reason, count() AS requests,
       sum(toUInt64(input_tokens)) AS input_tokens, sum(toUInt64(output_tokens)) AS output_tokens
FROM unpriced_events FINAL
WHERE occurred_at >= {start:DateTime('UTC')} AND occurred_at < {end:DateTime('UTC')}
  AND ({team:String} = '' OR team = {team:String})
  AND ({project:String} = '' OR ifNull(project, '') = {project:String})
  AND ({model:String} = '' OR model = {model:String})
GROUP BY team, provider, model, unpriced_reason
ORDER BY requests DESC, team, provider, model"""

# Dead letters have no team (they failed before one was known): only the period applies.
_DLQ = """
SELECT error_kind, substring(reason, 1, 300) AS reason, count() AS dead_letters
FROM dlq_events FINAL
WHERE received_at >= {start:DateTime('UTC')} AND received_at < {end:DateTime('UTC')}
GROUP BY error_kind, reason
ORDER BY dead_letters DESC, error_kind, reason
LIMIT 50"""

_BUDGET_COLUMNS = """team, budget, period, period_start, period_end, spend_usd, limit_usd, percent,
       remaining_usd, hard_limit, over_hard_limit, unpriced_events, last_updated_at"""

# Each budget once (a daily budget has 30 periods in a month): the period that overlaps the asked
# one most, the latest of equals, so a month in another timezone is not shown by its neighbour.
_BUDGETS = f"""
SELECT {_BUDGET_COLUMNS},
       dateDiff('second', greatest(period_start, {{start:DateTime('UTC')}}), least(period_end, {{end:DateTime('UTC')}})) AS overlap_seconds
FROM spend_vs_budget
WHERE period_start < {{end:DateTime('UTC')}} AND period_end > {{start:DateTime('UTC')}}
  AND ({{team:String}} = '' OR team = {{team:String}})
ORDER BY team, budget, overlap_seconds DESC, period_start DESC
LIMIT 1 BY team, budget"""

# The report's month by its key: a monthly budget's period is named `YYYY-MM` in its own
# timezone, whose bounds may differ from the UTC month by a few hours.
_MONTH_BUDGETS = f"""
SELECT {_BUDGET_COLUMNS}
FROM spend_vs_budget
WHERE period = {{month:String}} AND ({{team:String}} = '' OR team = {{team:String}})
ORDER BY team, budget"""

_ALERTS = f"""
SELECT recorded_at, kind, team, budget, period, channel, target, status, attempts, reason
FROM alert_deliveries FINAL
WHERE recorded_at >= {{start:DateTime('UTC')}} AND recorded_at < {{end:DateTime('UTC')}}
  AND ({{team:String}} = '' OR team = {{team:String}})
ORDER BY recorded_at DESC, alert_id, channel, target
LIMIT {RECENT_ALERTS}"""

_FILTER_OPTIONS = """
SELECT groupUniqArray(team) AS teams, groupUniqArray(project) AS projects, groupUniqArray(model) AS models
FROM usage_hourly
WHERE hour >= {start:DateTime('UTC')} AND hour < {end:DateTime('UTC')}"""

# The chargeback report: one row per team x project x model of a period.
_CHARGEBACK = f"""
SELECT team, project, provider, model,
       sum(requests) AS requests, sum(error_requests) AS error_requests,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(reasoning_tokens) AS reasoning_tokens, sum(cost_usd) AS cost_usd,
       sum(cache_saving_usd) AS cache_saving_usd, sum(batch_saving_usd) AS batch_saving_usd
FROM usage_hourly
WHERE {_USAGE_FILTER}
GROUP BY team, project, provider, model
ORDER BY team, project, provider, model"""


@dataclass(frozen=True)
class NamedQuery:
    """One query the dashboard and the report may run: its SQL with `{name:Type}` parameters."""

    name: str
    sql: str
    description: str


NAMED_QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in (
        NamedQuery("spend_over_time", _SPEND_OVER_TIME, "requests and spend per team per hour or day"),
        NamedQuery("totals", _TOTALS, "requests, tokens, spend, savings and unpriced requests of the period"),
        NamedQuery("top_models", _TOP_MODELS, f"the {TOP_LIMIT} models with the most spend"),
        NamedQuery("top_providers", _TOP_PROVIDERS, f"the {TOP_LIMIT} providers with the most spend"),
        NamedQuery("savings", _SAVINGS, "cache and batch savings per team"),
        NamedQuery("unpriced", _UNPRICED, "events no price was found for, with the reason"),
        NamedQuery("dlq", _DLQ, "dead letters per kind and reason (no team: they failed before one was known)"),
        NamedQuery("budgets", _BUDGETS, "each budget's latest period overlapping the period, its latest state"),
        NamedQuery("month_budgets", _MONTH_BUDGETS, "the monthly budgets' state for the month the period starts in"),
        NamedQuery("alerts", _ALERTS, f"the {RECENT_ALERTS} latest alert deliveries and their state"),
        NamedQuery("filter_options", _FILTER_OPTIONS, "teams, projects and models seen in the period"),
        NamedQuery("chargeback", _CHARGEBACK, "requests, tokens, spend and savings per team x project x model"),
    )
}


@dataclass(frozen=True)
class DashboardFilter:
    """What every named query is asked for: a UTC period [start, end), a bucket, three filters."""

    start: datetime
    end: datetime
    bucket: Bucket = "day"
    team: str = ""
    project: str = ""
    model: str = ""

    def parameters(self) -> dict[str, object]:
        """The bound parameters, naive UTC datetimes as ClickHouse's DateTime('UTC') takes them."""
        return {
            "start": self.start.astimezone(UTC).replace(tzinfo=None),
            "end": self.end.astimezone(UTC).replace(tzinfo=None),
            "bucket": self.bucket,
            "team": self.team,
            "project": self.project,
            "model": self.model,
            "month": self.start.astimezone(UTC).strftime("%Y-%m"),
        }

    def query(self) -> dict[str, str]:
        """This filter as the query string `from_query` reads (`to` is the last day, inclusive)."""
        out = {
            "from": self.start.date().isoformat(),
            "to": (self.end - timedelta(days=1)).date().isoformat(),
            "bucket": self.bucket,
        }
        out.update({name: getattr(self, name) for name in FILTER_FIELDS if getattr(self, name)})
        return out

    @classmethod
    def from_query(cls, query: dict[str, str], *, today: date) -> DashboardFilter:
        """Check a request's query string; QueryParameterError says which value is wrong and why.

        `from` and `to` are ISO dates (UTC; `to` inclusive), by default the 30 days up to `today`.
        """
        unknown = sorted(set(query) - {"from", "to", "bucket", *FILTER_FIELDS})
        if unknown:
            raise QueryParameterError(
                f"unknown parameter(s) {', '.join(unknown)}: use from, to, bucket, team, project, model"
            )
        first = _date(query.get("from"), "from", today - timedelta(days=29))
        last = _date(query.get("to"), "to", today)
        if last < first:
            raise QueryParameterError(f"`to` ({last}) is before `from` ({first})")
        days = (last - first).days + 1
        if days > MAX_PERIOD_DAYS:
            raise QueryParameterError(f"the period is {days} days; ask for at most {MAX_PERIOD_DAYS}")
        bucket = query.get("bucket", "day")
        if bucket not in BUCKETS:
            raise QueryParameterError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket[:20]!r}")
        if bucket == "hour" and days > MAX_HOURLY_DAYS:
            raise QueryParameterError(f"hourly buckets cover at most {MAX_HOURLY_DAYS} days; use bucket=day")
        filters = {}
        for name in FILTER_FIELDS:
            value = query.get(name, "")
            if len(value) > MAX_FILTER_CHARS or any(ord(c) < 32 for c in value):
                raise QueryParameterError(f"{name} must be at most {MAX_FILTER_CHARS} printable characters")
            filters[name] = value
        return cls(
            start=datetime(first.year, first.month, first.day, tzinfo=UTC),
            end=datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1),
            bucket="hour" if bucket == "hour" else "day",
            **filters,
        )

    @classmethod
    def for_month(cls, month: str, *, team: str = "", project: str = "", model: str = "") -> DashboardFilter:
        """The calendar month `YYYY-MM` (UTC)."""
        start = month_start(month)
        return cls(start=start, end=next_month(start), team=team, project=project, model=model)


def month_start(month: str) -> datetime:
    """The UTC start of `YYYY-MM`; QueryParameterError for anything else."""
    match = MONTH_PATTERN.match(month)
    if match is None:
        raise QueryParameterError(f"the period must be a month as YYYY-MM (e.g. 2026-11), not {month[:20]!r}")
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def previous_month(start: datetime) -> datetime:
    return (start - timedelta(days=1)).replace(day=1)


def _date(value: str | None, name: str, default: date) -> date:
    if value is None or value == "":
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise QueryParameterError(f"{name} must be a date as YYYY-MM-DD, not {value[:20]!r}") from exc
