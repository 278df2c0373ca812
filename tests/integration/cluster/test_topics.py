"""On the cluster, every topic a worker makes is replicated 3 times with min ISR 2, faust's own too."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from meterline.services.kafka_cluster import LocalKafkaCluster
from meterline.settings import load_settings
from meterline.stream.topics import ensure_topics, topic_specs
from tests.integration.cluster.scaleout import cluster_env
from tests.integration.stream.harness import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _describe(bootstrap: str, prefix: str) -> dict[str, tuple[int, set[int], str]]:
    """topic -> (partitions, replica counts of its partitions, min.insync.replicas)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        names = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        described = {t["name"]: t for t in admin.describe_topics(names)}
        # The configs set on each topic (not inherited from the brokers' defaults).
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])["topic"]
    finally:
        admin.close()
    isr = {name: configs[name].get("min.insync.replicas", {}).get("value", "unset") for name in names}
    return {
        name: (
            len(described[name]["partitions"]),
            {len(p["replica_nodes"]) for p in described[name]["partitions"]},
            isr[name],
        )
        for name in names
    }


def test_a_worker_on_the_cluster_creates_every_topic_with_replication_3_and_min_isr_2(
    cluster: LocalKafkaCluster, topic_prefix: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(cluster.bootstrap, topic_prefix, tmp_path, only="stream", env=cluster_env()).start()
    try:
        found = _describe(cluster.bootstrap, topic_prefix)
    finally:
        assert worker.stop() == 0, worker.log()
    # Whatever faust made while it ran is listed too: nothing escaped the settings.
    expected = {
        spec.name
        for spec in topic_specs(
            load_settings(topic_prefix=topic_prefix, topic_replication_factor=3, topic_min_insync_replicas=2)
        )
    }
    assert set(found) == expected, set(found) ^ expected
    for name, (partitions, replicas, min_isr) in found.items():
        assert replicas == {3} and min_isr == "2", (name, replicas, min_isr)
        assert partitions == (1 if name.endswith("__leader") else 3), name


def test_a_replication_factor_above_the_broker_count_is_refused_naming_the_setting(
    cluster: LocalKafkaCluster, topic_prefix: str
) -> None:
    from meterline.errors import ConfigError

    settings = load_settings(kafka_bootstrap=cluster.bootstrap, topic_prefix=topic_prefix, topic_replication_factor=4)
    with pytest.raises(ConfigError, match="topic_replication_factor = 4"):
        ensure_topics(settings)
