"""Fixtures of the cluster tests: one three-broker KRaft cluster per module, healthy before each test.

The cluster runs from the same Maven jars as the one-broker suite, 256 MB of heap per node,
on free loopback ports; it is stopped at the end of the module, also on failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meterline.services.kafka_cluster import LocalKafkaCluster
from meterline.services.kafka_local import find_free_port_block
from tests.e2e.conftest import catalog, fake_slack, smtp_server  # noqa: F401 - fixtures shared with the e2e tests


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory, kafka_jar_cache: Path) -> Iterator[LocalKafkaCluster]:
    cluster = LocalKafkaCluster(
        data_dir=tmp_path_factory.mktemp("kafka-cluster"),
        cache_dir=kafka_jar_cache,
        ports=find_free_port_block(3),
        heap="256m",
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(kafka_cluster: LocalKafkaCluster) -> LocalKafkaCluster:
    """The module's cluster with every node running and every partition fully in sync (a test
    that failed half-way through a fault may have left a node down)."""
    kafka_cluster.heal()
    return kafka_cluster
