"""A worker subprocess (easy to kill -9), a producer and read_committed readers for stream tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from meterline.events import UsageEvent
from meterline.services.kafka_local import find_free_port

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 120.0


@dataclass
class WorkerProcess:
    """`meterline worker` in a subprocess, configured by env vars and a meterline.toml."""

    bootstrap: str
    prefix: str
    tmp: Path
    toml: str = ""
    only: str | None = "stream"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    restarts: int = 0
    exits: list[str] = field(default_factory=list)
    _supervised: bool = False

    def start(self) -> WorkerProcess:
        self.port = find_free_port()
        config = self.tmp / "meterline.toml"
        config.write_text(self.toml)
        env = {
            **os.environ,
            "METERLINE_KAFKA_BOOTSTRAP": self.bootstrap,
            "METERLINE_TOPIC_PREFIX": self.prefix,
            "METERLINE_DATA_DIR": str(self.tmp / "data"),
            "METERLINE_STREAM__WEB_PORT": str(self.port),
            "METERLINE_CONFIG": str(config),
            **self.env,
        }
        args = [sys.executable, "-m", "meterline.cli", "worker"]
        if self.only:
            args += ["--only", self.only]
        self.log_path = self.tmp / f"worker-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.wait_healthy()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not healthy within {timeout}s:\n{self.log()}")

    def metric(self, name: str) -> float:
        _, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not found in:\n{body}")

    def supervise(self, max_restarts: int = 3) -> WorkerProcess:
        """Restart the worker when it exits with a failure, as a supervisor would
        (`restart: on-failure`): the restart reads on from the committed offsets. Each
        failed run's log tail stays in `exits`."""
        self._supervised = True

        def watch() -> None:
            while self._supervised and self.restarts < max_restarts:
                proc = self.proc
                if proc is not None and proc.poll() is not None and self._supervised:
                    if proc.returncode == 0:
                        return
                    self.exits.append(f"exit {proc.returncode}:\n{self.log()}")
                    self.restarts += 1
                    self.start()
                time.sleep(0.2)

        threading.Thread(target=watch, daemon=True).start()
        return self

    def log(self, full: bool = False) -> str:
        """The worker's output: its last 6,000 characters, or all of it."""
        text = self.log_path.read_text(errors="replace") if self.log_path else ""
        return text if full else text[-6000:]

    def kill9(self) -> None:
        self._supervised = False
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        self._supervised = False
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def make_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")


def produce_events(producer: KafkaProducer, topic: str, events: Iterable[UsageEvent]) -> int:
    n = 0
    for event in events:
        producer.send(topic, key=event.team.encode(), value=event.to_json_bytes())
        n += 1
    producer.flush()
    return n


def produce_packed_events(producer: KafkaProducer, topic: str, events: list[UsageEvent], per_message: int) -> int:
    """`events` in order, `per_message` of them to a message as JSON Lines (all of one team, the
    message's key), as a packing producer sends them; returns the messages produced."""
    messages = [events[start : start + per_message] for start in range(0, len(events), per_message)]
    for pack in messages:
        assert len({e.team for e in pack}) == 1, "a packed message holds events of one team"
        producer.send(topic, key=pack[0].team.encode(), value=b"\n".join(e.to_json_bytes() for e in pack))
    producer.flush()
    return len(messages)


def event(
    n: int, *, team: str = "ml", at: datetime | None = None, event_id: str | None = None, **kw: Any
) -> UsageEvent:
    fields: dict[str, Any] = {
        "team": team,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000 + n,
        "output_tokens": 100 + n % 50,
        "occurred_at": at or datetime.now(UTC),
    }
    fields.update(kw)
    if event_id is not None:
        fields["event_id"] = event_id
    return UsageEvent(**fields)


@dataclass(frozen=True)
class Line:
    """One message of a record: the record itself, or one JSON line of a packed one (the
    stream packs a team's priced events into one usage.priced record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    line_index: int
    line_count: int


def record_messages(records: Iterable[Any]) -> list[Line]:
    out: list[Line] = []
    for record in records:
        lines = (record.value or b"").split(b"\n")
        out.extend(
            Line(record.topic, record.partition, record.offset, record.key, line, index, len(lines))
            for index, line in enumerate(lines)
        )
    return out


class Reader:
    """A read_committed consumer of one topic, from the beginning, accumulating its messages
    (a packed record's JSON lines each on its own, see `Line`)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list[Line] = []

    def poll_until(self, done: Callable[[list[Line]], bool], timeout: float = 60.0) -> list[Line]:
        deadline = time.monotonic() + timeout
        while not done(self.records) and time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=500).values():
                self.records.extend(record_messages(batch))
        return self.records

    def settle(self, quiet: float = 3.0, timeout: float = 30.0) -> list[Line]:
        """Read until nothing new arrives for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last_change = time.monotonic()
        while time.monotonic() - last_change < quiet and time.monotonic() < deadline:
            polled = self.consumer.poll(timeout_ms=500)
            for batch in polled.values():
                self.records.extend(record_messages(batch))
                last_change = time.monotonic()
        return self.records

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records]

    def close(self) -> None:
        self.consumer.close()
