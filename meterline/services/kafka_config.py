"""What a local KRaft node is told: its server.properties, the quorum, its log configuration.

Pure: no processes, no files. One node (`meterline services up`) is a standalone quorum with
replication 1; a cluster (`--brokers 3`) is N combined broker+controller nodes on 127.0.0.1,
each with its own ports and data folder, one cluster id, formatted with the same
`--initial-controllers` list, replication N (at most 3) and min ISR 2.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Voter:
    """One controller of the quorum: its node id, controller port and metadata directory id."""

    node_id: int
    controller_port: int
    directory_id: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.controller_port}"


@dataclass(frozen=True)
class Replication:
    """Replication of the internal topics (offsets, transactions) and the broker's defaults."""

    factor: int = 1
    min_insync: int = 1

    @classmethod
    def for_brokers(cls, brokers: int) -> Replication:
        """1 broker: 1/1 (as ever); 2: 2/1; 3 or more: 3/2 (one node may fail, acks=all still lands)."""
        if brokers <= 1:
            return cls(1, 1)
        factor = min(brokers, 3)
        return cls(factor, 2 if factor >= 3 else 1)


def kafka_uuid() -> str:
    """An id as Kafka's own `Uuid.randomUuid` (`kafka-storage random-uuid`) makes it: 16 random
    bytes in url-safe base64, never one starting with "-" (the storage tool's argument parser
    would read it as an option: 1 id in 64) and never a reserved id (the first 100 values)."""
    while True:
        raw = uuid.uuid4().bytes
        if int.from_bytes(raw, "big") < 100:
            continue
        text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def initial_controllers(voters: list[Voter]) -> str:
    """The `kafka-storage format --initial-controllers` value: `id@host:port:directory,…`."""
    return ",".join(f"{v.node_id}@{v.endpoint}:{v.directory_id}" for v in voters)


def server_properties(
    *,
    node_id: int,
    port: int,
    controller_port: int,
    quorum_ports: list[int],
    log_dirs: str,
    replication: Replication,
) -> list[str]:
    """The lines of one node's server.properties (broker and controller in one process)."""
    quorum = ",".join(f"127.0.0.1:{p}" for p in quorum_ports)
    rf, isr = replication.factor, replication.min_insync
    return [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.bootstrap.servers={quorum}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        # The controller listener is advertised too: dynamic-quorum voters find each other by it.
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={log_dirs}",
        "num.partitions=1",
        f"default.replication.factor={rf}",
        f"min.insync.replicas={isr}",
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=4",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={isr}",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "log.retention.hours=168",
        "log.segment.bytes=134217728",
        "num.network.threads=2",
        "num.io.threads=2",
        "message.max.bytes=2097152",
        # A replica that stops fetching leaves the ISR after 10 s (Kafka's default is 30 s),
        # so acks=all sends stop waiting on a killed node sooner.
        "replica.lag.time.max.ms=10000",
        # A killed node is fenced, and its partitions get new leaders, after 3 s without a
        # heartbeat (Kafka's defaults, 2 s / 9 s, left them leaderless for 8-12 s here).
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
    ]


LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
"""
"""The broker's log4j2 configuration: warnings, plus the INFO lines of start and stop
("Kafka Server started"); the broker's stdout goes to broker.log in its data folder."""
