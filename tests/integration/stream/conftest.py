"""Fixtures for stream tests: a worker subprocess factory that always stops what it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.stream.harness import WorkerProcess


@pytest.fixture
def start_worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(toml: str = "", **kw: object) -> WorkerProcess:
        worker = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path, toml=toml, **kw)  # type: ignore[arg-type]  # the factory passes the test's keyword arguments through
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.stop()
