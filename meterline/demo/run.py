"""The demo's orchestrator: config, broker, mail capture, worker, traffic, report, stop.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.live import Live

from meterline.cli_support import print_error
from meterline.demo import queries
from meterline.demo.config import DemoConfig, plan_budgets, render_config
from meterline.demo.display import ConsoleAlertTail, LiveState, render
from meterline.demo.plan import TrafficPlan, spend_by_team
from meterline.demo.processes import (
    MAIL_MARK,
    WORKER_MARK,
    DemoError,
    DemoPaths,
    DemoState,
    loopback_port,
    pid_runs,
    port_or_free,
    start_mailcapture,
    start_worker,
    stop_child,
    stop_pid,
    tail,
    wait_healthy,
)
from meterline.demo.report import DemoReport, print_report, read_report
from meterline.services.kafka_local import LocalKafka, port_is_open
from meterline.settings import Settings, load_settings

POLL_EVERY_S = 2.0
PLAN_SAMPLE = 20_000
STORE_TIMEOUT_S = 120.0
SETTLE_QUIET_S = 4.0
SETTLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DemoOptions:
    duration: float = 60.0
    rate: float = 200.0
    teams: int = 5
    seed: int = 1
    keep: bool = False
    data_dir: Path = Path(".meterline-demo")


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C does (clean stop of what it started)."""

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def prepare_data_dir(paths: DemoPaths) -> None:
    """Refuse to run over a live demo; clear what a previous run left (fresh ClickHouse, mail)."""
    state = DemoState.load(paths)
    if state is not None and (pid_runs(state.worker_pid, WORKER_MARK) or pid_runs(state.mailcapture_pid, MAIL_MARK)):
        raise DemoError(
            f"a demo still runs in {paths.root} (worker pid {state.worker_pid}); stop it with "
            f"`meterline demo stop --data-dir {paths.root}` or choose another --data-dir"
        )
    paths.root.mkdir(parents=True, exist_ok=True)
    for folder in (paths.clickhouse, paths.mail, paths.spool, paths.root / "stream"):
        shutil.rmtree(folder, ignore_errors=True)
    for file in (paths.worker_log, paths.mail_log, paths.report, paths.state):
        file.unlink(missing_ok=True)


class Demo:
    """One run of the demo; `run()` returns the exit code."""

    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.paths = DemoPaths(options.data_dir.resolve())
        self.state = DemoState()
        self.worker: subprocess.Popen[bytes] | None = None
        self.mailcapture: subprocess.Popen[bytes] | None = None
        self.broker: LocalKafka | None = None
        self.demo_settings: Settings | None = None

    # -- steps ----------------------------------------------------------------------
    def _ensure_broker(self) -> None:
        """Reuse the broker the settings name; start one on its loopback port if none answers."""
        from meterline.services.kafka_local import LocalKafka

        settings = self._settings()
        port = loopback_port(settings.kafka_bootstrap)
        if port is None or port_is_open(port):
            from meterline.services.kafka_local import broker_version

            try:
                version = broker_version(settings.kafka_bootstrap)
            except Exception as exc:  # any failure means: not a broker we can use
                raise DemoError(
                    f"Kafka at {settings.kafka_bootstrap} does not answer ({type(exc).__name__}: {exc}). Start it, "
                    "point METERLINE_KAFKA_BOOTSTRAP at a broker that answers, or give a free loopback port "
                    "(e.g. METERLINE_KAFKA_BOOTSTRAP=127.0.0.1:19092) and the demo starts a broker there."
                ) from exc
            self.console.print(
                f"kafka: using the broker at {settings.kafka_bootstrap} (Kafka {version})", highlight=False
            )
            return
        broker = LocalKafka.from_settings(settings, port)  # data under <data-dir>/kafka, jars in the user's cache
        shutil.rmtree(broker.data_dir, ignore_errors=True)  # a fresh broker for a fresh demo
        with self.console.status(
            f"starting Apache Kafka {broker.kafka_version} on {broker.bootstrap} (first time: jars from Maven Central) …"
        ):
            broker.start()
        self.broker = broker
        self.state.broker_started, self.state.kafka_port = True, port
        self.state.save(self.paths)
        self.console.print(f"kafka: started {broker.bootstrap} (data in {broker.data_dir})", highlight=False)

    def _write_config(self, bootstrap: str) -> TrafficPlan:
        from meterline.pricing import PriceCatalog

        options = self.options
        draft = TrafficPlan(
            options.seed, options.teams, datetime.now(UTC), options.rate, int(options.rate * options.duration)
        )
        catalog = PriceCatalog.load(self.settings.pricing)
        # Price at most PLAN_SAMPLE events and scale: limits need the size of the spend, not every cent.
        sample = min(draft.count, PLAN_SAMPLE)
        scale = Decimal(draft.count) / Decimal(max(sample, 1))
        spend = {
            team: amount * scale for team, amount in spend_by_team(islice(draft.events(), sample), catalog).items()
        }
        for team in (f"team-{i:02d}" for i in range(1, options.teams + 1)):
            spend.setdefault(team, Decimal(0))
        prefix = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}."
        config = DemoConfig(
            data_dir=self.paths.root,
            kafka_bootstrap=bootstrap,
            topic_prefix=prefix,
            web_port=port_or_free(self.settings.stream.web_port),
            smtp_port=port_or_free(self.settings.alerts.smtp_port),
            kafka_cache_dir=self.settings.local_kafka.cache_dir or self.settings.data_dir / "cache" / "kafka",
            budgets=plan_budgets(spend),
        )
        self.paths.config.write_text(render_config(config))
        # The same values the worker reads from the toml, whatever METERLINE_* says here.
        self.demo_settings = load_settings(
            self.paths.config,
            data_dir=self.paths.root,
            kafka_bootstrap=bootstrap,
            topic_prefix=prefix,
            stream={"web_host": "127.0.0.1", "web_port": config.web_port},
            alerts={"smtp_host": "127.0.0.1", "smtp_port": config.smtp_port},
        )
        self.console.print(
            f"config: {self.paths.config} ({len(config.budgets)} budgets, topic prefix {self.demo_settings.topic_prefix})",
            highlight=False,
        )
        return draft

    def _start_services(self) -> None:
        settings = self._settings()
        self.mailcapture = start_mailcapture(self.paths, settings.alerts.smtp_port)
        self.state.mailcapture_pid = self.mailcapture.pid
        self.state.save(self.paths)
        self.console.print(
            f"mail: capturing SMTP on 127.0.0.1:{settings.alerts.smtp_port} into {self.paths.mail}", highlight=False
        )
        self.worker = start_worker(self.paths)
        self.state.worker_pid = self.worker.pid
        self.state.save(self.paths)
        url = f"http://{settings.stream.web_host}:{settings.stream.web_port}"
        with self.console.status(
            f"starting the worker (stream + ClickHouse sink + alerts), log {self.paths.worker_log} …"
        ):
            wait_healthy(self.worker, f"{url}/healthz", self.paths.worker_log)
        self.console.print(f"worker: healthy at {url} (pid {self.worker.pid}); dashboard at {url}/", highlight=False)

    def _check_worker(self) -> None:
        """DemoError with the log's tail when the worker has exited."""
        if self.worker is not None and self.worker.poll() is not None:
            raise DemoError(
                f"the worker exited with code {self.worker.returncode}; see {self.paths.worker_log}:\n{tail(self.paths.worker_log)}"
            )

    def _settings(self) -> Settings:
        assert self.demo_settings is not None
        return self.demo_settings

    def _poll(self, state: LiveState, tail: ConsoleAlertTail) -> None:
        settings = self._settings()
        try:
            state.stored = queries.count(queries.select(settings, queries.STORED_EVENTS)[0]["stored"])
            state.budgets = queries.select(settings, queries.BUDGETS)
            state.deliveries = queries.select(settings, queries.DELIVERIES)
            state.last_error = None
        except Exception as exc:  # noqa: BLE001 - the display shows it and keeps going
            state.last_error = str(exc).splitlines()[0][:160]
        state.emails = len(list(self.paths.mail.glob("*.eml")))
        state.console_alerts = list(tail.poll())

    def _drive_traffic(self, state: LiveState, tail: ConsoleAlertTail) -> tuple[TrafficPlan, int, int]:
        """Send the seeded events at --rate for --duration; the display follows ClickHouse."""
        from meterline.producers import UsageProducer

        options = self.options
        plan = TrafficPlan(
            options.seed, options.teams, datetime.now(UTC), options.rate, int(options.rate * options.duration)
        )
        stop_polling = threading.Event()

        def poll_loop() -> None:
            while not stop_polling.is_set():
                self._poll(state, tail)
                stop_polling.wait(POLL_EVERY_S)

        poller = threading.Thread(target=poll_loop, name="demo-poller", daemon=True)
        seen: set[str] = set()
        sent = 0
        with Live(get_renderable=lambda: render(state), console=self.console, refresh_per_second=4, transient=False):
            poller.start()
            try:
                with UsageProducer.from_settings(self._settings()) as producer:
                    state.began = began = time.monotonic()
                    for event in islice(plan.events(), plan.count):
                        producer.emit(event)
                        sent += 1
                        seen.add(event.event_id)
                        ahead = sent / plan.rate - (time.monotonic() - began)
                        if ahead > 0.002:
                            time.sleep(ahead)
                        if sent % 64 == 0 or sent == plan.count:
                            state.record_sent(sent, len(seen))
                            self._check_worker()
                    state.record_sent(sent, len(seen))
                    state.phase = "waiting for Kafka's acknowledgements"
                    producer.flush(120)
                    state.spooled = producer.counters().spooled
                state.phase = "waiting for ClickHouse"
                self._wait_stored(len(seen))
                state.phase = "waiting for alerts to be delivered"
                self._settle()
                state.phase = "done"
                self._poll(state, tail)
            finally:
                stop_polling.set()
                poller.join(30)
        return plan, sent, len(seen)

    def _wait_stored(self, distinct: int) -> None:
        deadline = time.monotonic() + STORE_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_worker()
            try:
                if queries.count(queries.select(self._settings(), queries.STORED_EVENTS)[0]["stored"]) >= distinct:
                    return
            except Exception:  # noqa: BLE001 - retried until the deadline
                pass
            time.sleep(0.5)

    def _settle(self) -> None:
        """Wait until budgets and alert deliveries stop changing and nothing is being sent."""
        settings = self._settings()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        last: object = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            self._check_worker()
            try:
                snapshot = (queries.select(settings, queries.BUDGETS), queries.select(settings, queries.DELIVERIES))
            except Exception:  # noqa: BLE001 - retried until the deadline
                snapshot = None
            sending = snapshot is not None and any(queries.count(row["sending"]) for row in snapshot[1])
            if snapshot != last or sending:
                last, quiet_since = snapshot, time.monotonic()
            elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
                return
            time.sleep(0.5)

    def _report(self, plan: TrafficPlan, sent: int, distinct: int, tail: ConsoleAlertTail) -> DemoReport:
        traffic = {
            "seed": plan.seed,
            "teams": plan.teams,
            "start": plan.start.isoformat(),
            "rate": plan.rate,
            "count": sent,
        }
        report = read_report(
            self._settings(), sent=sent, distinct_sent=distinct, mail_dir=self.paths.mail, traffic=traffic
        )
        report.console_alert_lines = len(tail.poll())
        self.paths.report.write_text(report.to_json())
        print_report(report, self.console)
        return report

    def stop_all(self) -> None:
        """Stop what this run started: the worker first (it flushes), then mail, then the broker."""
        stop_child(self.worker)
        stop_child(self.mailcapture)
        if self.broker is not None:
            self.broker.stop()
        self.paths.state.unlink(missing_ok=True)

    def print_keep(self) -> None:
        config = self.paths.config
        self.console.rule("[bold]still running (--keep)")
        self.console.print(
            f"worker pid {self.state.worker_pid} (log {self.paths.worker_log}), mail capture pid "
            f"{self.state.mailcapture_pid} (mail in {self.paths.mail})"
            + (f", kafka pid file {self.paths.kafka / 'broker.pid'}" if self.state.broker_started else ""),
            highlight=False,
        )
        settings = self._settings()
        self.console.print(
            f"dashboard: http://{settings.stream.web_host}:{settings.stream.web_port}/ (open it in a browser)",
            highlight=False,
        )
        self.console.print("query it:", highlight=False)
        self.console.print(
            f'  meterline --config {config} sql "SELECT team, sum(cost_usd) FROM spend_per_team_day GROUP BY team"',
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        self.console.print(
            f'  meterline --config {config} sql "SELECT * FROM spend_vs_budget"',
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        self.console.print(
            f"  meterline --config {config} report --period {datetime.now(UTC):%Y-%m} --format md",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        self.console.print("send more traffic:", highlight=False)
        self.console.print(
            f"  meterline --config {config} loadgen --rate 200 --duration 30",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        self.console.print("stop everything:", highlight=False)
        self.console.print(
            f"  meterline demo stop --data-dir {self.paths.root}", highlight=False, markup=False, soft_wrap=True
        )

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> int:
        prepare_data_dir(self.paths)
        kept = False
        with _sigterm_interrupts():
            try:
                self._write_config(self.settings.kafka_bootstrap)
                self._ensure_broker()
                self._start_services()
                tail = ConsoleAlertTail(self.paths.worker_log)
                live = LiveState(duration=self.options.duration, rate=self.options.rate)
                plan, sent, distinct = self._drive_traffic(live, tail)
                report = self._report(plan, sent, distinct, tail)
                if self.options.keep:
                    self.print_keep()
                    kept = True
            except KeyboardInterrupt:
                self.console.print(
                    "[yellow]interrupted: stopping the worker, the mail capture and what else the demo started …"
                )
                return 130
            finally:
                if not kept:
                    self.stop_all()
        if not report.complete:
            print_error(
                f"ClickHouse holds {report.stored_distinct} of {report.distinct_sent} distinct events "
                f"after {STORE_TIMEOUT_S:.0f} s; see {self.paths.worker_log}",
                to=self.console,
            )
            return 1
        if not kept:
            self.console.print(
                f"stopped the worker and the mail capture{' and the broker' if self.broker else ''}; files stay in {self.paths.root}",
                highlight=False,
            )
        return 0


def _stop_broker(paths: DemoPaths, port: int) -> bool:
    from meterline.services.kafka_local import LocalKafka

    return LocalKafka.from_settings(load_settings(paths.config), port).stop()


def stop_demo(data_dir: Path, console: Console) -> bool:
    """Stop what a `--keep` demo left running in `data_dir`; False if nothing ran."""
    paths = DemoPaths(data_dir.resolve())
    state = DemoState.load(paths)
    if state is None:
        return False
    stopped = []
    if stop_pid(state.worker_pid, WORKER_MARK):
        stopped.append(f"worker (pid {state.worker_pid})")
    if stop_pid(state.mailcapture_pid, MAIL_MARK):
        stopped.append(f"mail capture (pid {state.mailcapture_pid})")
    if state.broker_started and state.kafka_port is not None and _stop_broker(paths, state.kafka_port):
        stopped.append(f"kafka (port {state.kafka_port})")
    paths.state.unlink(missing_ok=True)
    console.print("stopped " + (", ".join(stopped) if stopped else "nothing (it had already exited)"), highlight=False)
    return True
