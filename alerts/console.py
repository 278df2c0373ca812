"""The console channel: alerts printed as plain text, for local runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from meterline.alerts.channel import UNKNOWN_OUTCOME, Lookup
from meterline.alerts.destinations import Destination
from meterline.alerts.email_render import alert_email, digest_email, message_id_for
from meterline.alerts.view import AlertView


class ConsoleChannel:
    """Print each alert (or digest) to a text stream, stdout by default."""

    name = "console"

    def __init__(self, stream: Callable[[], TextIO] = lambda: sys.stdout) -> None:
        self._stream = stream

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        content = alert_email(views[0]) if len(views) == 1 else digest_email(views)
        out = self._stream()
        out.write(f"=== {content.subject} ===\n{content.text}\n")
        out.flush()
        return message_id_for(content.alert_ids, "console")

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        return UNKNOWN_OUTCOME

    async def aclose(self) -> None:
        return None
