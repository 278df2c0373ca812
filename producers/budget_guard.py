"""BudgetGuard: follow the compacted `budget.state` topic and stop spending past a hard limit.

    guard = BudgetGuard.from_settings(settings).start()
    guard.check("ml")         # raises BudgetExceededError when a hard-limited budget is exhausted
    guard.status("ml")        # the team's latest BudgetState per budget

The guard reads the topic from the beginning (compaction keeps the latest state per
`team/budget`) on a background thread with kafka-python, `read_committed`, so it only sees
states the stream committed.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from meterline.messages import BudgetState
from meterline.producers.errors import ProducerError

if TYPE_CHECKING:
    from meterline.settings import Settings

log = logging.getLogger(__name__)


class BudgetExceededError(ProducerError):
    """A hard-limited budget of the team is exhausted for its current period."""

    def __init__(self, team: str, budget: str, spend: Decimal, limit: Decimal, period: str) -> None:
        super().__init__(
            f"team {team!r} exhausted its hard-limited budget {budget!r} for {period}: "
            f"spent {spend} of {limit} USD; raise limit_usd in meterline.toml or wait for the next period"
        )
        self.team = team
        self.budget = budget
        self.spend = spend
        self.limit = limit
        self.period = period


class BudgetGuard:
    """Latest budget states of every team, kept current by a background consumer."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._now = now
        self._options = consumer_options or {}
        self._states: dict[tuple[str, str], BudgetState] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> BudgetGuard:
        return cls(settings.kafka_bootstrap, settings.topic("budget.state"), **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> BudgetGuard:
        """Start following the topic; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="meterline-budget-guard", daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until the states present at start were read (True), or `timeout` passed."""
        return self._ready.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> BudgetGuard:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the API applications call --------------------------------------------------------------
    def status(self, team: str) -> list[BudgetState]:
        """The team's latest state per budget (sorted by budget name)."""
        with self._lock:
            return sorted((s for (t, _), s in self._states.items() if t == team), key=lambda s: s.budget)

    def check(self, team: str) -> None:
        """Raise BudgetExceededError when a hard-limited budget of `team` is exhausted now."""
        now = self._now()
        for state in self.status(team):
            # A calendar period that has ended no longer binds: the next one starts at zero.
            if state.over_hard_limit and (state.period.startswith("rolling:") or state.period_end > now):
                raise BudgetExceededError(team, state.budget, state.spend_usd, state.limit_usd, state.period)

    # -- the thread -------------------------------------------------------------------------------
    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        team, _, budget = key.decode().partition("/")
        with self._lock:
            if value is None:
                self._states.pop((team, budget), None)
                return
            try:
                state = BudgetState.model_validate_json(value)
            except ValueError as exc:
                log.warning("ignoring an unreadable budget state for %s: %s", key, exc)
                return
            self._states[(state.team, state.budget)] = state

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="meterline-budget-guard",
            **self._options,
        )
        try:
            partitions = None
            while not self._stop.is_set() and not partitions:
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    self._stop.wait(0.5)  # the worker has not created the topic yet
            if self._stop.is_set() or not partitions:
                return
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self._apply(record.key, record.value)
                if not self._ready.is_set() and all(consumer.position(tp) >= end[tp] for tp in tps):
                    self._ready.set()
        except Exception as exc:  # keep it for callers, log it
            self.last_error = str(exc)
            log.exception("the budget guard stopped following %s", self.topic)
        finally:
            consumer.close()
