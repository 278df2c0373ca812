"""A local Apache Kafka KRaft cluster on 127.0.0.1: N nodes from the same jars as LocalKafka.

Each node is broker and controller in one process, with its own ports and data folder
(`<data_dir>/node-<id>`). All nodes share one cluster id and are formatted with the same
`--initial-controllers` list (`id@127.0.0.1:controller-port:directory-id`, the directory ids
drawn as `kafka-storage random-uuid` draws them). With three nodes the internal topics and
the brokers' defaults are replication 3, min ISR 2: one node may die and `acks=all` sends
still land. The controller ports are written in each node's server.properties and kept
across restarts (the quorum records them).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterline.errors import PortInUseError, ServiceError
from meterline.services.kafka_config import Replication, Voter, initial_controllers, kafka_uuid
from meterline.services.kafka_local import (
    READY_TIMEOUT_S,
    BrokerStatus,
    LocalKafka,
    find_free_port_block,
    port_is_open,
    resolve_jars,
)

READY_TOPIC = "meterline.ready-check"
STARTED_LINE = "Kafka Server started"
"""What a KRaft node logs at the end of its start-up (kafka.server.KafkaRaftServer)."""


class LocalKafkaCluster:
    """N local KRaft nodes that form one cluster; started, stopped and faulted together or one by one."""

    def __init__(
        self,
        data_dir: Path,
        cache_dir: Path,
        ports: Sequence[int],
        heap: str = "256m",
        kafka_version: str = "4.4.0",
    ) -> None:
        if len(ports) < 2:
            raise ValueError("a cluster has at least two nodes; use LocalKafka for one")
        if len(set(ports)) != len(ports):
            raise ValueError(f"every node needs its own port: {list(ports)}")
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir)
        self.kafka_version = kafka_version
        self.replication = Replication.for_brokers(len(ports))
        self.nodes = [
            LocalKafka(
                data_dir=self.data_dir / f"node-{node_id}",
                cache_dir=cache_dir,
                port=port,
                heap=heap,
                kafka_version=kafka_version,
                node_id=node_id,
            )
            for node_id, port in enumerate(ports, start=1)
        ]

    @classmethod
    def existing(
        cls, data_dir: Path, cache_dir: Path, heap: str = "256m", kafka_version: str = "4.4.0"
    ) -> LocalKafkaCluster | None:
        """The cluster configured in `data_dir` before (its size and ports), or None."""
        ports: dict[int, int] = {}
        for config in Path(data_dir).glob("node-*/server.properties"):
            node_id = int(config.parent.name.removeprefix("node-"))
            for line in config.read_text().splitlines():
                if line.startswith("listeners="):
                    ports[node_id] = int(line.split(",")[0].rsplit(":", 1)[1])
        if len(ports) < 2:
            return None
        if sorted(ports) != list(range(1, len(ports) + 1)):
            raise ServiceError(
                f"the cluster in {data_dir} has nodes {sorted(ports)}; delete the folder to start afresh"
            )
        return cls(data_dir, cache_dir, [ports[i] for i in sorted(ports)], heap=heap, kafka_version=kafka_version)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in this cluster (nodes {[n.node_id for n in self.nodes]})")

    @property
    def log_files(self) -> list[Path]:
        return [node.log_file for node in self.nodes]

    # -- whole cluster -------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Start every node not running yet and wait for the whole cluster; True if any started."""
        stopped = [node for node in self.nodes if not node.running]
        if not stopped:
            self.wait_ready(timeout)
            return False
        for node in stopped:
            node.check_port_free()
        resolve_jars(self.cache_dir, self.kafka_version)
        self._configure()
        self._format()
        launched = [self._launch(node) for node in stopped]
        try:
            self.wait_ready(timeout, launched)
        except ServiceError:
            for item in launched:
                item.node.stop()
            raise
        return True

    def _configure(self) -> None:
        taken: set[int] = {node.port for node in self.nodes}
        controller_ports: list[int] = []
        for node in self.nodes:
            stored = node.stored_controller_port()
            if stored is not None and node.formatted:
                if not node.running and port_is_open(stored):
                    raise PortInUseError(
                        stored,
                        f" (controller port of node {node.node_id}, kept in its quorum); "
                        f"stop what holds it or delete {self.data_dir} to start afresh",
                    )
                port = stored
            else:
                # Below the ephemeral range: formatting takes seconds before the node binds it.
                port = next(p for p in find_free_port_block(len(taken) + 1) if p not in taken)
            taken.add(port)
            controller_ports.append(port)
        for node, port in zip(self.nodes, controller_ports, strict=True):
            if not node.running:
                node.configure(port, controller_ports, self.replication)

    def _format(self) -> None:
        formatted = [node.formatted for node in self.nodes]
        if all(formatted):
            return
        if any(formatted):
            done = [n.node_id for n, f in zip(self.nodes, formatted, strict=True) if f]
            raise ServiceError(
                f"only nodes {done} of the cluster in {self.data_dir} are formatted (a start was cut "
                f"short or the cluster had another size); stop it and delete {self.data_dir} to start afresh"
            )
        cluster_id = kafka_uuid()
        voters = [Voter(node.node_id, _required(node.stored_controller_port()), kafka_uuid()) for node in self.nodes]
        quorum = initial_controllers(voters)
        for node in self.nodes:
            node.format(cluster_id, quorum)

    @staticmethod
    def _launch(node: LocalKafka) -> Launched:
        return Launched(node, node.launch(), _count_started(node))

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, launched: Sequence[Launched] = ()) -> None:
        """Wait until the nodes just launched logged their start, every node is registered and
        unfenced, and a topic replicated on all of them can be made."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        want = {node.node_id for node in self.nodes}
        while time.monotonic() < deadline:
            for item in launched:
                item.node.check_alive(item.proc)
            waiting = [item.node.node_id for item in launched if _count_started(item.node) <= item.started_before]
            if waiting:
                last = f"nodes {waiting} have not logged {STARTED_LINE!r} yet"
                time.sleep(0.3)
                continue
            try:
                seen = registered_brokers(self.bootstrap)
                if seen == want:
                    _create_replicated_topic(self.bootstrap, len(self.nodes))
                    return
                last = f"brokers registered: {sorted(seen)} of {sorted(want)}"
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        raise ServiceError(
            f"the Kafka cluster on {self.bootstrap} was not ready within {timeout:.0f} s ({last}); "
            f"see {', '.join(str(p) for p in self.log_files)}"
        )

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop every node (SIGTERM all, then wait; SIGKILL after `timeout`); return the ids stopped."""
        pids = [(node, node.signal_stop()) for node in self.nodes]
        stopped = []
        for node, pid in pids:
            if pid is not None:
                node.wait_stopped(pid, timeout)
                stopped.append(node.node_id)
        return stopped

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    # -- one node at a time (faults, rolling restarts) --------------------------------
    def kill(self, node_id: int) -> None:
        """SIGKILL one node."""
        self.node(node_id).kill()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> bool:
        """Stop one node cleanly (a controlled shutdown: its leaderships move first)."""
        return self.node(node_id).stop(timeout)

    def start_node(self, node_id: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Start one stopped node of the formatted cluster and wait until it is registered again."""
        node = self.node(node_id)
        if node.running:
            return
        if not node.formatted:
            raise ServiceError(f"node {node_id} in {node.data_dir} is not formatted; start the whole cluster first")
        node.check_port_free()
        launched = self._launch(node)
        try:
            self.wait_ready(timeout, [launched])
        except ServiceError:
            node.stop()
            raise

    def heal(self) -> None:
        """Start every node that is down and wait until every partition is fully in sync (after a
        fault test or a soak round that stopped half-way through its fault)."""
        for node in self.nodes:
            if not node.running:
                self.start_node(node.node_id)
        self.wait_in_sync()

    def wait_in_sync(self, timeout: float = READY_TIMEOUT_S, topics: Sequence[str] | None = None) -> None:
        """Wait until every partition (of `topics`, default all) has a leader and its full ISR."""
        deadline = time.monotonic() + timeout
        last: list[str] = []
        while time.monotonic() < deadline:
            try:
                last = under_replicated(self.bootstrap, topics)
                if not last:
                    return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last = [f"{type(exc).__name__}: {exc}"]
            time.sleep(0.3)
        raise ServiceError(f"partitions still under-replicated after {timeout:.0f} s: {last[:10]}")

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id leading `topic`[`partition`] now."""
        return partition_leaders(self.bootstrap, topic)[partition]


@dataclass(frozen=True)
class Launched:
    """A node process just started, and how often its log said it had started before."""

    node: LocalKafka
    proc: subprocess.Popen[bytes]
    started_before: int


def _count_started(node: LocalKafka) -> int:
    try:
        return node.log_file.read_text(errors="replace").count(STARTED_LINE)
    except OSError:
        return 0


def _required(port: int | None) -> int:
    if port is None:
        raise ServiceError("a node's server.properties names no controller port")
    return port


def _admin(bootstrap: str, client_id: str = "meterline-cluster") -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=5000, client_id=client_id)


def registered_brokers(bootstrap: str) -> set[int]:
    """Ids of the unfenced brokers the cluster's metadata lists."""
    admin = _admin(bootstrap)
    try:
        return {int(b["broker_id"]) for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
    finally:
        admin.close()


def _create_replicated_topic(bootstrap: str, replicas: int) -> None:
    from kafka.errors import TopicAlreadyExistsError

    admin = _admin(bootstrap, "meterline-ready")
    try:
        try:
            admin.create_topics({READY_TOPIC: {"num_partitions": 1, "replication_factor": replicas}})
        except TopicAlreadyExistsError:
            pass
        if READY_TOPIC not in admin.list_topics():
            raise ServiceError("created topic not listed yet")
    finally:
        admin.close()


def partition_leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> leader node id (-1 while none) of one topic."""
    admin = _admin(bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        return {int(p["partition_index"]): int(p["leader_id"]) for p in described["partitions"]}
    finally:
        admin.close()


def under_replicated(bootstrap: str, topics: Sequence[str] | None = None) -> list[str]:
    """`topic[p]: isr … of replicas …` for every partition without a leader or its full ISR."""
    admin = _admin(bootstrap)
    try:
        described = admin.describe_topics(list(topics) if topics is not None else None)
    finally:
        admin.close()
    found = []
    for topic in described:
        if topic.get("error_code"):
            found.append(f"{topic['name']}: error {topic['error_code']}")
            continue
        for p in topic["partitions"]:
            replicas, isr = sorted(p["replica_nodes"]), sorted(p["isr_nodes"])
            if p["leader_id"] < 0 or isr != replicas:
                found.append(
                    f"{topic['name']}[{p['partition_index']}]: leader {p['leader_id']}, isr {isr} of {replicas}"
                )
    return found
