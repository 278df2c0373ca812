"""The sink and the alert dispatcher of `meterline worker` in a child process.

Why: the stream, the sink and the dispatcher are Python code under one GIL. At 10,000 events/s
the stream alone needs most of a core, and with the sink beside it the process was
GIL-bound: delays of seconds while the second core idled. They share no state (each reads its
own Kafka topic), so the sink and the dispatcher run in a child process that owns the
ClickHouse connection (the embedded chDB database still has one process), with their own
small web server on a loopback port. The parent proxies /sql to it and folds its /healthz
into its own.

The child dies with the parent (PR_SET_PDEATHSIG), so `kill -9` of the worker leaves no
orphan holding the database; the parent restarts a child that exits on its own.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

from meterline.settings import Settings

log = logging.getLogger(__name__)

CHILD_PARTS: tuple[Literal["sink", "alerts"], ...] = ("sink", "alerts")
HEALTH_POLL_S = 1.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)
STOP_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_settings(settings: Settings, port: int) -> Settings:
    """The parent's settings with the child's web server on a loopback port of its own."""
    stream = settings.stream.model_copy(update={"web_host": "127.0.0.1", "web_port": port})
    return settings.model_copy(update={"stream": stream})


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


RunParts = Callable[[Settings, set[str], str], int]
"""Runs the named parts of the worker until stopped; returns the exit code (the worker's own
entry, handed in so this module does not import the worker that imports it)."""


def _child_main(run_parts: RunParts, settings: Settings, log_level: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    sys.exit(run_parts(settings, set(CHILD_PARTS), log_level))


class Sidecar:
    """Starts, watches, restarts and stops the child process running the sink and the dispatcher."""

    def __init__(self, settings: Settings, log_level: str, run_parts: RunParts) -> None:
        self.port = 0
        self.url = ""
        """The child's web server; a new port for each child (see `_spawn`)."""
        self._settings = settings
        self._log_level = log_level
        self._run_parts = run_parts
        self._stopping = threading.Event()
        self._process: Any = None
        self._health: dict[str, bool] = {}
        self._health_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> Sidecar:
        # One long-lived thread spawns every child: PR_SET_PDEATHSIG fires when the *thread*
        # that forked the child ends, so it must not be a short-lived one.
        self._thread = threading.Thread(target=self._supervise, name="meterline-sidecar", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """SIGTERM the child (the sink writes what it holds, the dispatcher stops) and wait."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S + 15)

    def checks(self) -> list[Callable[[], tuple[str, bool]]]:
        """Health checks of the child's parts, from its /healthz (polled every second)."""
        return [self._check_of(part) for part in CHILD_PARTS]

    def _check_of(self, part: str) -> Callable[[], tuple[str, bool]]:
        def check() -> tuple[str, bool]:
            with self._health_lock:
                return part, self._health.get(part, False)

        return check

    # -- the supervising thread -----------------------------------------------------------------
    def _spawn(self) -> None:
        # A fresh port for every child: between a child's death and its restart, any outgoing
        # connection on the machine may get the old port as its ephemeral port (seen in CI: a
        # restarted child failed to bind three times in a row).
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_child_main,
            args=(self._run_parts, child_settings(self._settings, self.port), self._log_level, os.getpid()),
            name="meterline-sink-alerts",
            daemon=False,
        )
        self._process.start()
        log.info("sink and alerts process started", extra={"pid": self._process.pid, "port": self.port})

    def _supervise(self) -> None:
        failures = 0
        self._spawn()
        try:
            while not self._stopping.wait(HEALTH_POLL_S):
                process = self._process
                if process.is_alive():
                    self._poll_health()
                    continue
                self._set_health({})
                wait_s = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                log.error(
                    "the sink and alerts process exited with %s; restarting it in %.0f s", process.exitcode, wait_s
                )
                failures += 1
                if self._stopping.wait(wait_s):
                    return
                self.restarts += 1
                self._spawn()
        finally:
            self._terminate()

    def _poll_health(self) -> None:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310 - the child's http:// URL
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        except OSError:
            self._set_health({})  # not serving yet
            return
        try:
            components = json.loads(body).get("components", {})
        except ValueError:
            components = {}
        self._set_health({part: bool(components.get(part)) for part in CHILD_PARTS})

    def _set_health(self, health: dict[str, bool]) -> None:
        with self._health_lock:
            self._health = health

    def _terminate(self) -> None:
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        process.join(STOP_TIMEOUT_S)
        if process.is_alive():
            log.error("the sink and alerts process did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
            process.kill()
            process.join(10)


REPRICE_PROXY_TIMEOUT_S = 3600.0
"""A reprice answers once, at its end: the proxy waits up to an hour for it."""


def make_child_proxy(sidecar: Sidecar, timeout_s: float = 300.0) -> Callable[[Any], Any]:
    """An aiohttp handler forwarding its request's path (/sql, /reprice, /api/dashboard/...) to the
    child, which holds the database."""
    from aiohttp import ClientError, ClientSession, ClientTimeout, web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        if "Authorization" in request.headers:  # the child checks the same token
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with ClientSession(timeout=ClientTimeout(total=timeout_s)) as session:
                async with session.request(
                    request.method,
                    f"{sidecar.url}{request.rel_url.raw_path}",
                    params=request.query,
                    data=body,
                    headers=headers,
                ) as answer:
                    payload = await answer.read()
                    forwarded = {"Content-Type": answer.headers.get("Content-Type", "text/plain")}
                    for name in ("Retry-After", "WWW-Authenticate"):
                        if name in answer.headers:
                            forwarded[name] = answer.headers[name]
                    return web.Response(status=answer.status, body=payload, headers=forwarded)
        except (ClientError, OSError) as exc:
            return web.Response(
                status=503,
                text=f"the worker's ClickHouse process is not answering ({exc}); it restarts on its own, try again\n",
                content_type="text/plain",
            )

    return handle
