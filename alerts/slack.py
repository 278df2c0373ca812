"""The Slack channel: chat.postMessage with a bot token, or an incoming webhook.

slack-sdk's own retry handlers are switched off: retries, backoff and Retry-After belong to the
delivery loop, which records every attempt. Library errors become DeliveryErrors here.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from meterline.alerts.channel import Lookup
from meterline.alerts.classify import slack_failure
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.slack_render import METADATA_EVENT_TYPE, SlackMessage, alert_message, digest_message
from meterline.alerts.view import AlertView
from meterline.settings import AlertSettings

log = logging.getLogger(__name__)
# slack-sdk logs request URLs at DEBUG, and a webhook URL is a secret: its logger stays quiet.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.WARNING)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
WEBHOOK_EXTERNAL_ID = "webhook"


def render(views: list[AlertView]) -> SlackMessage:
    return alert_message(views[0]) if len(views) == 1 else digest_message(views)


class SlackChannel:
    """Post alerts to Slack; find earlier posts by their metadata after a crash."""

    name = "slack"

    def __init__(self, alerts: AlertSettings) -> None:
        timeout = max(1, int(alerts.send_timeout_seconds + 0.5))
        self._web: AsyncWebClient | None = None
        self._webhook: AsyncWebhookClient | None = None
        if alerts.slack_token is not None:
            self._web = AsyncWebClient(
                token=alerts.slack_token.get_secret_value(),
                base_url=alerts.slack_base_url,
                timeout=timeout,
                retry_handlers=[],
                logger=_sdk_log,
            )
        elif alerts.slack_webhook_url is not None:
            self._webhook = AsyncWebhookClient(
                url=alerts.slack_webhook_url.get_secret_value(), timeout=timeout, retry_handlers=[], logger=_sdk_log
            )
        self._channel_ids: dict[str, str] = {}

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        message = render(views)
        if self._web is not None:
            return await self._post(destination.target, message)
        if self._webhook is not None:
            return await self._post_webhook(message)
        raise PermanentDeliveryError("slack", "no Slack token or webhook URL is configured")

    async def _post(self, target: str, message: SlackMessage) -> str:
        assert self._web is not None
        try:
            response = await self._web.chat_postMessage(
                channel=target,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            raise _api_error(exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _network_error(exc) from exc
        channel_id = str(response.get("channel") or target)
        self._channel_ids.setdefault(target, channel_id)
        return f"{channel_id}/{response.get('ts')}"

    async def _post_webhook(self, message: SlackMessage) -> str:
        assert self._webhook is not None
        try:
            response = await self._webhook.send(text=message.text, blocks=message.blocks, unfurl_links=False)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _network_error(exc, "slack-webhook") from exc
        if response.status_code == 200:
            return WEBHOOK_EXTERNAL_ID
        body = (response.body or "").strip()[:200]
        error = body if re.fullmatch(r"[a-z_]+", body) else None
        raise slack_failure(response.status_code, error, _header(response.headers, "Retry-After"), "slack-webhook")

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        if self._web is None:
            return Lookup("unknown", why="an incoming webhook cannot read channel history")
        try:
            channel_id = await self._channel_id(destination.target)
            if channel_id is None:
                return Lookup("unknown", why=f"channel {destination.target} not found by conversations.list")
            return await self._search_history(channel_id, alert_id, since)
        except SlackApiError as exc:
            return Lookup("unknown", why=f"cannot read history: {_api_error(exc).reason}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Lookup("unknown", why=f"cannot read history: {_network_error(exc).reason}")

    async def _channel_id(self, target: str) -> str | None:
        if _CHANNEL_ID.match(target):
            return target
        if target in self._channel_ids:
            return self._channel_ids[target]
        assert self._web is not None
        name, cursor = target.lstrip("#"), None
        while True:
            page = await self._web.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=200, cursor=cursor
            )
            channel: dict[str, Any]
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    self._channel_ids[target] = str(channel["id"])
                    return self._channel_ids[target]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    async def _search_history(self, channel_id: str, alert_id: str, since: datetime) -> Lookup:
        assert self._web is not None
        cursor = None
        while True:
            page = await self._web.conversations_history(
                channel=channel_id,
                oldest=f"{since.timestamp():.6f}",
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            message: dict[str, Any]
            for message in page.get("messages", []):
                if _carries(message, alert_id):
                    return Lookup("sent", external_id=f"{channel_id}/{message.get('ts')}")
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return Lookup("not_sent")

    async def aclose(self) -> None:
        return None  # slack-sdk opens a session per request when none is passed


def _carries(message: dict[str, Any], alert_id: str) -> bool:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT_TYPE:
        return False
    payload = metadata.get("event_payload") or {}
    return alert_id == payload.get("alert_id") or alert_id in (payload.get("alert_ids") or [])


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


def _api_error(exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    error = None
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        error = data.get("error")
    return slack_failure(status, error, _header(getattr(response, "headers", None), "Retry-After"))


def _network_error(exc: BaseException, channel: str = "slack") -> TransientDeliveryError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    not_connected = isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError))
    return TransientDeliveryError(channel, f"network: {reason}", maybe_sent=not not_connected)
