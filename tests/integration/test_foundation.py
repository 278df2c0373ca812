"""The foundation's real parts: a Kafka round trip, chDB through clickhouse-connect, doctor,
and `meterline services up|down|status` against a broker it starts itself."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from meterline.core_cli import run_checks
from meterline.services.kafka_local import find_free_port
from meterline.settings import load_settings
from tests.support.processes import kafka_pids, meterline_cli
from tests.support.topics import create_topics

pytestmark = pytest.mark.integration


def test_kafka_round_trip(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    create_topics(kafka_bootstrap, {topic: 2})
    sent: dict[bytes, list[bytes]] = {f"key-{i % 3}".encode(): [] for i in range(3)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        key = f"key-{i % 3}".encode()
        value = f"value-{i}".encode()
        sent[key].append(value)
        producer.send(topic, key=key, value=value, headers=[("h", b"1")])
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"g-{uuid.uuid4().hex}",
        consumer_timeout_ms=10_000,
    )
    received: dict[bytes, list[bytes]] = {key: [] for key in sent}
    for message in consumer:
        received[message.key].append(message.value)
        assert message.headers == [("h", b"1")]
        if sum(len(v) for v in received.values()) == 30:
            break
    consumer.close()
    # Per key (one partition per key) order is kept.
    assert received == sent


def test_chdb_create_insert_select(chdb_client) -> None:
    chdb_client.command("CREATE TABLE spend (team String, cost Decimal(38, 12)) ENGINE = MergeTree ORDER BY team")
    chdb_client.insert(
        "spend",
        [["a", Decimal("0.000000000001")], ["a", Decimal("1.5")], ["b", Decimal("2")]],
        column_names=["team", "cost"],
    )
    rows = chdb_client.query("SELECT team, sum(cost) FROM spend GROUP BY team ORDER BY team").result_rows
    assert rows == [("a", Decimal("1.500000000001")), ("b", Decimal("2"))]
    assert chdb_client.server_version.split(".")[0] >= "2"


def test_doctor_checks_live_broker_and_embedded_clickhouse(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, kafka_bootstrap=kafka_bootstrap)
    checks = {check.name: check for check in run_checks(settings)}
    assert checks["kafka"].ok, checks["kafka"].detail
    assert "Kafka 4." in checks["kafka"].detail
    assert checks["clickhouse"].ok, checks["clickhouse"].detail
    assert "embedded chDB" in checks["clickhouse"].detail and "ClickHouse 26." in checks["clickhouse"].detail
    assert checks["java"].ok and checks["maven"].ok


def test_doctor_cli_fails_when_kafka_is_away(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "METERLINE_DATA_DIR": str(tmp_path),
        "METERLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "meterline.cli", "doctor"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "FAIL kafka" in proc.stdout
    assert "meterline services up" in proc.stdout
    assert "ok   clickhouse" in proc.stdout


def test_services_up_twice_leaves_one_broker_and_down_stops_it(tmp_path: Path, kafka_jar_cache: Path) -> None:
    port = find_free_port()
    env = {
        **os.environ,
        "METERLINE_DATA_DIR": str(tmp_path),
        "METERLINE_LOCAL_KAFKA__PORT": str(port),
        "METERLINE_LOCAL_KAFKA__CACHE_DIR": str(kafka_jar_cache),
    }
    env.pop("METERLINE_KAFKA_BOOTSTRAP", None)
    config_file = tmp_path / "kafka" / "server.properties"
    try:
        first = meterline_cli(env, "services", "up")
        assert first.returncode == 0, first.stderr
        assert "kafka started" in first.stdout
        second = meterline_cli(env, "services", "up")
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert len(kafka_pids(config_file)) == 1
        status = meterline_cli(env, "services", "status")
        assert status.returncode == 0 and "answers" in status.stdout
        # A second folder asking for the same port is told the port is taken.
        other = {**env, "METERLINE_DATA_DIR": str(tmp_path / "other")}
        clash = meterline_cli(other, "services", "up")
        assert clash.returncode == 1
        assert f"port {port}" in clash.stderr and "already in use" in clash.stderr
    finally:
        down = meterline_cli(env, "services", "down")
    assert down.returncode == 0 and "kafka stopped" in down.stdout
    assert kafka_pids(config_file) == []
    after = meterline_cli(env, "services", "status")
    assert after.returncode == 1 and "not running" in after.stdout
