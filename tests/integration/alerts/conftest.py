"""Fixtures of the alerts integration tests: a Slack-shaped HTTP server, SMTP servers, chDB."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.http_double import Answer, HttpDouble
from tests.support.slack_server import FakeSlack
from tests.support.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer, start_smtp_server

__all__ = ["SMTP_PASSWORD", "SMTP_USER", "SmtpServer"]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[HttpDouble]:
    server = HttpDouble().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_pagerduty() -> Iterator[HttpDouble]:
    """PagerDuty's Events API v2 answers an accepted event with 202 and its dedup key."""
    server = HttpDouble(Answer(202, {"status": "success", "message": "Event processed"})).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (trustme) and a server context for 127.0.0.1 signed by it."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca_file, context


@pytest.fixture
def smtp_factory() -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd servers: plain, STARTTLS (`starttls=ctx`) or implicit TLS (`implicit_tls=ctx`)."""
    controllers: list[Any] = []

    def start(**options: Any) -> SmtpServer:
        server, controller = start_smtp_server(**options)
        controllers.append(controller)
        return server

    yield start
    for controller in controllers:
        controller.stop()
