"""The Kafka consumer options meterline's consumers share, written once, spelled for each client.

Three client stacks read Kafka here: faust (the stream's agents), aiokafka (changelog rebuilds,
the alert dispatcher) and kafka-python (the ClickHouse sink). Their option names differ; the
values live here. Pure: imports no Kafka client.
"""

from __future__ import annotations

from typing import Any, Final

SESSION_TIMEOUT_S: Final = 10
"""A crashed consumer's partitions move on after this long (faust's default is 60 s, kafka-python's
45 s: a restarted sink sat idle that long)."""
HEARTBEAT_INTERVAL_S: Final = 1
PARTITION_FETCH_BYTES: Final = 8 * 1024 * 1024
"""One stream transaction (a few MB of priced events) in one fetch, not 1 MB slices."""
METADATA_MAX_AGE_MS: Final = 5000
"""Topics the worker creates after a consumer started are picked up within seconds."""


def faust_consumer_options() -> dict[str, Any]:
    """For `faust.App(...)`: session, heartbeats and fetch size (faust passes them to aiokafka)."""
    return {
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "consumer_max_fetch_size": PARTITION_FETCH_BYTES,
    }


def kafka_python_group_options(fetch_max_wait_ms: int) -> dict[str, Any]:
    """For a kafka-python `KafkaConsumer` in a group (the sink). Its heartbeats run on their own
    thread, so a long ClickHouse insert does not count against the session."""
    return {
        "session_timeout_ms": SESSION_TIMEOUT_S * 1000,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_S * 1000,
        "max_partition_fetch_bytes": PARTITION_FETCH_BYTES,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        "fetch_max_wait_ms": fetch_max_wait_ms,
    }
