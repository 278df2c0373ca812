"""The stream's topics: names under the prefix, created when missing.

Every topic the worker uses is created here with the settings' replication factor and
min ISR, faust's own ones included (the tables' changelogs and the assignor's leader topic):
faust would create them with its one `topic_replication_factor`, and only when first used.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from meterline.errors import ConfigError
from meterline.settings import Settings

log = logging.getLogger(__name__)

TOPICS = ("usage", "usage.priced", "usage.dlq", "budget.state", "alerts")
COMPACTED = {"budget.state"}


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions, replicas and its configs."""

    name: str
    partitions: int
    replicas: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the settings' prefix, as the worker needs it (pure)."""
    from meterline.stream.app import TABLES, app_id

    replicas = settings.topic_replication_factor
    isr = {"min.insync.replicas": str(settings.topic_min_insync_replicas)} if replicas > 1 else {}
    partitions = settings.topic_partitions
    specs = [
        TopicSpec(
            settings.topic(name),
            partitions,
            replicas,
            {**({"cleanup.policy": "compact"} if name in COMPACTED else {}), **isr},
        )
        for name in TOPICS
    ]
    # faust's names (faust/tables/base.py, faust/assignor/leader_assignor.py) and configs.
    group = app_id(settings)
    specs += [
        TopicSpec(f"{group}-{table}-changelog", partitions, replicas, {"cleanup.policy": "compact", **isr})
        for table in TABLES
    ]
    specs.append(TopicSpec(f"{group}-__assignor-__leader", 1, replicas, dict(isr)))
    return specs


def ensure_topics(settings: Settings, timeout_ms: int = 30_000) -> list[str]:
    """Create the prefix's topics that do not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, for_code

    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        client_id="meterline-topics",
        request_timeout_ms=timeout_ms,
    )
    try:
        _warn_if_unreplicated(admin, settings)
        existing = set(admin.list_topics())
        wanted = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if not wanted:
            return []
        request = {
            spec.name: {"num_partitions": spec.partitions, "replication_factor": spec.replicas, "configs": spec.configs}
            for spec in wanted
        }
        response = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False)
        refused = [
            f"{topic['name']}: {topic.get('error_message') or for_code(topic['error_code']).__name__}"
            for topic in response["topics"]
            # TopicAlreadyExists: another worker created it first.
            if topic["error_code"] not in (0, TopicAlreadyExistsError.errno)
        ]
        if refused:
            raise ConfigError(
                f"Kafka at {settings.kafka_bootstrap} refused to create {'; '.join(refused)} "
                f"(topic_partitions = {settings.topic_partitions}, topic_replication_factor = "
                f"{settings.topic_replication_factor}, topic_min_insync_replicas = {settings.topic_min_insync_replicas}); "
                "the replication factor can be at most the number of brokers"
            )
        created = [spec.name for spec in wanted]
        log.info("created topics %s", created, extra={"replicas": settings.topic_replication_factor})
        return created
    finally:
        admin.close()


def _warn_if_unreplicated(admin: object, settings: Settings) -> None:
    try:
        brokers = len(admin.describe_cluster()["brokers"])  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - only a warning
        return
    if brokers > 1 and settings.topic_replication_factor == 1:
        log.warning(
            "the cluster has %d brokers but topic_replication_factor is 1: the worker's topics will "
            "not be replicated (set METERLINE_TOPIC_REPLICATION_FACTOR=3 and "
            "METERLINE_TOPIC_MIN_INSYNC_REPLICAS=2 on a three-broker cluster)",
            brokers,
        )
