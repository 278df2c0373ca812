"""Send price corrections (meterline reprice) to the stream over the usage topic.

Here, not in producers: the sinks may use kafka-python, and the runs that send corrections
(sinks/reprice_service.py, the CLI's and the worker's /reprice) live in sinks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from meterline.errors import MeterlineError
from meterline.messages import PRICE_CORRECTION_CONTENT_TYPE, PriceCorrection

if TYPE_CHECKING:
    from meterline.settings import Settings

CORRECTIONS_PER_MESSAGE = 200
HEADERS = [("content-type", PRICE_CORRECTION_CONTENT_TYPE)]


class CorrectionsNotSentError(MeterlineError):
    """Kafka did not take the corrections; nothing after them was written."""


def pack(
    corrections: Sequence[PriceCorrection], per_message: int = CORRECTIONS_PER_MESSAGE
) -> list[tuple[bytes, bytes]]:
    """(key, value) messages: one team's corrections as JSON Lines, at most `per_message` each (pure)."""
    by_team: dict[str, list[bytes]] = defaultdict(list)
    for correction in corrections:
        by_team[correction.team].append(correction.model_dump_json().encode())
    messages = []
    for team, lines in by_team.items():
        for start in range(0, len(lines), per_message):
            messages.append((team.encode(), b"\n".join(lines[start : start + per_message])))
    return messages


class CorrectionPublisher:
    """A kafka-python producer (acks=all, idempotent) that sends corrections and waits for them."""

    def __init__(self, settings: Settings) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.topic = settings.topic("usage")
        self._producer: Any = None

    def start(self) -> CorrectionPublisher:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            # Every correction acknowledged by all in-sync replicas, without duplicates from retries.
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_block_ms=10_000,
                request_timeout_ms=10_000,
            )
        except KafkaError as exc:
            raise CorrectionsNotSentError(self._unreachable(exc)) from exc
        return self

    def send(self, corrections: Sequence[PriceCorrection]) -> None:
        """Send and wait until Kafka has every one (the caller writes ClickHouse only after)."""
        from kafka.errors import KafkaError

        if not corrections:
            return
        assert self._producer is not None, "start() the publisher first"
        try:
            futures = [
                self._producer.send(self.topic, value, key=key, headers=HEADERS) for key, value in pack(corrections)
            ]
            self._producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)
        except KafkaError as exc:
            raise CorrectionsNotSentError(self._unreachable(exc)) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None

    def _unreachable(self, exc: Exception) -> str:
        return (
            f"Kafka at {self.bootstrap} did not take the budget corrections ({type(exc).__name__}: {exc}); nothing of "
            "this page was written. Start the broker and run `meterline reprice` again (it resends the same "
            "corrections, counted once), or pass --no-budgets to correct ClickHouse only."
        )
