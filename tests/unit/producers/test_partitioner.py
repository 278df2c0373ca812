"""KeyCachedPartitioner answers exactly as kafka-python's default partitioner (murmur2, as Java)."""

from __future__ import annotations

from kafka.partitioner.default import DefaultPartitioner

from meterline.producers.kafka_config import KeyCachedPartitioner, ProducerTuning


class _Cluster:
    """The two metadata questions a partitioner asks, for topics with `counts` partitions."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def topics(self) -> set[str]:
        return set(self.counts)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions_for_topic(topic) or set()


def test_same_partition_as_the_default_for_every_key_and_partition_count() -> None:
    cached, default = KeyCachedPartitioner(), DefaultPartitioner()
    for count in (1, 2, 3, 7, 12, 50):
        cluster = _Cluster({"usage": count})
        for n in range(300):
            key = f"team-{n}".encode()
            expected = default.partition("usage", None, key, None, None, cluster)
            assert cached.partition("usage", None, key, None, None, cluster) == expected
            assert cached.partition("usage", None, key, None, None, cluster) == expected  # from the cache


def test_more_partitions_change_the_answer_like_the_default() -> None:
    cached, default = KeyCachedPartitioner(), DefaultPartitioner()
    moved = 0
    for n in range(100):
        key = f"team-{n}".encode()
        before = cached.partition("usage", None, key, None, None, _Cluster({"usage": 3}))
        after = cached.partition("usage", None, key, None, None, _Cluster({"usage": 8}))
        assert after == default.partition("usage", None, key, None, None, _Cluster({"usage": 8}))
        moved += before != after
    assert moved > 0


def test_unkeyed_messages_go_to_the_default_partitioner() -> None:
    cached = KeyCachedPartitioner()
    cluster = _Cluster({"usage": 4})
    assert {cached.partition("usage", None, None, None, None, cluster) for _ in range(200)} <= {0, 1, 2, 3}
    assert cached._known == {}


def test_the_producer_config_uses_it_and_extra_settings_can_replace_it() -> None:
    assert isinstance(ProducerTuning().kafka_config("127.0.0.1:9092")["partitioner"], KeyCachedPartitioner)
    own = DefaultPartitioner()
    assert ProducerTuning(extra={"partitioner": own}).kafka_config("127.0.0.1:9092")["partitioner"] is own
