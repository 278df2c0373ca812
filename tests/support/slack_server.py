"""A local HTTP server in the shape of Slack's Web API and incoming webhooks, for tests.

It keeps posted messages per channel (so conversations.history finds them by metadata),
records every request, and answers from a per-method plan of scripted responses first
(429 with Retry-After, 500, `{"ok": false, "error": ...}`), then normally. `hold` makes
chat.postMessage keep a message and then not answer until released: a client killed meanwhile
has sent but never learned so.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    args: dict[str, Any]
    headers: dict[str, str]
    received: float


class FakeSlack:
    """Run with `start()`; `base_url` is what slack-sdk's base_url should be."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.plans: dict[str, list[Scripted]] = {}
        self.known_channels: set[str] = set()
        """Channel names conversations.list reports (besides those with messages)."""
        self.hold = threading.Event()
        self.holding = threading.Event()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._ts = time.time()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/services/T000/B000/secretpath"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def plan(self, method: str, *responses: Scripted) -> None:
        with self._lock:
            self.plans.setdefault(method, []).extend(responses)

    def calls(self, method: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(method)]

    @staticmethod
    def channel_id(name: str) -> str:
        return "C" + "".join(ch for ch in name.upper() if ch.isalnum()).ljust(8, "0")[:10]

    def _answer(self, method: str, args: dict[str, Any]) -> Scripted:
        with self._lock:
            planned = self.plans.get(method)
            if planned:
                return planned.pop(0)
            if method == "chat.postMessage":
                channel = self.channel_id(str(args["channel"]).lstrip("#"))
                self._ts = max(self._ts + 0.0001, time.time())
                message = {
                    "type": "message",
                    "ts": f"{self._ts:.6f}",
                    "text": args.get("text"),
                    "blocks": args.get("blocks"),
                }
                if args.get("metadata"):
                    message["metadata"] = args["metadata"]
                self.messages.setdefault(channel, []).append(message)
                return Scripted(body={"ok": True, "channel": channel, "ts": message["ts"], "message": message})
            if method == "conversations.list":
                names = {name.lstrip("#") for name in self.known_channels}
                channels = [{"id": self.channel_id(n), "name": n} for n in sorted(names)]
                return Scripted(body={"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})
            if method == "conversations.history":
                found = [
                    m
                    for m in self.messages.get(str(args["channel"]), [])
                    if float(m["ts"]) >= float(args.get("oldest") or 0)
                ]
                if not args.get("include_all_metadata"):
                    found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
                return Scripted(body={"ok": True, "messages": list(reversed(found)), "has_more": False})
            if method == "webhook":
                return Scripted(body="ok")
            return Scripted(body={"ok": False, "error": "unknown_method"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                url = urlsplit(self.path)
                args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        args.update(json.loads(raw))
                    else:
                        args.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
                for key in ("blocks", "metadata"):
                    if isinstance(args.get(key), str):
                        args[key] = json.loads(args[key])
                if str(args.get("include_all_metadata")).lower() in {"1", "true"}:
                    args["include_all_metadata"] = True
                method = "webhook" if url.path.startswith("/services/") else url.path.rsplit("/", 1)[-1]
                with fake._lock:
                    fake.requests.append(Request(self.command, url.path, args, dict(self.headers), time.monotonic()))
                answer = fake._answer(method, args)
                if method == "chat.postMessage" and fake.hold.is_set():
                    fake.holding.set()
                    fake._release.wait(60)
                body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body or {})
                self.send_response(answer.status)
                content_type = "text/plain" if isinstance(answer.body, str) else "application/json; charset=utf-8"
                self.send_header("Content-Type", content_type)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = _handle  # noqa: N815 - http.server's handler names
            do_POST = _handle  # noqa: N815 - http.server dispatches on this name

        return Handler
