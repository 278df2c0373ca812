"""When to replace the kafka-python client, and how to close one at once.

kafka-python's idempotent producer does not reset its producer id when a batch it already
sent expires (the Java client does since KIP-91 / KAFKA-5621): after a broker outage longer
than the delivery timeout the broker waits for sequence numbers that never come and every
later batch hangs until it expires too. Measured here: a broker stopped for 40 s and started
again, the old client never delivered another event. A fresh client gets a new producer id,
so UsageProducer replaces its client after such a failure.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def poisons_idempotent_state(exc: BaseException | None) -> bool:
    """True if this delivery failure leaves kafka-python's idempotent sequence state unusable."""
    from kafka import errors

    return isinstance(
        exc,
        (
            errors.KafkaTimeoutError,
            errors.OutOfOrderSequenceNumberError,
            errors.UnknownProducerIdError,
            errors.InvalidProducerEpochError,
        ),
    )


def close_now(kafka: Any, timeout: float = 0.0) -> None:
    """Close a kafka-python producer within `timeout`, failing whatever it has not delivered.

    kafka-python's `close()` flushes first and raises when the flush times out, before it
    force-closes its I/O thread; so on that error force-close the thread ourselves, which
    fails the unanswered futures (UsageProducer spools their events)."""
    try:
        kafka.close(timeout=timeout)
        return
    except Exception as exc:  # noqa: BLE001 - closing must not raise into the application
        log.info("Kafka client did not flush within %.1f s (%s); closing it now", timeout, exc)
    sender = getattr(kafka, "_sender", None)
    if sender is None:
        return
    try:
        sender.force_close()
        sender.join(5.0)
    except Exception:
        log.exception("force-closing the Kafka client failed")
