"""What every channel adapter (Slack, email, console) offers the delivery loop.

`send` renders and sends one alert or a digest and returns an external id (Slack `channel/ts`,
email Message-ID). `lookup` answers, after a crash, whether a message for an alert was already
delivered: only Slack can tell (by message metadata); the others answer "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from meterline.alerts.destinations import Destination
from meterline.alerts.view import AlertView

LookupAnswer = Literal["sent", "not_sent", "unknown"]


@dataclass(frozen=True)
class Lookup:
    """Whether an earlier attempt reached the destination; `why` explains an unknown answer."""

    answer: LookupAnswer
    external_id: str = ""
    why: str = ""


UNKNOWN_OUTCOME = Lookup("unknown", why="this channel cannot confirm a past delivery")


class Channel(Protocol):
    """A destination kind that can send alerts."""

    name: str

    async def send(self, destination: Destination, views: list[AlertView]) -> str:
        """Send one alert (one view) or a digest (several); raise DeliveryError on failure."""
        ...

    async def lookup(self, destination: Destination, alert_id: str, since: datetime) -> Lookup:
        """Find a message for `alert_id` sent to `destination` after `since`."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...
