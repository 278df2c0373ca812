"""UsageProducer: hand usage events to Kafka without ever blocking or breaking the caller.

`emit()` appends the event to an in-memory queue and returns a handle (no I/O). A sender
thread serialises queued events and gives them to kafka-python (acks=all, idempotent, lz4,
linger and large batches); it checks the answers in order and resolves the handles. Events go
to the offline spool instead when the client is not connected yet or the broker is away, when
Kafka refuses them after retries (delivery timeout), or when the queue is full (then `emit()`
writes them to the spool file itself: disk, never network). A replayer thread sends the spool
back when the broker answers again (see `replayer.py` and `spool.py`). When a delivery
failure leaves the kafka-python client unusable, the replayer thread replaces it
(see `client_health.py`).

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.backoff import Backoff
from meterline.events import UsageEvent
from meterline.gc_control import gc_paused
from meterline.producers import record_builder
from meterline.producers.client_health import close_now, poisons_idempotent_state
from meterline.producers.errors import ProducerClosedError, SpoolError
from meterline.producers.handles import (
    FAILED,
    SENT,
    SPOOLED,
    EmitHandle,
    FlushBarrier,
    ProducerCounters,
)
from meterline.producers.kafka_config import ProducerTuning
from meterline.producers.replayer import IDLE_WAIT_S, SpoolReplayer
from meterline.producers.spool import Spool, SpooledMessage, SpoolFsync, SpoolSlot

if TYPE_CHECKING:
    from meterline.settings import Settings

log = logging.getLogger(__name__)
_RECONNECT = Backoff(0.25, 5.0)
"""Pause between attempts to reach the broker while the spool holds messages."""

DRAIN_MAX = 4096
SYNC_EVERY_S = 0.1
_Inflight = tuple[list[EmitHandle], Any, list[bytes], float]
"""One sent message in flight: its events' handles, kafka-python's future, the events'
bytes (spooled one by one if the message is refused), when it was sent."""
PACKED_HEADERS = [("content-type", b"application/jsonl")]


class UsageProducer:
    """Send UsageEvents to one Kafka topic (key = team, CloudEvents headers), spooling offline.

    Three lines::

        with UsageProducer.from_settings(load_settings()) as producer:
            producer.emit(UsageEvent(team="search", provider="openai", model="gpt-4o", ...))
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        spool_dir: Path | str,
        *,
        fsync: SpoolFsync = "batch",
        max_pending: int = 200_000,
        tuning: ProducerTuning | None = None,
    ) -> None:
        """Configure only; threads, the spool lock and the Kafka client start in `start()`
        (called by `with`, or by the first `emit()`)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.spool = Spool(spool_dir, fsync=fsync)
        self.tuning = tuning or ProducerTuning()
        self._max_pending = max_pending
        self._queue: deque[EmitHandle | FlushBarrier] = deque()
        self._inflight: deque[_Inflight | FlushBarrier] = deque()
        self._resolved = threading.Condition()
        self._wake = threading.Event()
        # Set by flush() and close(): end a packing linger now (see `_linger_to_pack`).
        self._hurry = threading.Event()
        self._sender_idle = False
        self._stopping = threading.Event()
        self._connected_once = threading.Event()
        self._lifecycle = threading.Lock()
        self._counter_lock = threading.Lock()
        self._counts = {"emitted": 0, "sent": 0, "spooled": 0, "replayed": 0, "failed": 0}
        self._started = False
        self._closing = False
        self._closed = False
        self._kafka: Any = None
        self._slot: SpoolSlot | None = None
        self._replayer: SpoolReplayer | None = None
        self._threads: list[threading.Thread] = []
        self._circuit_open = False
        self._stop_deadline: float | None = None
        # Set when a delivery failure broke the client's idempotent state (client_health.py);
        # the replayer thread then replaces the client.
        self._client_poisoned = threading.Event()
        # kafka-python answers every send within its delivery timeout, unless it is wedged.
        self._answer_timeout_s = self.tuning.delivery_timeout_s + self.tuning.stall_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, *, spool_dir: Path | str | None = None, **options: Any) -> UsageProducer:
        """A producer for `settings.topic("usage")` on `settings.kafka_bootstrap`, spooling
        under `<data_dir>/spool` unless `spool_dir` is given."""
        return cls(
            settings.kafka_bootstrap,
            settings.topic("usage"),
            spool_dir if spool_dir is not None else settings.data_dir / "spool",
            **options,
        )

    # -- lifetime -------------------------------------------------------------------
    def start(self) -> UsageProducer:
        """Lock a spool slot and start the sender and replayer threads (idempotent)."""
        with self._lifecycle:
            if self._started:
                return self
            if self._closing:
                raise ProducerClosedError()
            self._slot = self.spool.open_slot()
            self._replayer = SpoolReplayer(
                self.spool,
                self._slot,
                kafka=lambda: self._kafka,
                broker_healthy=lambda: not self._circuit_open,
                on_replayed=lambda n: self._count("replayed", n),
                on_success=self._broker_answered,
                on_failure=self._delivery_failed,
                on_stuck=self._client_stuck,
                answer_timeout_s=self._answer_timeout_s,
                stopping=self._stopping,
                deadline=lambda: self._stop_deadline,
            )
            self._threads = [
                threading.Thread(target=self._send_loop, name="meterline-sender", daemon=True),
                threading.Thread(target=self._replay_loop, name="meterline-replayer", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            self._started = True
        return self

    def __enter__(self) -> UsageProducer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Deliver or spool everything emitted, stop the threads, release the spool.

        Order: 1. refuse new events; 2. flush (wait for Kafka's answers) for most of
        `timeout`; 3. close the Kafka client (unanswered batches fail); 4. stop the sender,
        which spools whatever is unanswered; 5. stop the replayer; 6. close the spool slot.
        An event Kafka took but did not answer in time is spooled and may arrive twice.
        """
        with self._lifecycle:
            if self._closing:
                return
            self._closing = True
            started = self._started
        if not started:
            self._closed = True
            return
        deadline = time.monotonic() + timeout
        self.flush(timeout * 0.7)
        self._stop_deadline = deadline
        self._stopping.set()
        self._hurry.set()
        self._wake.set()
        kafka = self._kafka
        if kafka is not None:
            close_now(kafka, timeout=max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic() + 5.0))
        if self._replayer is not None:
            self._replayer.close()
        if self._slot is not None:
            self._slot.close()
        self._closed = True

    # -- the caller's side ----------------------------------------------------------
    def emit(self, event: UsageEvent) -> EmitHandle:
        """Queue one event and return its handle; never waits for the network."""
        if not self._started:
            self.start()
        if self._closing:
            raise ProducerClosedError()
        if type(event) is not UsageEvent and not isinstance(event, UsageEvent):
            raise TypeError(f"emit() takes a UsageEvent, not {type(event).__name__}")
        handle = EmitHandle(event, self._resolved)
        with self._counter_lock:
            self._counts["emitted"] += 1
        if len(self._queue) >= self._max_pending:
            # The sender is behind: keep the event on disk rather than grow memory.
            self._spool_handles([handle], sync=False)
        else:
            self._queue.append(handle)
            if self._sender_idle:
                self._wake.set()
        return handle

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is sent, spooled or failed; False on timeout."""
        if not self._started or self._closed:
            return True
        barrier = FlushBarrier()
        self._queue.append(barrier)
        self._hurry.set()
        self._wake.set()
        with self._resolved:
            return self._resolved.wait_for(lambda: barrier.done, timeout)

    def counters(self) -> ProducerCounters:
        """A snapshot of the counters."""
        with self._counter_lock:
            counts = dict(self._counts)
        pending = self._slot.pending_bytes() if self._slot is not None else 0
        return ProducerCounters(
            emitted=counts["emitted"],
            sent=counts["sent"],
            spooled=counts["spooled"],
            replayed=counts["replayed"],
            failed=counts["failed"],
            spool_pending_bytes=pending,
        )

    @property
    def connected(self) -> bool:
        """True while Kafka answers (the client exists and the circuit is closed)."""
        return self._kafka is not None and not self._circuit_open

    # -- counters ---------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counts[name] += n

    # -- spooling ---------------------------------------------------------------------
    def _spool_handles(self, handles: list[EmitHandle], sync: bool, values: list[bytes] | None = None) -> None:
        if not handles:
            return
        if values is None:
            values = [h.event.to_json_bytes() for h in handles]
        messages = [
            SpooledMessage(self.topic, h.event.team.encode(), h.event.cloudevent_headers(), value)
            for h, value in zip(handles, values, strict=True)
        ]
        assert self._slot is not None
        try:
            self._slot.append(messages, sync=sync)
            outcome, counter = SPOOLED, "spooled"
        except SpoolError:
            log.exception("%d usage events could not be spooled and are lost", len(handles))
            outcome, counter = FAILED, "failed"
        for handle in handles:
            handle.outcome = outcome
        self._count(counter, len(handles))

    # -- the sender thread ------------------------------------------------------------
    def _send_loop(self) -> None:
        last_sync = time.monotonic()
        packing = self.tuning.events_per_message > 1
        # Hold events until the first connection attempt ends, so a healthy start sends
        # directly instead of spooling the first events.
        while not self._connected_once.wait(0.05):
            if self._stopping.is_set():
                break
        while True:
            drained = self._drain()
            if drained:
                self._dispatch(drained)
            self._reconcile()
            now = time.monotonic()
            if now - last_sync >= SYNC_EVERY_S:
                last_sync = now
                self._sync_spool()
            if self._stopping.is_set() and not self._queue:
                self._reconcile(final=True)
                self._sync_spool()
                return
            if not drained or (packing and len(drained) < DRAIN_MAX):
                self._sender_idle = True
                if not self._queue:
                    self._wake.wait(0.005 if self._inflight else 0.1)
                self._wake.clear()
                self._sender_idle = False
                if packing:
                    self._linger_to_pack()

    def _linger_to_pack(self) -> None:
        """With packing on, let events gather in the queue for `pack_linger_ms` once the
        sender has caught up, so each team's message holds more than one send cycle's worth.
        Events wait in the queue, where flush(), close() and the spool already cover them."""
        linger_s = self.tuning.pack_linger_ms / 1000
        if linger_s > 0 and self._queue and not self._stopping.is_set():
            self._hurry.wait(linger_s)
            self._hurry.clear()

    def _sync_spool(self) -> None:
        if self._slot is not None:
            try:
                self._slot.sync()
            except OSError:
                log.exception("fsync of the spool failed")

    def _drain(self) -> list[EmitHandle | FlushBarrier]:
        queue = self._queue
        out = []
        try:
            for _ in range(DRAIN_MAX):
                out.append(queue.popleft())
        except IndexError:
            pass
        return out

    def _dispatch(self, items: list[EmitHandle | FlushBarrier]) -> None:
        kafka = self._kafka
        inflight = self._inflight
        if kafka is None or self._circuit_open or self._stopping.is_set():
            self._spool_handles([h for h in items if isinstance(h, EmitHandle)], sync=True)
            inflight.extend(h for h in items if isinstance(h, FlushBarrier))
            return
        now = time.monotonic()
        refused: list[EmitHandle] = []
        refused_values: list[bytes] = []
        # Each send leaves several container objects in flight (kafka-python's future and its
        # callbacks, our entry): with the collector on, it ran every ~100 sends and walked the
        # in-flight set each time, a quarter of the sender's CPU at 35k events/s.
        with gc_paused():
            if self.tuning.events_per_message > 1:
                self._send_packed(items, now, refused, refused_values)
            else:
                self._send_each(items, now, refused, refused_values)
        self._spool_handles(refused, sync=True, values=refused_values)

    def _send_each(
        self, items: list[EmitHandle | FlushBarrier], now: float, refused: list[EmitHandle], refused_values: list[bytes]
    ) -> None:
        """One message per event, with its CloudEvents headers."""
        send, topic, inflight = self._kafka.send, self.topic, self._inflight
        for item in items:
            if type(item) is FlushBarrier:
                inflight.append(item)
                continue
            event = item.event  # type: ignore[union-attr]  # barriers were filtered out above by type(); the hot loop avoids isinstance
            value = event.to_json_bytes()
            try:
                future = send(topic, value, key=event.team.encode(), headers=event.cloudevent_headers())
            except Exception as exc:  # noqa: BLE001 - no metadata in time, client closed: spool
                log.warning("Kafka did not take an event (%s); spooling it", exc)
                refused.append(item)  # type: ignore[arg-type]  # an EmitHandle here (barriers skipped above)
                refused_values.append(value)
                continue
            inflight.append(([item], future, [value], now))  # type: ignore[list-item]  # an EmitHandle here (barriers skipped above)

    def _send_packed(
        self, items: list[EmitHandle | FlushBarrier], now: float, refused: list[EmitHandle], refused_values: list[bytes]
    ) -> None:
        """Events of one team packed into JSON Lines messages, in emit order per team; a
        flush barrier closes every open message before it."""
        limit, max_bytes = self.tuning.events_per_message, self.tuning.message_max_bytes
        open_messages: dict[str, tuple[list[EmitHandle], list[bytes], list[int]]] = {}

        def close(team: str) -> None:
            handles, values, _ = open_messages.pop(team)
            value = values[0] if len(values) == 1 else b"\n".join(values)
            headers = handles[0].event.cloudevent_headers() if len(values) == 1 else PACKED_HEADERS
            try:
                future = self._kafka.send(self.topic, value, key=team.encode(), headers=headers)
            except Exception as exc:  # noqa: BLE001 - no metadata in time, client closed: spool
                log.warning("Kafka did not take %d events (%s); spooling them", len(values), exc)
                refused.extend(handles)
                refused_values.extend(values)
                return
            self._inflight.append((handles, future, values, now))

        for item in items:
            if type(item) is FlushBarrier:
                for team in list(open_messages):
                    close(team)
                self._inflight.append(item)
                continue
            event = item.event  # type: ignore[union-attr]  # barriers were filtered out above by type(); the hot loop avoids isinstance
            value = event.to_json_bytes()
            team = event.team
            message = open_messages.get(team)
            if message is not None and message[2][0] + 1 + len(value) > max_bytes:
                close(team)
                message = None
            if message is None:
                message = open_messages[team] = ([], [], [-1])
            message[0].append(item)  # type: ignore[arg-type]  # an EmitHandle here (barriers skipped above)
            message[1].append(value)
            message[2][0] += 1 + len(value)
            if len(message[1]) >= limit:
                close(team)
        for team in list(open_messages):
            close(team)

    def _reconcile(self, final: bool = False) -> None:
        """Resolve answered events in order; spool refused ones; open the circuit on a stall."""
        inflight = self._inflight
        sent = 0
        refused: list[EmitHandle] = []
        refused_values: list[bytes] = []
        barriers = []
        deadline = self._stop_deadline
        while inflight:
            entry = inflight[0]
            if type(entry) is FlushBarrier:
                inflight.popleft()
                barriers.append(entry)
                continue
            handles, future, values, sent_at = entry  # type: ignore[misc]  # not a FlushBarrier: the type() check above
            if not future.is_done:
                if final and (deadline is None or time.monotonic() < deadline):
                    time.sleep(0.005)
                    continue
                if not final:
                    waited = time.monotonic() - sent_at
                    if waited >= self.tuning.stall_timeout_s and not self._circuit_open:
                        log.warning(
                            "Kafka has not answered for %.1f s; spooling new events", self.tuning.stall_timeout_s
                        )
                        self._circuit_open = True
                    if waited >= self._answer_timeout_s:
                        self._client_stuck()
                    break
            inflight.popleft()
            if future.is_done and future.exception is None:
                for handle in handles:
                    handle.outcome = SENT
                sent += len(handles)
            else:
                self._delivery_failed(future.exception)
                refused.extend(handles)
                refused_values.extend(values)
        if refused:
            self._spool_handles(refused, sync=True, values=refused_values)
        if sent:
            self._count("sent", sent)
            self._broker_answered()
        if sent or refused or barriers:
            for barrier in barriers:
                barrier.done = True
            with self._resolved:
                self._resolved.notify_all()

    def _delivery_failed(self, exc: BaseException | None) -> None:
        if poisons_idempotent_state(exc) and not self._client_poisoned.is_set():
            log.warning("Kafka delivery failed (%s); the Kafka client will be replaced", exc)
            self._client_poisoned.set()

    def _client_stuck(self) -> None:
        if not self._client_poisoned.is_set():
            log.warning(
                "the Kafka client has not answered a send for %.0f s; it will be replaced", self._answer_timeout_s
            )
            self._client_poisoned.set()

    def _broker_answered(self) -> None:
        if self._circuit_open:
            log.info("Kafka answers again; sending directly")
            self._circuit_open = False

    # -- the replayer thread -----------------------------------------------------------
    def _replay_loop(self) -> None:
        failed_connects = 0
        assert self._replayer is not None
        try:
            while not self._stopping.is_set():
                if self._client_poisoned.is_set() and self._kafka is not None:
                    self._replace_client()
                if self._kafka is None:
                    if self._connect():
                        failed_connects = 0
                    else:
                        failed_connects += 1
                        self._stopping.wait(_RECONNECT.delay(failed_connects))
                    continue
                try:
                    progressed = self._replayer.run_once()
                except (SpoolError, OSError):
                    log.exception("replaying the spool failed; retrying")
                    progressed = False
                if not progressed:
                    self._stopping.wait(IDLE_WAIT_S if not self._circuit_open else 1.0)
        finally:
            self._connected_once.set()

    def _replace_client(self) -> None:
        """Drop the client (the sender spools meanwhile) and fail its unanswered events into
        the spool; the loop then connects a fresh one, with a new producer id."""
        old, self._kafka = self._kafka, None
        self._circuit_open = True
        self._client_poisoned.clear()
        close_now(old)

    def _connect(self) -> bool:
        from kafka import KafkaProducer

        if self.tuning.compiled_records:
            record_builder.install()
        try:
            kafka = KafkaProducer(**self.tuning.kafka_config(self.bootstrap))
        except Exception as exc:  # noqa: BLE001 - broker away: spool and retry
            log.warning("Kafka at %s is not reachable (%s); spooling events", self.bootstrap, exc)
            self._connected_once.set()
            return False
        if self._stopping.is_set():
            kafka.close(timeout=0)
            return False
        self._kafka = kafka
        self._connected_once.set()
        return True
