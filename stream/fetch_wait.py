"""Shorten how long faust's Kafka consumer lets the broker hold a fetch.

faust's aiokafka driver creates the worker's consumer with `fetch_max_wait_ms=1500`, hard-coded.
Under a steady 10,000 events/s the agent then got its messages in bursts: after it caught up,
the next batch came 0.6-0.8 s later with messages already 1.4 s old, while the worker idled a
third of the time (bench/e2e.py, emit -> batch start p50 1,376 ms, p99 1,812 ms). With 50 ms:
p50 227 ms, p99 490 ms. An idle worker then sends a fetch every `fetch_max_wait_ms`, which
costs the broker next to nothing.
"""

from __future__ import annotations

from typing import Any

def install(fetch_max_wait_ms: int) -> None:
    """Make faust's worker consumers use `fetch_max_wait_ms` (process-wide; idempotent, the
    last value wins)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    original = getattr(create, "__wrapped__", create)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    create_worker_consumer.__wrapped__ = original  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
