"""A local HTTP server that records POSTs and answers from a script, for the webhook and PagerDuty tests.

Like tests/support/slack_server.py: every request is kept (path, headers, raw body, arrival
time); answers come from the scripted plan first (429 with Retry-After, 500, 400 ...), then the
default answer. `accepted` holds the bodies answered with a 2xx, i.e. what the receiver acted on.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    """Names lower-cased."""
    body: bytes
    received: float
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class HttpDouble:
    """Run with `start()`; POST to `url(path)`."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or Answer(200, {"ok": True})
        self.requests: list[Received] = []
        self._plan: list[Answer] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def start(self) -> HttpDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def plan(self, *answers: Answer) -> None:
        with self._lock:
            self._plan.extend(answers)

    @property
    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def _next(self) -> Answer:
        with self._lock:
            return self._plan.pop(0) if self._plan else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                answer = double._next()
                with double._lock:
                    double.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            raw,
                            time.monotonic(),
                            answer.status,
                        )
                    )
                body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body or {})
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/plain" if isinstance(answer.body, str) else "application/json")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

        return Handler
