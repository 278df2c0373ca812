"""Routing: which (channel, target) destinations an alert goes to. Pure.

A budget's `routes` win; budgets without routes (or alerts for a budget no longer configured)
use `alerts.default_routes`. Targets are normalised so the same destination always has the same
key in the delivery log: Slack channel name or id, sorted comma-joined email recipients, `stdout`,
the webhook URL's origin (its path and query may hold a token), `events-v2` for PagerDuty.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from meterline.alerts.errors import AlertConfigError
from meterline.alerts.webhook_render import signing_key
from meterline.messages import AlertEvent
from meterline.settings import AlertChannelName, AlertRoute, AlertSettings, BudgetConfig, Settings

CONSOLE_TARGET = "stdout"
PAGERDUTY_TARGET = "events-v2"


@dataclass(frozen=True, order=True)
class Destination:
    """One place a message goes: a channel kind and its normalised target."""

    channel: AlertChannelName
    target: str

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.target}"


def email_recipients(target: str) -> list[str]:
    """The addresses of an email target (`a@x.org,b@y.org`)."""
    return [address for address in target.split(",") if address]


def resolve_route(route: AlertRoute, alerts: AlertSettings) -> Destination:
    """The destination of one route; AlertConfigError when it cannot be delivered to."""
    if route.channel == "console":
        return Destination("console", CONSOLE_TARGET)
    if route.channel == "webhook":
        return _webhook_destination(route, alerts)
    if route.channel == "pagerduty":
        if alerts.pagerduty_routing_key is None:
            raise AlertConfigError(
                "a pagerduty route needs an Events API v2 integration key (METERLINE_ALERTS__PAGERDUTY_ROUTING_KEY), "
                "in the environment or alerts.secrets_file"
            )
        if route.target not in (None, PAGERDUTY_TARGET):
            raise AlertConfigError("a pagerduty route takes no target: its service is the integration key's")
        return Destination("pagerduty", PAGERDUTY_TARGET)
    if route.channel == "slack":
        if alerts.slack_token is None and alerts.slack_webhook_url is None:
            raise AlertConfigError(
                "a slack route needs a bot token (METERLINE_ALERTS__SLACK_TOKEN) or an incoming-webhook "
                "URL (METERLINE_ALERTS__SLACK_WEBHOOK_URL), in the environment or alerts.secrets_file"
            )
        target = (route.target or alerts.slack_default_channel).strip()
        if not target:
            raise AlertConfigError("a slack route has an empty target: name a channel such as #team-costs")
        return Destination("slack", target)
    raw = route.target.split(",") if route.target else alerts.smtp_default_recipients
    recipients = sorted({address.strip().lower() for address in raw if address.strip()})
    if not recipients:
        raise AlertConfigError("an email route has no recipients: set its target or alerts.smtp_default_recipients")
    bad = [address for address in recipients if "@" not in address]
    if bad:
        raise AlertConfigError(f"email recipients {bad} are not addresses (name@example.org)")
    return Destination("email", ",".join(recipients))


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of `url`: all that may be shown of a URL whose path or query can hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _webhook_destination(route: AlertRoute, alerts: AlertSettings) -> Destination:
    if alerts.webhook_url is None or alerts.webhook_secret is None:
        raise AlertConfigError(
            "a webhook route needs alerts.webhook_url and a signing secret alerts.webhook_secret "
            "(METERLINE_ALERTS__WEBHOOK_URL, METERLINE_ALERTS__WEBHOOK_SECRET), in the environment or alerts.secrets_file"
        )
    url = urlsplit(alerts.webhook_url.get_secret_value())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise AlertConfigError("alerts.webhook_url must be an http:// or https:// URL")
    signing_key(alerts.webhook_secret.get_secret_value())
    target = url_origin(alerts.webhook_url.get_secret_value())
    if route.target not in (None, target):
        raise AlertConfigError(f"a webhook route takes no target (its endpoint is alerts.webhook_url, {target})")
    return Destination("webhook", target)


def routes_of(team: str, budget: str, settings: Settings) -> list[AlertRoute]:
    """The configured routes of a budget, else the default routes."""
    config = find_budget(team, budget, settings.budgets)
    if config is not None and config.routes is not None:
        return config.routes
    return settings.alerts.default_routes


def find_budget(team: str, budget: str, budgets: list[BudgetConfig]) -> BudgetConfig | None:
    return next((b for b in budgets if b.team == team and b.name == budget), None)


def destinations_for(alert: AlertEvent, settings: Settings) -> list[Destination]:
    """Every destination of `alert`, deduplicated, in a stable order."""
    found = {resolve_route(route, settings.alerts) for route in routes_of(alert.team, alert.budget, settings)}
    return sorted(found)


def check_routes(settings: Settings) -> list[str]:
    """Every routing problem of the configuration, each prefixed with where it is configured."""
    problems: list[str] = []
    places: list[tuple[str, list[AlertRoute]]] = [("alerts.default_routes", settings.alerts.default_routes)]
    places += [(f"budgets[{b.key}].routes", b.routes) for b in settings.budgets if b.routes is not None]
    for place, routes in places:
        for index, route in enumerate(routes):
            try:
                resolve_route(route, settings.alerts)
            except AlertConfigError as exc:
                problems.append(f"{place}[{index}]: {exc}")
    return problems
