"""Helpers of bench/e2e.py: the machine, CPU accounting from /proc, a Slack double, the worker.

Kept apart so e2e.py reads as the benchmark's steps. Loopback only; nothing here is imported by
the package.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console

from meterline.services.kafka_local import LocalKafka, find_free_port
from meterline.settings import Settings, default_data_dir

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the machine --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and Python of this machine."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = 0.0
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            kib = next(int(line.split()[1]) for line in info if line.startswith("MemTotal:"))
            memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (need not be sorted); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-len(ordered) * fraction // 1))))
    return ordered[rank - 1]


# -- CPU from /proc ----------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sidecar_pid(worker_pid: int) -> int | None:
    """The worker's child process running the sink and the dispatcher (stream.processes = 2)."""
    children: list[int] = []
    for path in Path(f"/proc/{worker_pid}/task").glob("*/children"):
        try:
            children += [int(pid) for pid in path.read_text().split()]
        except OSError:
            continue
    for pid in children:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def thread_cpu_seconds(pid: int) -> Counter[str]:
    """CPU seconds of a process's threads, summed by thread name (Python threads say `python`)."""
    totals: Counter[str] = Counter()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return totals
    for task in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        totals[name] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


JIT_THREAD_PREFIXES = ("C1 CompilerThre", "C2 CompilerThre")
"""HotSpot's JIT compiler threads as /proc names them (15 characters): a freshly started broker
spends seconds of CPU in them while its hot paths compile, CPU the pipeline beside it lacks."""


def jit_cpu_seconds(pid: int) -> float:
    """CPU seconds a JVM's JIT compiler threads have used so far; 0 for a process without them."""
    return sum(seconds for name, seconds in thread_cpu_seconds(pid).items() if name.startswith(JIT_THREAD_PREFIXES))


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU used by named processes, by the worker's threads and by the machine over a window."""

    pids: dict[str, int]
    worker_pid: int
    broker_pid: int | None = None
    """The broker's JVM when the bench started it: its JIT compiling is reported apart."""
    started: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    threads_before: Counter[str] = field(default_factory=Counter)
    machine_before: tuple[float, float] = (0.0, 0.0)
    jit_before: float = 0.0

    def start(self) -> CpuWindow:
        self.started = time.monotonic()
        self.before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.threads_before = thread_cpu_seconds(self.worker_pid)
        self.machine_before = machine_busy_seconds()
        self.jit_before = jit_cpu_seconds(self.broker_pid) if self.broker_pid else 0.0
        return self

    def stop(self) -> dict[str, Any]:
        """Percent of one core per process and per worker thread name; machine busy percent."""
        wall = max(1e-9, time.monotonic() - self.started)
        processes = {
            name: round(100 * (process_cpu_seconds(pid) - self.before[name]) / wall, 1)
            for name, pid in self.pids.items()
        }
        threads = thread_cpu_seconds(self.worker_pid)
        threads.subtract(self.threads_before)
        top = {name: round(100 * seconds / wall, 1) for name, seconds in threads.most_common(6) if seconds > 0}
        busy, total = machine_busy_seconds()
        machine_busy = 100 * (busy - self.machine_before[0]) / max(1e-9, total - self.machine_before[1])
        usage: dict[str, Any] = {
            "seconds": round(wall, 1),
            "percent_of_one_core": processes,
            "worker_threads_percent_of_one_core": top,
            "machine_busy_percent_of_all_cores": round(machine_busy, 1),
        }
        if self.broker_pid:
            jit = jit_cpu_seconds(self.broker_pid) - self.jit_before
            usage["broker_jit_percent_of_one_core"] = round(100 * jit / wall, 1)
        return usage


# -- a Slack double ---------------------------------------------------------------------------
class SlackDouble:
    """A loopback HTTP server answering chat.postMessage like Slack; it notes the wall time each
    alert id (from the message metadata) was received."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        """alert_id -> wall time (time.time()) its first chat.postMessage arrived."""
        self.posts = 0
        self.digests = 0
        self._lock = threading.Lock()
        self._ts = time.time()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-double", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/api/"

    def start(self) -> SlackDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, args: dict[str, Any], at: float) -> dict[str, Any]:
        metadata = args.get("metadata") or {}
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        ids = (metadata.get("event_payload") or {}).get("alert_ids") or []
        channel = "C" + "".join(ch for ch in str(args.get("channel", "")).upper() if ch.isalnum())[:20]
        with self._lock:
            self.posts += 1
            self.digests += len(ids) > 1
            for alert_id in ids:
                self.received.setdefault(alert_id, at)
            self._ts = max(self._ts + 0.0001, at)
            return {"ok": True, "channel": channel, "ts": f"{self._ts:.6f}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                at = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = json.loads(raw or b"{}")
                else:
                    args = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                if method == "chat.postMessage":
                    body = double._record(args, at)
                elif method == "conversations.list":
                    body = {"ok": True, "channels": [], "response_metadata": {"next_cursor": ""}}
                elif method == "conversations.history":
                    body = {"ok": True, "messages": [], "has_more": False}
                else:
                    body = {"ok": False, "error": "unknown_method"}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST  # noqa: N815 - http.server's handler name

        return Handler


# -- the worker -------------------------------------------------------------------------------
class Worker:
    """`meterline worker` (stream + sink + alerts on embedded chDB) in a subprocess."""

    def __init__(self, folder: Path, env: dict[str, str], profile: Path | None = None) -> None:
        self.folder = folder
        self.profile = profile
        self.port = find_free_port()
        self.log_path = folder / "worker.log"
        self.env = {**os.environ, **env, "METERLINE_STREAM__WEB_PORT": str(self.port)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> Worker:
        python = [sys.executable] + (["-m", "cProfile", "-o", str(self.profile)] if self.profile else [])
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*python, "-m", "meterline.cli", "worker", "--log-level", "warning"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the worker was not healthy within {timeout:.0f} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def sql_rows(self, sql: str) -> list[list[str]]:
        """Rows of a read-only query through the worker's /sql endpoint (CSV, header dropped)."""
        status, body = self.get("/sql?" + urllib.parse.urlencode({"q": sql, "format": "csv"}))
        if status != 200:
            raise RuntimeError(f"/sql answered {status}: {body.decode(errors='replace').strip()}")
        return [line.split(",") for line in body.decode().splitlines()[1:]]

    def count(self, where: str) -> int:
        return int(self.sql_rows(f"SELECT count() FROM usage_events WHERE {where}")[0][0])

    def metrics(self) -> dict[str, float]:
        """The worker's /metrics as {name: value} (labelled series keep their labels)."""
        _, body = self.get("/metrics")
        values: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_broker(stack: ExitStack, folder: Path, console: Console) -> tuple[str, int | None]:
    """A LocalKafka on a free port for one bench run (jars from the shared cache), stopped by `stack`."""
    settings = Settings()
    cache = settings.local_kafka.cache_dir or default_data_dir() / "cache" / "kafka"
    broker = LocalKafka(data_dir=folder / "kafka", cache_dir=cache, port=find_free_port(), heap="512m")
    with console.status(f"starting a Kafka broker on {broker.bootstrap} (jars from {cache})"):
        broker.start()
    stack.callback(broker.stop)
    return broker.bootstrap, int(broker.pid_file.read_text())
