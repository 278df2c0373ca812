"""Deliver alerts to one destination: its own queue, rate limit, digests, retries, and records.

Each destination (e.g. slack:#team-costs) has one DestinationWorker task, so a slow or failing
destination never holds up another. The steps for a message, in order:

1. record `sending` (attempt n) in alert_deliveries,
2. send,
3. record `sent` with the external id, or `failed` with the reason (permanent, or past the
   deadline); after a retryable failure that surely did not deliver, record `sending` with a
   "not sent: ..." reason, wait the backoff (or Retry-After) and go to 1,
4. tell the dispatcher (which may then commit the Kafka offset).

Rows left `sending` by a crash are resolved before anything else is sent to the destination;
see meterline.alerts.dispatcher for what happens then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meterline.alerts.channel import Channel
from meterline.alerts.destinations import Destination
from meterline.alerts.errors import AlertConfigError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.ratelimit import TokenBucket, plan_send
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.store import NOT_SENT_PREFIX, AsyncDeliveryLog, DeliveryRecord, DeliveryStatus, delivery_record
from meterline.alerts.view import AlertView, alert_view
from meterline.messages import AlertEvent
from meterline.settings import AlertSettings

log = logging.getLogger(__name__)
# Slack's clock and ours may differ: search history from a little before our 'sending' row.
HISTORY_SKEW = timedelta(minutes=10)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Outcome:
    """How a send ended."""

    sent: bool
    attempts: int
    external_id: str = ""
    reason: str = ""
    stopped: bool = False
    """The dispatcher is stopping: no outcome to record, the alert is redelivered after restart."""


async def send_with_retries(
    channel: Channel,
    destination: Destination,
    views: list[AlertView],
    policy: RetryPolicy,
    clock: Clock,
    *,
    before_attempt: Callable[[int], Awaitable[None]] | None = None,
    after_refusal: Callable[[int, DeliveryError], Awaitable[None]] | None = None,
    stopping: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Outcome:
    """Send until it works, a permanent error, or the deadline; never raises DeliveryError."""
    start, attempt = clock(), 0
    while True:
        if stopping():
            return Outcome(False, attempt, reason="stopped", stopped=True)
        attempt += 1
        if before_attempt is not None:
            await before_attempt(attempt)
        try:
            external_id = await channel.send(destination, views)
        except DeliveryError as exc:
            error: DeliveryError = exc
        except Exception as exc:  # a bug must not kill the destination's task
            log.exception("unexpected error sending to %s", destination.label)
            error = PermanentDeliveryError(destination.channel, f"unexpected {type(exc).__name__}: {exc}")
        else:
            return Outcome(True, attempt, external_id=external_id)
        delay = policy.next_delay(error, attempt, clock() - start)
        if delay is None:
            gave_up = " (retry deadline reached)" if error.retryable else ""
            return Outcome(False, attempt, reason=error.reason + gave_up)
        log.warning("%s: attempt %d failed (%s); retrying in %.2fs", destination.label, attempt, error.reason, delay)
        if after_refusal is not None and isinstance(error, TransientDeliveryError) and not error.maybe_sent:
            await after_refusal(attempt, error)
        await sleep(delay)


@dataclass
class Job:
    """One alert for one destination, and who to tell when its outcome is recorded."""

    alert: AlertEvent
    destination: Destination
    leftover: DeliveryRecord | None = None
    """A `sending` row an earlier run left behind, until resolved."""
    prior_attempts: int = 0
    on_done: list[Callable[[str], None]] = field(default_factory=list)

    def done(self, status: str) -> None:
        for callback in self.on_done:
            callback(status)


class DestinationWorker:
    """The task that owns one destination."""

    def __init__(
        self,
        destination: Destination,
        channel: Channel,
        store: AsyncDeliveryLog,
        alerts: AlertSettings,
        policy: RetryPolicy,
        now: Callable[[], datetime],
        stats: dict[str, int],
        clock: Clock,
    ) -> None:
        self.destination = destination
        self._channel = channel
        self._store = store
        self._alerts = alerts
        self._policy = policy
        self._now = now
        self._stats = stats
        self._clock = clock
        self._bucket = TokenBucket(alerts.rate_limit_per_minute, clock())
        self._pending: list[Job] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()

    def stop_soon(self) -> None:
        """Finish the attempt under way (and record it), then start nothing new."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the dispatcher stops."""
        try:
            await asyncio.wait_for(self._stopped.wait(), seconds)
        except TimeoutError:
            pass

    def submit(self, job: Job) -> None:
        self._pending.append(job)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._stopping:
                await self._resolve_leftovers()
                if not self._pending or self._stopping:
                    break
                wait = self._bucket.wait_time(self._clock())
                if wait > 0:
                    # Alerts arriving meanwhile join the pending list and may become a digest.
                    await self._sleep(wait)
                    continue
                plan = plan_send(self._pending, self._alerts.digest_after)
                del self._pending[: len(plan.items)]
                self._bucket.take(self._clock())
                await self._deliver(list(plan.items))

    async def _resolve_leftovers(self) -> None:
        """Decide, for rows a crash left `sending`, whether the message already went out."""
        for job in [j for j in self._pending if j.leftover is not None]:
            prior = job.leftover
            assert prior is not None
            job.leftover, job.prior_attempts = None, prior.attempts
            if prior.known_not_sent:
                continue
            lookup = await self._channel.lookup(self.destination, job.alert.alert_id, prior.recorded_at - HISTORY_SKEW)
            if lookup.answer == "not_sent":
                continue
            if lookup.answer == "sent":
                self._stats["confirmed_after_restart"] += 1
                await self._finish([job], "sent", prior.attempts, "confirmed after restart", lookup.external_id)
            elif self._alerts.resend_unconfirmed:
                log.warning(
                    "%s: re-sending %s, outcome unknown (%s)", self.destination.label, job.alert.alert_id, lookup.why
                )
                continue
            else:
                reason = (
                    f"outcome unknown after a restart ({lookup.why}); not re-sent because "
                    "alerts.resend_unconfirmed is false"
                )
                log.error("%s: %s: %s", self.destination.label, job.alert.alert_id, reason)
                await self._finish([job], "failed", prior.attempts, reason)
            self._pending.remove(job)

    async def _deliver(self, jobs: list[Job]) -> None:
        previous = max(job.prior_attempts for job in jobs)
        digest = f" (digest of {len(jobs)})" if len(jobs) > 1 else ""
        try:
            views = [alert_view(job.alert, self._now(), self._alerts.dashboard_url) for job in jobs]
        except AlertConfigError as exc:
            await self._finish(jobs, "failed", previous, str(exc))
            return

        async def before_attempt(attempt: int) -> None:
            if attempt > 1:
                self._stats["retries"] += 1
            await self._record(jobs, "sending", previous + attempt, f"attempt {previous + attempt}{digest}")

        async def after_refusal(attempt: int, error: DeliveryError) -> None:
            await self._record(jobs, "sending", previous + attempt, f"{NOT_SENT_PREFIX}{error.reason}")

        outcome = await send_with_retries(
            self._channel,
            self.destination,
            views,
            self._policy,
            self._clock,
            before_attempt=before_attempt,
            after_refusal=after_refusal,
            stopping=lambda: self._stopping,
            sleep=self._sleep,
        )
        if outcome.stopped:
            return
        if outcome.sent:
            if digest:
                self._stats["digests"] += 1
            await self._finish(jobs, "sent", previous + outcome.attempts, digest.strip(" ()"), outcome.external_id)
        else:
            log.error(
                "%s: giving up on %s: %s", self.destination.label, [j.alert.alert_id for j in jobs], outcome.reason
            )
            await self._finish(jobs, "failed", previous + outcome.attempts, outcome.reason)

    async def _record(
        self, jobs: list[Job], status: DeliveryStatus, attempts: int, reason: str, external_id: str = ""
    ) -> None:
        now = self._now()
        await self._store.write(
            [
                delivery_record(
                    job.alert, self.destination, status, now, attempts=attempts, reason=reason, external_id=external_id
                )
                for job in jobs
            ]
        )

    async def _finish(
        self, jobs: list[Job], status: DeliveryStatus, attempts: int, reason: str, external_id: str = ""
    ) -> None:
        await self._record(jobs, status, attempts, reason, external_id)
        self._stats[status] += len(jobs)
        for job in jobs:
            job.done(status)
