"""faust's fetch loop without four tasks and an asyncio.wait per message.

faust's `Consumer._drain_messages` hands every fetched message to the stream with
`await wait_first(callback(message), suspend_flow.wait())`: a task for the callback, three
more for the flow, stop and crash events, and an `asyncio.wait` over them. That is there for
the rare callback that blocks (the stream's buffer is full) while a rebalance suspends the
flow: the wait then ends without it. A py-spy profile of the worker put it at 23 % of the
CPU; the callback itself almost always finishes without suspending.

`FastDrainConsumer` runs the callback's first step inline. When it finishes there (the
common case), the message is delivered exactly as before, without the tasks. When it
suspends, the started callback is handed to the same `wait_first` as faust's, so a blocked
delivery behaves as it always did. The rest of the loop is faust-streaming 0.15.3's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from mode import Service, ServiceT


class _Started:
    """Awaitable that finishes a coroutine already stepped once, which yielded `pending`.

    It does for the rest of the coroutine what an asyncio Task does: hands each yielded
    future to the task awaiting it, resumes the coroutine when it is done, and passes
    exceptions (cancellation included) into it.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task: pass it on
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Started(coro, pending)


def deliver_inline(coro: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any] | None:
    """Run `coro` up to its first suspension: None if it finished there, else a coroutine
    that finishes it (await it, or give it to a task). Its exceptions propagate."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    return _finish(coro, pending)


class FastDrainConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer with the inline delivery above."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - faust's loop
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # The change from faust: deliver inline; only a delivery that
                            # suspends goes through wait_first (and its tasks).
                            rest = deliver_inline(callback(message))
                            if rest is not None:
                                await self.wait_first(rest, self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


def fast_drain_app_class() -> type:
    """faust.App whose transport creates FastDrainConsumer consumers."""
    import faust

    class FastDrainApp(faust.App):  # type: ignore[misc]
        def _new_transport(self) -> Any:
            transport = super()._new_transport()
            transport.Consumer = FastDrainConsumer
            return transport

    return FastDrainApp
