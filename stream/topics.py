"""The stream's topics: names under the prefix, created when missing.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging

from meterline.settings import Settings

log = logging.getLogger(__name__)

TOPICS = ("usage", "usage.priced", "usage.dlq", "budget.state", "alerts")
COMPACTED = {"budget.state"}


def ensure_topics(settings: Settings, timeout_ms: int = 30_000) -> list[str]:
    """Create the prefix's topics that do not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="meterline-topics", request_timeout_ms=timeout_ms)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic(name),
                settings.topic_partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if name in COMPACTED else {},
            )
            for name in TOPICS
            if settings.topic(name) not in existing
        ]
        if not wanted:
            return []
        try:
            admin.create_topics(wanted, timeout_ms=timeout_ms)
        except TopicAlreadyExistsError:
            pass  # another worker created them first
        created = [t.name for t in wanted]
        log.info("created topics %s", created)
        return created
    finally:
        admin.close()
