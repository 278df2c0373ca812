"""A real Apache Kafka (KRaft) node on 127.0.0.1, without Docker: one broker, or one node of
a local cluster (kafka_cluster.py).

The broker's jars come from Maven Central through `mvn` and the small pom kept beside
this module; they are cached per pom, so a second start downloads nothing. Storage is
formatted once per data folder. The broker runs as a child process whose pid is written to a
file, and `stop` signals only that pid. Its log is `broker.log` in its data folder.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from meterline.errors import MissingToolError, PortInUseError, ServiceError
from meterline.services.kafka_config import LOG4J2_PROPERTIES, Replication, kafka_uuid, server_properties
from meterline.settings import Settings

POM_NAME = "kafka-pom.xml"
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    answers: bool
    bootstrap: str
    kafka_version: str | None
    detail: str
    node_id: int = 1
    log_file: Path | None = None


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def find_free_port_block(count: int, attempts: int = 200) -> list[int]:
    """`count` consecutive free loopback ports below the ephemeral range (from 20000 up), so no
    outgoing connection takes one of them between this check and the bind: a cluster's nodes
    listen on port, port + 1, …"""
    import random

    floor = _ephemeral_floor()
    low = min(20000, max(1024, floor - 1000))
    for _ in range(attempts):
        base = random.randrange(low, floor - count)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise ServiceError(f"found no {count} consecutive free ports on 127.0.0.1 below {floor}")


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _require_tool(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(tool, hint)
    return path


def require_java() -> str:
    return _require_tool("java", "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)")


def require_maven() -> str:
    return _require_tool("mvn", "install Apache Maven (Debian: apt-get install maven)")


def java_version() -> str | None:
    try:
        out = subprocess.run([require_java(), "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (MissingToolError, OSError, subprocess.TimeoutExpired):
        return None
    first = (out.stderr or out.stdout).splitlines()
    return first[0].strip() if first else None


def maven_version() -> str | None:
    try:
        out = subprocess.run([require_maven(), "-v", "-B"], capture_output=True, text=True, timeout=60, check=False)
    except (MissingToolError, OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        if "Maven" in line:
            return re.sub(r"\x1b\[[0-9;]*m|\[[0-9;]*m", "", line).strip()
    return None


class LocalKafka:
    """One node: its jar cache, its data folder, its pid file.

    Alone (the default) it is a standalone KRaft quorum with replication 1. As node `node_id`
    of a LocalKafkaCluster, the cluster configures and formats it (`configure`, `format`),
    launches every node, then waits for all of them.
    """

    def __init__(
        self,
        data_dir: Path,
        cache_dir: Path,
        port: int = 9092,
        controller_port: int | None = None,
        heap: str = "512m",
        kafka_version: str = "4.4.0",
        *,
        node_id: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir)
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.kafka_version = kafka_version
        self.node_id = node_id

    @classmethod
    def from_settings(cls, settings: Settings, port: int | None = None) -> LocalKafka:
        """The local broker the settings describe: data under `<data_dir>/kafka`, jars in
        `local_kafka.cache_dir` (default `<data_dir>/cache/kafka`)."""
        lk = settings.local_kafka
        return cls(
            data_dir=settings.data_dir / "kafka",
            cache_dir=lk.cache_dir or settings.data_dir / "cache" / "kafka",
            port=port or lk.port,
            controller_port=lk.controller_port,
            heap=lk.heap,
            kafka_version=lk.kafka_version,
        )

    # -- paths -------------------------------------------------------------------
    @property
    def libs_dir(self) -> Path:
        return libs_dir(self.cache_dir, self.kafka_version)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").exists()

    @property
    def running(self) -> bool:
        return self._read_pid() is not None

    # -- jars --------------------------------------------------------------------
    def resolve_jars(self) -> Path:
        """Resolve the broker's jars with mvn into the cache (once per pom and version)."""
        return resolve_jars(self.cache_dir, self.kafka_version)

    # -- config and storage -------------------------------------------------------
    def configure(self, controller_port: int, quorum_ports: list[int], replication: Replication) -> None:
        """Write server.properties and the log4j2 configuration into the data folder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        lines = server_properties(
            node_id=self.node_id,
            port=self.port,
            controller_port=controller_port,
            quorum_ports=quorum_ports,
            log_dirs=str(self.log_dirs),
            replication=replication,
        )
        self.config_file.write_text("\n".join(lines) + "\n")
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def _java_base(self) -> list[str]:
        java = require_java()
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
        ]

    def format(self, cluster_id: str, initial_controllers: str | None = None) -> None:
        """Format the storage once: a standalone quorum, or one voter of `initial_controllers`."""
        if self.formatted:
            return
        quorum = ["--standalone"] if initial_controllers is None else ["--initial-controllers", initial_controllers]
        cmd = self._java_base() + [
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.config_file),
            *quorum,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ServiceError(f"formatting Kafka storage of node {self.node_id} failed:\n{proc.stdout}{proc.stderr}")

    # -- process ------------------------------------------------------------------
    def _read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_our_broker(pid, self.config_file) else None

    def stored_controller_port(self) -> int | None:
        """The controller port written in this node's server.properties, if any."""
        try:
            for line in self.config_file.read_text().splitlines():
                if line.startswith("listeners="):
                    return int(line.rsplit(":", 1)[1])
        except (OSError, ValueError):
            return None
        return None

    def start(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Start the broker unless ours already runs; return True if this call started it."""
        pid = self._read_pid()
        if pid is not None:
            self.wait_ready(timeout)
            return False
        self.check_port_free()
        self.resolve_jars()
        controller_port = self.controller_port or self.stored_controller_port() or find_free_port_block(1)[0]
        if port_is_open(controller_port):
            controller_port = find_free_port_block(1)[0]
        self.configure(controller_port, [controller_port], Replication())
        self.format(kafka_uuid())
        proc = self.launch()
        try:
            self.wait_ready(timeout, proc=proc)
        except ServiceError:
            self.stop()
            raise
        return True

    def check_port_free(self) -> None:
        if port_is_open(self.port):
            raise PortInUseError(
                self.port,
                "; stop it or choose another port (METERLINE_LOCAL_KAFKA__PORT or --port)",
            )

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the configured, formatted node's process; do not wait for it."""
        cmd = self._java_base() + ["kafka.Kafka", str(self.config_file)]
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it
            )
        finally:
            log.close()
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_ready(self, timeout: float = READY_TIMEOUT_S, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until a client can create and list a topic."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            self.check_alive(proc)
            if port_is_open(self.port):
                try:
                    _create_and_list_topic(self.bootstrap)
                    return
                except Exception as exc:  # noqa: BLE001 - retried until the deadline
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.3)
        raise ServiceError(
            f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f} s "
            f"({last_error}); see {self.log_file}"
        )

    def check_alive(self, proc: subprocess.Popen[bytes] | None) -> None:
        """Raise with the log's tail if the process this node launched has exited."""
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"Kafka node {self.node_id} exited with code {proc.returncode} while starting; "
                f"see {self.log_file}:\n{_tail(self.log_file)}"
            )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker this folder's pid file names; return True if one was stopped."""
        pid = self.signal_stop()
        if pid is None:
            return False
        self.wait_stopped(pid, timeout)
        return True

    def signal_stop(self) -> int | None:
        """SIGTERM the broker (a controlled shutdown) without waiting; return its pid."""
        pid = self._read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        _signal(pid, signal.SIGTERM)
        return pid

    def wait_stopped(self, pid: int, timeout: float = 30.0) -> None:
        """Wait for `pid` to exit; SIGKILL it after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker (fault tests)."""
        pid = self._read_pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
            # The JVM's leader thread turns zombie before its last threads let go of the
            # sockets: a restart right away found the port still taken (PortInUseError).
            deadline = time.monotonic() + 10.0
            while port_is_open(self.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.pid_file.unlink(missing_ok=True)

    def status(self) -> BrokerStatus:
        pid = self._read_pid()
        version = None
        answers = False
        detail = "not running"
        if port_is_open(self.port):
            try:
                version = node_version(self.bootstrap, self.node_id)
                answers = True
                detail = "answers"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                detail = f"port open but Kafka did not answer: {exc}"
        if pid is not None and not answers:
            detail = f"process {pid} runs but does not answer yet"
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            answers=answers,
            bootstrap=self.bootstrap,
            kafka_version=version,
            detail=detail,
            node_id=self.node_id,
            log_file=self.log_file,
        )


def _pom_digest() -> str:
    pom = resources.files("meterline.services").joinpath(POM_NAME)
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:8]


def libs_dir(cache_dir: Path, kafka_version: str) -> Path:
    """The jars of one Kafka version and one pom: a changed pom resolves into a fresh folder, so
    no jar of an older resolution (slf4j-api 1.7.36 beside 2.0.17) stays on the class path."""
    return Path(cache_dir) / f"kafka-{kafka_version}-{_pom_digest()}" / "libs"


def resolve_jars(cache_dir: Path, kafka_version: str) -> Path:
    """Resolve the broker's jars with mvn into the cache (once per pom and version)."""
    libs = libs_dir(cache_dir, kafka_version)
    done_marker = libs / ".resolved"
    if done_marker.exists():
        return libs
    mvn = require_maven()
    require_java()
    libs.mkdir(parents=True, exist_ok=True)
    pom = resources.files("meterline.services").joinpath(POM_NAME)
    with resources.as_file(pom) as pom_path:
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom_path),
            "dependency:copy-dependencies",
            f"-Dkafka.version={kafka_version}",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise ServiceError(
            f"mvn could not resolve Apache Kafka {kafka_version} from Maven Central "
            f"(exit {proc.returncode}). Check network access to repo.maven.apache.org or set "
            f"local_kafka.kafka_version to a released 4.x version.\n{tail}"
        )
    done_marker.write_text(kafka_version)
    return libs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                return False
    except OSError:
        return False
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _is_our_broker(pid: int, config_file: Path) -> bool:
    """True if pid is alive and is a kafka.Kafka process started with our config."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(config_file).encode() in cmdline


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _create_and_list_topic(bootstrap: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="meterline-ready")
    try:
        try:
            admin.create_topics([NewTopic("meterline.ready-check", 1, 1)])
        except TopicAlreadyExistsError:
            pass
        if "meterline.ready-check" not in admin.list_topics():
            raise ServiceError("created topic not listed yet")
    finally:
        admin.close()


def node_version(bootstrap: str, node_id: int, timeout_ms: int = 5000) -> str:
    """The Kafka version node `node_id` at `bootstrap` infers from its own API versions, asked of
    that node alone: a cluster-wide request may go to any broker the metadata lists, a killed
    one included (`services status` then saw live nodes as not answering)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, client_id="meterline-status")
    try:
        inferred = str(admin.get_broker_version_data(node_id))
        return inferred.removeprefix("<BrokerVersionData ").removesuffix(">") + "+"
    finally:
        admin.close()


def broker_version(bootstrap: str, timeout_ms: int = 5000) -> str:
    """The broker's Kafka version as inferred from its API versions, e.g. `4.3+ (metadata.version 33)`."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, client_id="meterline-doctor")
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers") or []
        if not brokers:
            raise ServiceError("the cluster reported no brokers")
        inferred = str(admin.get_broker_version_data(brokers[0]["broker_id"]))
        version = inferred.removeprefix("<BrokerVersionData ").removesuffix(">")
        detail = ""
        try:
            metadata = admin.describe_features().get("metadata.version", {})
            if metadata.get("finalized"):
                detail = f", metadata.version {metadata['finalized'][1]}"
        except Exception:  # noqa: BLE001 - older brokers lack DescribeFeatures
            pass
        return f"{version}+ ({len(brokers)} broker(s){detail})"
    finally:
        admin.close()
