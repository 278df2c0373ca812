"""Send the spool's segments to Kafka again, oldest first, without sending a frame twice.

Each chunk of frames goes through these steps, in this order (the contract the tests check):
1. send every frame of the chunk and wait until Kafka acknowledged or refused each one;
2. append the refused frames to this producer's active segment (fsynced);
3. move the segment's ack offset past the chunk;
4. when the offset reaches the end, delete the segment.
A crash before 3 replays the chunk again (Kafka's acknowledged frames twice); a crash
between 2 and 3 also leaves the refused frames twice in the spool. Nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from meterline.producers.spool import Spool, SpooledMessage, SpoolFrame, SpoolSlot, decode_frames

log = logging.getLogger(__name__)

CHUNK_FRAMES = 2000
PROBE_FRAMES = 50
ORPHAN_SCAN_S = 5.0
IDLE_WAIT_S = 0.5


class KafkaSend(Protocol):
    def send(self, topic: str, value: bytes, key: bytes | None = ..., headers: Any = ...) -> Any: ...


class SpoolReplayer:
    """Replays this producer's slot and any orphaned slot it can lock."""

    def __init__(
        self,
        spool: Spool,
        own: SpoolSlot,
        kafka: Callable[[], KafkaSend | None],
        broker_healthy: Callable[[], bool],
        on_replayed: Callable[[int], None],
        on_success: Callable[[], None],
        on_failure: Callable[[BaseException | None], None],
        on_stuck: Callable[[], None],
        stopping: threading.Event,
        deadline: Callable[[], float | None],
        answer_timeout_s: float = 35.0,
    ) -> None:
        self._spool = spool
        self._own = own
        self._kafka = kafka
        self._broker_healthy = broker_healthy
        self._on_replayed = on_replayed
        self._on_success = on_success
        self._on_failure = on_failure
        self._on_stuck = on_stuck
        self._answer_timeout_s = answer_timeout_s
        self._stopping = stopping
        self._deadline = deadline
        self._adopted: list[SpoolSlot] = []
        self._last_orphan_scan = float("-inf")

    def run_once(self) -> bool:
        """Replay one chunk if there is one; return True if it made progress."""
        kafka = self._kafka()
        if kafka is None:
            return False
        now = time.monotonic()
        if now - self._last_orphan_scan >= ORPHAN_SCAN_S:
            self._last_orphan_scan = now
            self._adopted.extend(self._spool.adopt_orphans(self._own))
        for slot in [*self._adopted, self._own]:
            seq = slot.seal_for_replay()
            if seq is None:
                if slot is not self._own:
                    slot.close()
                    self._adopted.remove(slot)
                continue
            return self._replay_chunk(kafka, slot, seq)
        return False

    def _replay_chunk(self, kafka: KafkaSend, slot: SpoolSlot, seq: int) -> bool:
        data, start = slot.read_segment(seq)
        limit = CHUNK_FRAMES if self._broker_healthy() else PROBE_FRAMES
        frames: list[SpoolFrame] = []
        for frame in decode_frames(data, start):
            frames.append(frame)
            if len(frames) >= limit:
                break
        if not frames:
            slot.finish_segment(seq)
            return True
        # 1. send and wait for every answer
        futures = []
        for frame in frames:
            message = frame.message
            try:
                futures.append(kafka.send(message.topic, message.value, key=message.key, headers=message.headers))
            except Exception as exc:  # noqa: BLE001 - the client is closed or has no metadata
                futures.append(exc)
        refused: list[SpooledMessage] = []
        delivered = 0
        # A client that leaves a send unanswered past its delivery timeout is wedged: stop
        # waiting, keep the rest of the chunk, and have the client replaced.
        answer_by = time.monotonic() + self._answer_timeout_s
        for frame, future in zip(frames, futures, strict=True):
            if isinstance(future, Exception):
                refused.append(frame.message)
                continue
            stop_at = self._deadline()
            if not _wait(future, answer_by if stop_at is None else min(stop_at, answer_by)):
                refused.append(frame.message)
                if future.is_done:
                    self._on_failure(future.exception)
                elif time.monotonic() >= answer_by:
                    self._on_stuck()
            else:
                delivered += 1
        # 2. keep what Kafka refused
        if refused:
            self._own.append(refused, sync=True)
        # 3. move the ack offset
        end = frames[-1].end_offset
        if end >= len(data):
            # 4. the segment is done
            slot.finish_segment(seq)
        else:
            slot.acknowledge(seq, end)
        if delivered:
            self._on_replayed(delivered)
            self._on_success()
        return delivered > 0

    def close(self) -> None:
        for slot in self._adopted:
            slot.close()
        self._adopted.clear()


def _wait(future: Any, deadline: float | None) -> bool:
    """Wait for a kafka-python future; True if Kafka acknowledged the message."""
    while not future.is_done:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        try:
            future.get(timeout=None if remaining is None else min(remaining, 1.0))
        except Exception:  # noqa: BLE001 - failures and timeouts are read from the future below
            pass
    return bool(future.succeeded())
