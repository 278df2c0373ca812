"""Shared fixtures: a real Kafka broker, unique topic prefixes, a fresh embedded ClickHouse.

- `kafka_bootstrap` (session): the broker `METERLINE_KAFKA_BOOTSTRAP` names, else one this
  fixture starts with meterline's own local-Kafka code on a free port and stops at the end.
- `topic_prefix`: a unique prefix per test, so tests never see each other's messages.
- `chdb_client`: a clickhouse-connect client on a fresh chDB path (one per test).
- `clickhouse_server_dsn` (session): a ClickHouse server via testcontainers, skipped with the
  reason where no Docker engine answers.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Like clickhouse-connect's suite: every test sees UTC unless it asks otherwise.
os.environ["TZ"] = "UTC"

REPO_ROOT = Path(__file__).resolve().parents[1]


def _jar_cache_dir() -> Path:
    """Jars are shared by every broker the tests start, so Maven runs once per machine."""
    from meterline.settings import default_data_dir

    return Path(os.environ.get("METERLINE_TEST_KAFKA_CACHE", default_data_dir() / "cache" / "kafka"))


@pytest.fixture(scope="session")
def kafka_jar_cache() -> Path:
    return _jar_cache_dir()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    named = os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    from meterline.services.kafka_local import LocalKafka, find_free_port

    broker = LocalKafka(
        data_dir=tmp_path_factory.mktemp("kafka"),
        cache_dir=_jar_cache_dir(),
        port=find_free_port(),
        heap="512m",
    )
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}."


@pytest.fixture
def chdb_path(tmp_path: Path) -> Path:
    return tmp_path / "clickhouse"


@pytest.fixture
def chdb_dsn(chdb_path: Path) -> str:
    chdb_path.mkdir(parents=True, exist_ok=True)
    return f"chdb://{chdb_path}"


@pytest.fixture
def chdb_client(chdb_dsn: str):
    """A fresh embedded ClickHouse. chDB opens one path per process at a time: closed after."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=chdb_dsn)
    try:
        yield client
    finally:
        client.close()


def _docker_answers() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "the docker client is not installed"
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no engine
        return False, f"no Docker engine answers ({type(exc).__name__})"
    return True, ""


@pytest.fixture(scope="session")
def clickhouse_server_dsn() -> Iterator[str]:
    ok, why = _docker_answers()
    if not ok:
        pytest.skip(f"ClickHouse server tests need Docker for testcontainers: {why}")
    from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:25.8", port=8123) as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8123)
        yield f"http://{container.username}:{container.password}@{host}:{port}/{container.dbname}"


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running: a leaked worker hurts 2 cores."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked running threads: {still}"
