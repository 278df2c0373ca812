"""Commands of meterline.alerts (registered on the main `meterline` app).

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Optional

import typer

alerts_app = typer.Typer(
    help="Alert delivery to Slack, email, webhooks, PagerDuty and the console: send a test message, list recent deliveries.",
    no_args_is_help=True,
)


CHANNELS = ("slack", "email", "webhook", "pagerduty", "console")


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
    alerts_app.command("test")(test_message)
    alerts_app.command("list")(list_deliveries)
    app.add_typer(alerts_app, name="alerts")


def test_message(
    ctx: typer.Context,
    channel: Annotated[
        str, typer.Option("--channel", help="Which channel to try: slack, email, webhook, pagerduty or console.")
    ] = "console",
    target: Annotated[
        Optional[str],
        typer.Option(help="Slack channel or email recipients (default: the first configured route of that channel)."),
    ] = None,
) -> None:
    """Send a test alert through the configured route of a channel and report the outcome.

    Uses the same settings, secrets, retries and rendering as the worker's dispatcher (retries
    stop after at most 30 s here). Exits 1 when the message could not be delivered. The test is
    not recorded in alert_deliveries. A PagerDuty test opens an incident (dedup key
    meterline/test/...): resolve it in PagerDuty.
    """
    import asyncio
    import time

    from rich.console import Console

    from meterline.alerts.delivery import send_with_retries
    from meterline.alerts.destinations import resolve_route
    from meterline.alerts.dispatcher import default_channels
    from meterline.alerts.errors import AlertConfigError
    from meterline.alerts.retry import RetryPolicy
    from meterline.alerts.secrets import with_secrets
    from meterline.alerts.testing import make_test_alert, route_for_test
    from meterline.alerts.view import alert_view
    from meterline.cli_support import fail, settings_from

    if channel not in CHANNELS:
        raise fail(f"unknown channel {channel!r}: use --channel {', '.join(CHANNELS[:-1])} or {CHANNELS[-1]}")
    settings = settings_from(ctx)
    now = datetime.now(UTC)
    try:
        settings = settings.model_copy(update={"alerts": with_secrets(settings.alerts)})
        destination = resolve_route(route_for_test(settings, channel, target), settings.alerts)  # type: ignore[arg-type]  # checked against the channel names just above
        view = alert_view(make_test_alert(now), now, settings.alerts.dashboard_url)
    except AlertConfigError as exc:
        raise fail(str(exc)) from exc
    alerts = settings.alerts
    policy = RetryPolicy(
        alerts.retry_initial_seconds, alerts.retry_max_seconds, min(alerts.retry_deadline_seconds, 30.0)
    )

    async def send():
        sender = default_channels(settings, lambda: datetime.now(UTC))[channel]
        try:
            return await send_with_retries(sender, destination, [view], policy, time.monotonic)
        finally:
            await sender.aclose()

    console = Console(stderr=channel == "console")
    with console.status(f"sending a test alert to {destination.label}"):
        outcome = asyncio.run(send())
    if not outcome.sent:
        raise fail(f"{destination.label}: not delivered after {outcome.attempts} attempt(s): {outcome.reason}")
    console.print(
        f"[green]delivered[/green] to {destination.label} after {outcome.attempts} attempt(s) (id {outcome.external_id})",
        highlight=False,
    )


def list_deliveries(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="How far back: 90s, 15m, 24h, 7d, 2w.")] = "24h",
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many deliveries.")] = 100,
) -> None:
    """Show recent alert deliveries and their status (sending, sent, failed) from ClickHouse.

    Reads alert_deliveries through METERLINE_CLICKHOUSE_DSN (default: the embedded database),
    or through the worker's /sql endpoint while a `meterline worker` holds the embedded database.
    """
    from datetime import timedelta

    from rich.console import Console
    from rich.table import Table

    from meterline.alerts.store import DeliveryLog
    from meterline.cli_support import fail, settings_from
    from meterline.settings import is_embedded_dsn, parse_duration
    from meterline.sinks.client import ClickHouseUnavailableError, open_client
    from meterline.sinks.routing import embedded_path, embedded_path_is_held

    window = parse_duration(since)
    if not isinstance(window, timedelta):
        raise fail(f"--since {since!r} is not a duration: use e.g. 90s, 15m, 24h, 7d")
    settings = settings_from(ctx)
    dsn = settings.effective_clickhouse_dsn
    if is_embedded_dsn(dsn) and embedded_path_is_held(embedded_path(dsn)):
        records = _recent_via_worker(settings, datetime.now(UTC) - window, limit)
    else:
        try:
            client = open_client(dsn)
        except ClickHouseUnavailableError as exc:
            raise fail(str(exc)) from exc
        try:
            if not client.command("EXISTS TABLE alert_deliveries"):
                raise fail("ClickHouse has no alert_deliveries table yet: run `meterline migrate`")
            records = DeliveryLog(client).recent(datetime.now(UTC) - window, limit)
        finally:
            client.close()
    console = Console()
    if not records:
        console.print(f"no alert deliveries in the last {since}")
        return
    table = Table(title=f"alert deliveries, last {since}")
    for column in ("recorded", "status", "channel", "target", "alert", "attempts", "reason / id"):
        table.add_column(column)
    colours = {"sent": "green", "failed": "red", "sending": "yellow"}
    for record in records:
        table.add_row(
            record.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"[{colours.get(record.status, 'white')}]{record.status}[/]",
            record.channel,
            record.target,
            record.alert_id,
            str(record.attempts),
            record.reason or record.external_id,
        )
    console.print(table)


def _recent_via_worker(settings, since: datetime, limit: int):
    """DeliveryLog.recent through the worker's /sql, for when the worker holds the database."""
    import orjson

    from meterline.alerts.store import COLUMNS, TABLE, DeliveryRecord
    from meterline.cli_support import fail
    from meterline.sinks.errors import SinkError
    from meterline.sinks.routing import query_via_worker

    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL "
        f"WHERE recorded_at >= toDateTime64('{since.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC') "
        f"ORDER BY recorded_at DESC LIMIT {int(limit)}"
    )
    try:
        _, body = query_via_worker(settings, sql, "json")
    except SinkError as exc:
        raise fail(str(exc)) from exc
    records = []
    for row in orjson.loads(body)["rows"]:
        values = [row[column] for column in COLUMNS]
        values[4] = int(values[4])
        values[11] = datetime.fromisoformat(str(values[11])).replace(tzinfo=UTC)
        records.append(DeliveryRecord(*values))
    return records
