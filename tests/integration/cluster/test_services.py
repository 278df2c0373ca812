"""`meterline services up --brokers 3`: a real three-node KRaft cluster, its status, logs and down.

Also: the brokers log again (slf4j-api 2.x resolved beside log4j-slf4j2-impl), and the
cluster keeps taking `acks=all` writes with one node killed (replication 3, min ISR 2).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka import KafkaProducer

from meterline.services.kafka_cluster import STARTED_LINE, LocalKafkaCluster
from meterline.services.kafka_local import find_free_port_block, libs_dir
from tests.support.processes import kafka_pids, meterline_cli

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, jar_cache: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "METERLINE_DATA_DIR": str(tmp_path),
        "METERLINE_LOCAL_KAFKA__PORT": str(port),
        "METERLINE_LOCAL_KAFKA__CACHE_DIR": str(jar_cache),
        "METERLINE_LOCAL_KAFKA__HEAP": "256m",
        "COLUMNS": "250",  # rich wraps at 80 columns otherwise
    }
    env.pop("METERLINE_KAFKA_BOOTSTRAP", None)
    return env


def test_the_resolved_jars_carry_slf4j_2_and_not_1_7(kafka_jar_cache: Path) -> None:
    from meterline.services.kafka_local import resolve_jars

    libs = resolve_jars(kafka_jar_cache, "4.4.0")
    assert libs == libs_dir(kafka_jar_cache, "4.4.0")
    slf4j = sorted(p.name for p in libs.glob("slf4j-api-*.jar"))
    assert slf4j == ["slf4j-api-2.0.17.jar"], slf4j


def test_one_broker_logs_its_start_and_status_says_where(tmp_path: Path, kafka_jar_cache: Path) -> None:
    (port,) = find_free_port_block(1)
    env = _env(tmp_path, kafka_jar_cache, port)
    try:
        up = meterline_cli(env, "services", "up")
        assert up.returncode == 0, up.stderr
        status = meterline_cli(env, "services", "status")
        assert status.returncode == 0, status.stdout
        log = tmp_path / "kafka" / "broker.log"
        assert f"log {log}" in status.stdout
        assert STARTED_LINE in log.read_text(), log.read_text()[-2000:]
    finally:
        down = meterline_cli(env, "services", "down")
    assert down.returncode == 0 and "kafka stopped" in down.stdout


@pytest.mark.slow
def test_services_up_brokers_3_runs_a_cluster_that_survives_a_killed_node(
    tmp_path: Path, kafka_jar_cache: Path
) -> None:
    first = find_free_port_block(3)[0]
    env = _env(tmp_path, kafka_jar_cache, first)
    folder = tmp_path / "kafka-cluster"
    configs = [folder / f"node-{i}" / "server.properties" for i in (1, 2, 3)]
    try:
        up = meterline_cli(env, "services", "up", "--brokers", "3", "--port", str(first))
        assert up.returncode == 0, up.stderr
        assert "kafka cluster started: 3 nodes, replication 3, min ISR 2" in up.stdout
        bootstrap = ",".join(f"127.0.0.1:{first + i}" for i in range(3))
        assert f"METERLINE_KAFKA_BOOTSTRAP={bootstrap}" in up.stdout
        assert "METERLINE_TOPIC_REPLICATION_FACTOR=3 METERLINE_TOPIC_MIN_INSYNC_REPLICAS=2" in up.stdout
        assert all(len(kafka_pids(config)) == 1 for config in configs)

        # One cluster id, every node a voter of the same quorum.
        metas = [(folder / f"node-{i}" / "kraft-logs" / "meta.properties").read_text() for i in (1, 2, 3)]
        cluster_ids = {line for meta in metas for line in meta.splitlines() if line.startswith("cluster.id=")}
        assert len(cluster_ids) == 1, cluster_ids

        again = meterline_cli(env, "services", "up", "--brokers", "3")
        assert again.returncode == 0 and "already running" in again.stdout

        status = meterline_cli(env, "services", "status")
        assert status.returncode == 0, status.stdout
        for i in (1, 2, 3):
            log = folder / f"node-{i}" / "broker.log"
            assert f"kafka node {i} 127.0.0.1:{first + i - 1}: answers" in status.stdout, status.stdout
            assert f"log {log}" in status.stdout
            assert STARTED_LINE in log.read_text(), f"node {i}: {log.read_text()[-2000:]}"
        logs = meterline_cli(env, "services", "logs", "-n", "5")
        assert logs.returncode == 0 and logs.stdout.count("== node ") == 3 and STARTED_LINE in logs.stdout

        # Replication 3, min ISR 2: with one node SIGKILLed, acks=all writes are still acknowledged.
        cluster = LocalKafkaCluster.existing(folder, kafka_jar_cache)
        assert cluster is not None and cluster.bootstrap == bootstrap
        producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=10)
        try:
            producer.send("cluster-check", b"before").get(timeout=60)
            cluster.kill(cluster.leader_of("cluster-check", 0))
            assert producer.send("cluster-check", b"after").get(timeout=60).offset == 1
        finally:
            producer.close(10)
        status = meterline_cli(env, "services", "status")
        assert status.returncode == 1 and status.stdout.count(": answers") == 2, status.stdout
    finally:
        down = meterline_cli(env, "services", "down")
    assert down.returncode == 0 and "kafka cluster stopped" in down.stdout, down.stdout + down.stderr
    assert [kafka_pids(config) for config in configs] == [[], [], []]
    after = meterline_cli(env, "services", "status")
    assert after.returncode == 1 and after.stdout.count("not running") == 3


def test_a_cluster_of_another_size_is_refused_with_what_to_do(tmp_path: Path, kafka_jar_cache: Path) -> None:
    folder = tmp_path / "kafka-cluster"
    cluster = LocalKafkaCluster(folder, kafka_jar_cache, find_free_port_block(3))
    for node in cluster.nodes:  # configured as a three-node cluster (nothing started)
        node.configure(19000 + node.node_id, [19001, 19002, 19003], cluster.replication)
    up = meterline_cli(_env(tmp_path, kafka_jar_cache, cluster.nodes[0].port), "services", "up", "--brokers", "5")
    assert up.returncode == 1
    assert "has 3 nodes, not 5" in up.stderr and "--brokers 3" in up.stderr
