"""The worker's topics take partitions, replication and min ISR from the settings, faust's too."""

from __future__ import annotations

import pytest

from meterline.errors import ConfigError
from meterline.settings import load_settings
from meterline.stream.topics import TopicSpec, topic_specs
from tests.unit.test_settings import _clean_env  # noqa: F401 - the settings tests' autouse fixture: no METERLINE_* from the caller


def test_one_broker_defaults_are_unchanged() -> None:
    settings = load_settings(topic_prefix="m.")
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas, settings.local_kafka.brokers) == (
        1,
        1,
        1,
    )
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert specs["m.usage"] == TopicSpec("m.usage", 1, 1, {})
    assert specs["m.budget.state"] == TopicSpec("m.budget.state", 1, 1, {"cleanup.policy": "compact"})


def test_a_cluster_gets_every_topic_replicated_with_min_isr_faust_changelogs_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METERLINE_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("METERLINE_TOPIC_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("METERLINE_TOPIC_PARTITIONS", "3")
    specs = {spec.name: spec for spec in topic_specs(load_settings(topic_prefix="m."))}
    assert set(specs) == {
        "m.usage",
        "m.usage.priced",
        "m.usage.dlq",
        "m.budget.state",
        "m.alerts",
        "m.stream-cells-changelog",
        "m.stream-fired-changelog",
        "m.stream-dedup-changelog",
        "m.stream-__assignor-__leader",
    }
    for spec in specs.values():
        assert spec.replicas == 3 and spec.configs["min.insync.replicas"] == "2", spec
        assert spec.partitions == (1 if spec.name.endswith("__leader") else 3), spec
    assert specs["m.stream-dedup-changelog"].configs["cleanup.policy"] == "compact"


def test_min_isr_above_the_replication_factor_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError, match="topic_min_insync_replicas .2. exceeds topic_replication_factor .1."):
        load_settings(topic_min_insync_replicas=2)


def test_broker_count_is_bounded() -> None:
    with pytest.raises(ConfigError, match="local_kafka.brokers"):
        load_settings(local_kafka={"brokers": 0})
