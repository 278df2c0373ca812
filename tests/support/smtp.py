"""A real SMTP server (aiosmtpd) on loopback that keeps what it accepts, for tests."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-pw"


@dataclass
class SmtpServer:
    port: int
    messages: list[Any] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    """Scripted replies to DATA (e.g. "451 try later"), used before accepting normally."""


def start_smtp_server(
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    auth: bool = False,
    exclude: tuple[str, ...] = (),
) -> tuple[SmtpServer, Any]:
    """Start aiosmtpd on 127.0.0.1 (plain, STARTTLS or implicit TLS); return it and its controller.

    The caller stops the controller (`controller.stop()`).
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

    from meterline.services.kafka_local import find_free_port

    server = SmtpServer(port=find_free_port())

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
            if server.replies:
                return server.replies.pop(0)
            server.messages.append(envelope)
            return "250 OK"

    def authenticate(_server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
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
    return server, controller
