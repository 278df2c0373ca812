"""Fixtures of the alerts integration tests: a Slack-shaped HTTP server, SMTP servers, chDB."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.alerts.slack_server import FakeSlack

SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-pw"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SmtpServer:
    port: int
    messages: list[Any] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    """Scripted replies to DATA (e.g. "451 try later"), used before accepting normally."""


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
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

    from meterline.services.kafka_local import find_free_port

    controllers: list[Controller] = []

    def start(
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: bool = False,
        exclude: tuple[str, ...] = (),
    ) -> SmtpServer:
        server = SmtpServer(port=find_free_port())

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:
                if server.replies:
                    return server.replies.pop(0)
                server.messages.append(envelope)
                return "250 OK"

        def authenticate(_server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.login.decode() == SMTP_USER and data.password.decode() == SMTP_PASSWORD
            if ok:
                server.logins.append(mechanism)
            # handled=False: aiosmtpd itself answers 535 to a failed login.
            return AuthResult(success=ok, handled=ok)

        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": server.port}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls, server_hostname="127.0.0.1")
        if auth:
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; implicit TLS is TLS too.
            kwargs.update(
                authenticator=authenticate, auth_require_tls=implicit_tls is None, auth_exclude_mechanism=list(exclude)
            )
        controller = Controller(Handler(), **kwargs)
        controller.start()
        controllers.append(controller)
        return server

    yield start
    for controller in controllers:
        controller.stop()
