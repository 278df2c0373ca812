"""The kafka-python producer settings meterline uses, and the codec choice.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka.partitioner.default import DefaultPartitioner

Compression = Literal["auto", "lz4", "zstd", "gzip", "none"]

# Preference for "auto": zstd (library: zstandard) measured ~12% more events/s end to end
# than lz4 on realistic events here (smaller batches to ship), lz4 next, gzip last.
_AUTO_ORDER: tuple[str, ...] = ("zstd", "lz4", "gzip")


def available_codec(preferred: Compression = "auto") -> str | None:
    """The compression_type to give kafka-python: the preferred codec if installed."""
    from kafka import codec

    checks = {"lz4": codec.has_lz4, "zstd": codec.has_zstd, "gzip": codec.has_gzip}
    if preferred == "none":
        return None
    if preferred != "auto":
        if not checks[preferred]():
            raise ValueError(
                f"compression {preferred!r} needs its library (lz4 or zstandard); install it or use compression='auto'"
            )
        return preferred
    for name in _AUTO_ORDER:
        if checks[name]():
            return name
    return None


class KeyCachedPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key, as Java's), remembering its answer.

    Events are keyed by team, a handful of keys; the default partitioner sorts the topic's
    partitions and hashes the key in pure Python on every send (about 5 % of the producer's
    CPU in a profile). The answer only depends on the topic, the key and the partition count.
    """

    _LIMIT = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._known: dict[tuple[str, bytes, int], int] = {}

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        partitions = cluster.partitions_for_topic(topic) if serialized_key is not None else None
        if not partitions or serialized_key is None:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        known = (topic, serialized_key, len(partitions))
        chosen = self._known.get(known)
        if chosen is None:
            chosen = super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            if len(self._known) < self._LIMIT:
                self._known[known] = chosen
        return chosen


@dataclass(frozen=True)
class ProducerTuning:
    """Throughput and timing knobs of the Kafka client under UsageProducer."""

    linger_ms: int = 50
    """How long kafka-python waits to fill a batch (default 50 ms)."""
    batch_size: int = 1_000_000
    """Bytes per partition batch before compression (default 1,000,000: ~2,000 events; stays
    under the broker's default message.max.bytes even uncompressed)."""
    compression: Compression = "auto"
    """Codec: auto = zstd, else lz4, else gzip, whichever is installed."""
    delivery_timeout_s: float = 30.0
    """After this long unacknowledged, an event goes to the spool (default 30 s)."""
    stall_timeout_s: float = 5.0
    """When the oldest unacknowledged event is this old, new events go straight to the spool
    until Kafka acknowledges something again (default 5 s)."""
    bootstrap_timeout_s: float = 3.0
    """One connection attempt's limit; retried in the background (default 3 s)."""
    compiled_records: bool = True
    """Build record batches with aiokafka's compiled builder instead of kafka-python's
    pure-Python one (same bytes; process-wide; see record_builder.py). Default on."""
    events_per_message: int = 1
    """Events of one team packed into one Kafka message as JSON Lines (default 1: one event
    per message, with CloudEvents binary-mode headers). The stream's cost is mostly per
    message, so 100 lets one worker process several times more events; a packed message
    carries only `content-type: application/jsonl`, no per-event `ce_*` headers."""
    pack_linger_ms: int = 20
    """With packing on, how long the sender lets events gather in its queue before packing
    them (default 20 ms). Without it a paced application (say 10,000 events/s over 40 teams)
    would hand over 1-2 events per team each send cycle and the messages would stay small;
    a flush() or close() cuts the wait short."""
    message_max_bytes: int = 256 * 1024
    """A packed message stops growing at this size (default 256 KiB, well under Kafka's
    default 1 MB limit); an event larger than it still goes alone."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More kafka-python KafkaProducer settings (security, client_id, ...)."""

    def kafka_config(self, bootstrap: str) -> dict[str, Any]:
        """Keyword arguments for kafka.KafkaProducer."""
        delivery_ms = int(self.delivery_timeout_s * 1000)
        request_timeout_ms = max(1000, min(10_000, delivery_ms - self.linger_ms - 100))
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": available_codec(self.compression),
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "max_request_size": max(1_048_576, self.batch_size * 2),
            "delivery_timeout_ms": max(delivery_ms, request_timeout_ms + self.linger_ms + 1),
            "request_timeout_ms": request_timeout_ms,
            "max_block_ms": 5000,
            "bootstrap_timeout_ms": int(self.bootstrap_timeout_s * 1000),
            "reconnect_backoff_max_ms": 1000,
            "max_in_flight_requests_per_connection": 5,
            "partitioner": KeyCachedPartitioner(),
        }
        config.update(self.extra)
        return config
