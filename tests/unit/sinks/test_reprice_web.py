"""The worker's /reprice door, over real HTTP on loopback: refused without a configured token,
behind the bearer check with one, and nothing but a reprice request gets through (no database
is reached in any of these)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from meterline.pricing.reprice import RepriceScope
from meterline.settings import Settings, StreamSettings
from meterline.sinks.reprice_web import RepriceRequest, mount_reprice, request_json
from meterline.stream.web_auth import bearer_middleware


def unreachable() -> None:
    raise AssertionError("no request in these tests may reach the database")


async def post(settings: Settings, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    app = web.Application(middlewares=[bearer_middleware(settings.stream)])
    mount_reprice(app, settings, unreachable)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        answer = await client.post("/reprice", data=body, headers=headers or {})
        return answer.status, await answer.text()


def test_without_a_token_configured_the_door_stays_shut() -> None:
    status, text = asyncio.run(post(Settings(), b'{"since": "2026-11-01T00:00:00Z"}'))
    assert status == 403 and "stream.web_token" in text


def test_with_a_token_a_request_without_it_is_refused() -> None:
    settings = Settings(stream=StreamSettings(web_token="t0ken"))
    status, _ = asyncio.run(post(settings, b'{"since": "2026-11-01T00:00:00Z"}'))
    assert status == 401
    status, _ = asyncio.run(post(settings, b"{}", {"Authorization": "Bearer wrong"}))
    assert status == 401


def test_anything_but_a_reprice_request_is_a_400_naming_the_field() -> None:
    settings = Settings(stream=StreamSettings(web_token="t0ken"))
    auth = {"Authorization": "Bearer t0ken"}
    for body, field in (
        (b'{"since": "2026-11-01T00:00:00Z", "sql": "DROP TABLE usage_events"}', "sql"),
        (b'{"since": "2026-11-01"}', "since"),  # a time zone is required
        (b'{"since": "2026-11-01T00:00:00Z", "team": ""}', "team"),
        (b"not json", "body"),
    ):
        status, text = asyncio.run(post(settings, body, auth))
        assert status == 400 and field in text, (body, text)


def test_the_cli_body_reads_back_as_its_scope() -> None:
    scope = RepriceScope(
        since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 11, 8, tzinfo=UTC), team="search"
    )
    parsed = RepriceRequest.model_validate(request_json(scope, apply=True, budgets=False))
    assert parsed.scope() == scope and parsed.apply and not parsed.budgets
