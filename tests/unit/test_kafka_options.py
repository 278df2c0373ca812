"""meterline/kafka_options.py: one set of consumer values, spelled for faust, aiokafka and kafka-python."""

from __future__ import annotations

from meterline.kafka_options import (
    HEARTBEAT_INTERVAL_S,
    PARTITION_FETCH_BYTES,
    SESSION_TIMEOUT_S,
    faust_consumer_options,
    kafka_python_group_options,
)
from meterline.settings import load_settings
from meterline.stream.app import StreamApp


def test_every_stack_gets_the_same_values() -> None:
    faust, kafka_python = faust_consumer_options(), kafka_python_group_options(fetch_max_wait_ms=40)
    assert faust["broker_session_timeout"] * 1000 == kafka_python["session_timeout_ms"] == SESSION_TIMEOUT_S * 1000
    assert faust["broker_heartbeat_interval"] * 1000 == kafka_python["heartbeat_interval_ms"]
    assert faust["consumer_max_fetch_size"] == kafka_python["max_partition_fetch_bytes"] == PARTITION_FETCH_BYTES
    assert kafka_python["fetch_max_wait_ms"] == 40


def test_the_stream_app_is_configured_with_them() -> None:
    conf = StreamApp(load_settings(topic_prefix="unit.")).app.conf
    assert conf.broker_session_timeout == SESSION_TIMEOUT_S
    assert conf.broker_heartbeat_interval == HEARTBEAT_INTERVAL_S
    assert conf.consumer_max_fetch_size == PARTITION_FETCH_BYTES
