"""POST a body over HTTP with aiohttp for the webhook and PagerDuty channels.

One session per channel, created on first use inside the running event loop (never in
`__init__`) and closed by `aclose`. Redirects are not followed and at most `MAX_ANSWER_BYTES` of
an answer are read. Network failures become TransientDeliveryErrors whose reasons name only the
URL's origin: a URL path or query may carry a token.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from meterline.alerts.destinations import url_origin
from meterline.alerts.errors import TransientDeliveryError

MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    retry_after: str | None


class HttpPoster:
    """Send POST requests for one channel; translate network failures."""

    def __init__(self, channel: str, timeout_seconds: float) -> None:
        self._channel = channel
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                answer = await response.content.read(MAX_ANSWER_BYTES)
                return HttpAnswer(response.status, answer, response.headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:
            # Nothing was sent: a retry cannot make a copy.
            raise TransientDeliveryError(self._channel, f"cannot connect to {url_origin(url)}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientDeliveryError(
                self._channel, f"network: {type(exc).__name__} talking to {url_origin(url)}", maybe_sent=True
            ) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
