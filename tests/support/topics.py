"""Create Kafka topics for a test (replication factor 1: the one local broker)."""

from __future__ import annotations

from collections.abc import Mapping

from kafka.admin import KafkaAdminClient, NewTopic


def create_topics(bootstrap: str, partitions_by_topic: Mapping[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1) for topic, partitions in partitions_by_topic.items()])
    finally:
        admin.close()
