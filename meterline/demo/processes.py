"""What the demo runs beside itself: the broker (when none answers), the mail capture, the worker.

Each runs in its own session (Ctrl-C in the terminal reaches only the demo, which then stops
them in order) and is recorded in `<data-dir>/demo-state.json`, so `meterline demo stop` can
stop exactly those pids later.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from meterline.errors import MeterlineError
from meterline.services.kafka_local import find_free_port, port_is_open

WORKER_READY_TIMEOUT_S = 180.0
MAIL_READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 60.0


class DemoError(MeterlineError):
    """The demo could not start or finish; the message says what to do."""


@dataclass(frozen=True)
class DemoPaths:
    """Where one demo keeps its files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "meterline.toml"

    @property
    def state(self) -> Path:
        return self.root / "demo-state.json"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def clickhouse(self) -> Path:
        return self.root / "clickhouse"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def worker_log(self) -> Path:
        return self.root / "worker.log"

    @property
    def mail_log(self) -> Path:
        return self.root / "mailcapture.log"

    @property
    def report(self) -> Path:
        return self.root / "report.json"


@dataclass
class DemoState:
    """The processes a demo started (pids), saved as JSON for `meterline demo stop`."""

    worker_pid: int | None = None
    mailcapture_pid: int | None = None
    broker_started: bool = False
    kafka_port: int | None = None

    def save(self, paths: DemoPaths) -> None:
        paths.state.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, paths: DemoPaths) -> DemoState | None:
        try:
            return cls(**json.loads(paths.state.read_text()))
        except (OSError, ValueError, TypeError):
            return None


WORKER_MARK = b"meterline.cli\x00worker"
MAIL_MARK = b"meterline.demo.mailcapture"


def pid_runs(pid: int | None, mark: bytes) -> bool:
    """True if `pid` is alive and its command line holds `mark` (never a recycled pid)."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return mark in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_pid(pid: int | None, mark: bytes, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process (SIGKILL after `timeout`); True if one was running."""
    if not pid_runs(pid, mark):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_runs(pid, mark):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        _reap(pid)
        time.sleep(0.1)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def port_or_free(preferred: int) -> int:
    return preferred if not port_is_open(preferred) else find_free_port()


def loopback_port(bootstrap: str) -> int | None:
    """The port of a single loopback bootstrap server, else None (a remote cluster)."""
    servers = [server.strip() for server in bootstrap.split(",")]
    if len(servers) != 1:
        return None
    host, _, port = servers[0].rpartition(":")
    return int(port) if host in {"127.0.0.1", "localhost"} else None


def start_mailcapture(paths: DemoPaths, port: int) -> subprocess.Popen[bytes]:
    """Start the SMTP capture process and wait until its port answers."""
    with paths.mail_log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterline.demo.mailcapture", "--port", str(port), "--dir", str(paths.mail)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + MAIL_READY_TIMEOUT_S
    while not port_is_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_child(proc)
            raise DemoError(
                f"the SMTP capture did not start on 127.0.0.1:{port}; see {paths.mail_log}:\n{tail(paths.mail_log)}"
            )
        time.sleep(0.1)
    return proc


def worker_env(paths: DemoPaths) -> dict[str, str]:
    """The worker reads the demo's meterline.toml and data folder, and nothing else: the toml
    already holds what the demo chose from the caller's settings (METERLINE_* included)."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("METERLINE_")}
    return {
        **inherited,
        "METERLINE_CONFIG": str(paths.config),
        "METERLINE_DATA_DIR": str(paths.root),
        "PYTHONUNBUFFERED": "1",
    }


def start_worker(paths: DemoPaths) -> subprocess.Popen[bytes]:
    """Start `meterline worker` (stream + sink + alerts) with its output in worker.log."""
    with paths.worker_log.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=paths.root,
            env=worker_env(paths),
            start_new_session=True,
        )


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = WORKER_READY_TIMEOUT_S
) -> None:
    """Wait until the worker's /healthz answers 200; DemoError with its log if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(
                f"the worker exited with code {proc.returncode} while starting; see {log_path}:\n{tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise DemoError(
        f"the worker did not become healthy at {url} within {timeout:.0f} s; see {log_path}:\n{tail(log_path)}"
    )


def stop_child(proc: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM a process this demo started, wait, SIGKILL if it hangs; its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode
