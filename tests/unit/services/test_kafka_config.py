"""What a local KRaft node is told: ids the storage tool accepts, the quorum, replication."""

from __future__ import annotations

import base64

import pytest

from meterline.services.kafka_config import Replication, Voter, initial_controllers, kafka_uuid, server_properties


def test_ids_never_start_with_a_dash() -> None:
    # One random id in 64 starts with "-"; kafka-storage then reads it as an option and
    # `services up` fails (seen once in CI). 5,000 draws would hit that about 78 times.
    ids = [kafka_uuid() for _ in range(5000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]


def test_ids_are_16_byte_url_safe_base64() -> None:
    cluster_id = kafka_uuid()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_initial_controllers_names_every_voter_with_its_directory() -> None:
    voters = [
        Voter(1, 19001, "AAAAAAAAAAAAAAAAAAAAAQ"),
        Voter(2, 19002, "BBBBBBBBBBBBBBBBBBBBBQ"),
        Voter(3, 19003, "CCCCCCCCCCCCCCCCCCCCCQ"),
    ]
    assert initial_controllers(voters) == (
        "1@127.0.0.1:19001:AAAAAAAAAAAAAAAAAAAAAQ,2@127.0.0.1:19002:BBBBBBBBBBBBBBBBBBBBBQ,3@127.0.0.1:19003:CCCCCCCCCCCCCCCCCCCCCQ"
    )


@pytest.mark.parametrize(("brokers", "factor", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_replication_follows_the_number_of_brokers(brokers: int, factor: int, min_isr: int) -> None:
    assert Replication.for_brokers(brokers) == Replication(factor, min_isr)


def _props(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines)


def test_a_cluster_node_has_its_own_id_and_ports_and_knows_the_whole_quorum() -> None:
    props = _props(
        server_properties(
            node_id=2,
            port=9093,
            controller_port=19002,
            quorum_ports=[19001, 19002, 19003],
            log_dirs="/data/node-2/kraft-logs",
            replication=Replication.for_brokers(3),
        )
    )
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19001,127.0.0.1:19002,127.0.0.1:19003"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:19002"
    assert "controller.quorum.voters" not in props  # a dynamic quorum: --initial-controllers instead
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
        assert props[key] == "2", key


def test_one_node_keeps_replication_one() -> None:
    props = _props(
        server_properties(
            node_id=1, port=9092, controller_port=19000, quorum_ports=[19000], log_dirs="/d", replication=Replication()
        )
    )
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19000"
    assert (
        props["offsets.topic.replication.factor"]
        == props["transaction.state.log.min.isr"]
        == props["min.insync.replicas"]
        == "1"
    )
