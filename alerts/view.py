"""What an alert says, independent of where it is shown (Slack, email, console). Pure.

`alert_view` turns an AlertEvent, the time now and an optional dashboard link template into an
`AlertView` of plain strings; the Slack and email renderers only lay those strings out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from meterline.alerts.errors import AlertConfigError
from meterline.messages import AlertEvent

BAR_CELLS = 10
TOP_MODELS_SHOWN = 5
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class AlertView:
    """The pieces of one alert message, as text."""

    alert_id: str
    kind: str
    title: str
    """One sentence: who crossed what."""
    summary: str
    """One line for notifications and fallbacks: title and spend."""
    facts: tuple[tuple[str, str], ...]
    """Labelled values in display order (Team, Budget, Period, Spend, ...)."""
    bar: str
    percent: str
    percent_value: Decimal
    top_models: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    """Sentences shown under the facts (unpriced events, hard limit)."""
    footer: tuple[str, ...]
    """Resets-in and last-period lines."""
    link: str | None


def format_usd(amount: Decimal) -> str:
    """`$1,234.57`; sub-cent amounts keep four decimals (`$0.0042`) so they do not read as zero."""
    if amount != 0 and abs(amount) < _CENT:
        return f"${amount.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP):,}"
    return f"${amount.quantize(_CENT, rounding=ROUND_HALF_UP):,}"


def format_percent(value: Decimal) -> str:
    """`81.2%`, `80%`."""
    text = f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def percent_bar(percent: Decimal, cells: int = BAR_CELLS) -> str:
    """`████████░░` for 81%; full (never longer) at or above 100%."""
    filled = max(0, min(cells, int(percent * cells // 100)))
    return "█" * filled + "░" * (cells - filled)


def humanize_until(moment: datetime, now: datetime) -> str:
    """`in 3 days`, `in 5 hours`, `in 12 minutes`; `now` when the moment has passed."""
    seconds = (moment - now).total_seconds()
    if seconds <= 30:
        return "now"
    hours = seconds / 3600
    if hours >= 36:
        return _plural(int(hours / 24 + 0.5), "day")
    if hours >= 1.5:
        return _plural(int(hours + 0.5), "hour")
    return _plural(max(1, int(seconds / 60 + 0.5)), "minute")


def _plural(count: int, unit: str) -> str:
    return f"in {count} {unit}" + ("" if count == 1 else "s")


def period_span(alert: AlertEvent) -> str:
    """`2026-11 (Nov 1 – Dec 1, 2026, UTC)`, in the budget's timezone."""
    zone = ZoneInfo(alert.timezone)
    start, end = alert.period_start.astimezone(zone), alert.period_end.astimezone(zone)
    midnight = start.time() == end.time() == datetime.min.time()
    fmt = "%b %-d" if midnight else "%b %-d %H:%M"
    return f"{alert.period} ({start.strftime(fmt)} – {end.strftime(fmt)}, {end.year}, {alert.timezone})"


def dashboard_link(template: str | None, alert: AlertEvent) -> str | None:
    """Fill `{team}`, `{budget}`, `{period}`, `{alert_id}`, `{kind}` (URL-quoted) into the template."""
    if not template:
        return None
    values = {
        "team": alert.team,
        "budget": alert.budget,
        "period": alert.period,
        "alert_id": alert.alert_id,
        "kind": alert.kind,
    }
    try:
        return template.format_map({key: quote(value, safe="") for key, value in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise AlertConfigError(
            f"alerts.dashboard_url {template!r} has an unknown placeholder ({exc}); use only {{{'}, {'.join(values)}}}"
        ) from exc


def _title(alert: AlertEvent) -> str:
    name = f"{alert.team}/{alert.budget}"
    period = "rolling" if alert.period.startswith("rolling") else _period_word(alert.period)
    if alert.kind == "threshold":
        threshold = alert.threshold_percent if alert.threshold_percent is not None else alert.percent
        return f"{name} crossed {format_percent(threshold)} of its {period} budget"
    if alert.kind == "forecast":
        forecast = alert.forecast_usd if alert.forecast_usd is not None else alert.spend_usd
        return f"{name} is forecast to spend {format_usd(forecast)} this period (limit {format_usd(alert.limit_usd)})"
    return f"{name} has {alert.unpriced_events} unpriced events this period"


def _period_word(period: str) -> str:
    if "-W" in period:
        return "weekly"
    return {1: "yearly", 2: "monthly", 3: "daily"}.get(period.count("-") + 1, "period")


def _forecast_text(alert: AlertEvent) -> str | None:
    if alert.forecast_usd is None:
        return None
    share = alert.forecast_usd * 100 / alert.limit_usd
    return f"{format_usd(alert.forecast_usd)} at period end ({format_percent(share)} of limit)"


def alert_view(alert: AlertEvent, now: datetime, dashboard_url: str | None = None) -> AlertView:
    """Everything one alert message says."""
    spend = f"{format_usd(alert.spend_usd)} of {format_usd(alert.limit_usd)} ({format_percent(alert.percent)})"
    facts: list[tuple[str, str]] = [
        ("Team", alert.team),
        ("Budget", alert.budget),
        ("Period", period_span(alert)),
        ("Spend", spend),
    ]
    if alert.threshold_percent is not None:
        facts.append(("Threshold crossed", format_percent(alert.threshold_percent)))
    forecast = _forecast_text(alert)
    if forecast is not None:
        facts.append(("Forecast", forecast))
    notes: list[str] = []
    if alert.unpriced_events:
        notes.append(f"{alert.unpriced_events} events could not be priced; their cost is not in the spend above.")
    if alert.hard_limit and alert.percent >= 100:
        notes.append("This budget has a hard limit: further calls are being refused.")
    footer: list[str] = []
    if alert.period.startswith("rolling"):
        footer.append(f"Rolling {alert.period.removeprefix('rolling:')} window: spend leaves it as it ages")
    else:
        footer.append(f"Resets {humanize_until(alert.period_end, now)}")
    if alert.previous_period_spend_usd is not None:
        footer.append(f"Last period: {format_usd(alert.previous_period_spend_usd)}")
    top = tuple(
        (f"{m.provider}/{m.model}", format_usd(m.spend_usd))
        for m in sorted(alert.top_models, key=lambda m: (-m.spend_usd, m.provider, m.model))[:TOP_MODELS_SHOWN]
    )
    title = _title(alert)
    return AlertView(
        alert_id=alert.alert_id,
        kind=alert.kind,
        title=title,
        summary=f"{title}: {spend}",
        facts=tuple(facts),
        bar=percent_bar(alert.percent),
        percent=format_percent(alert.percent),
        percent_value=alert.percent,
        top_models=top,
        notes=tuple(notes),
        footer=tuple(footer),
        link=dashboard_link(dashboard_url, alert),
    )
