"""deliver_inline: a callback that finishes in its first step runs inline; one that suspends
is finished by the returned coroutine exactly as a task would finish it."""

from __future__ import annotations

import asyncio

import pytest

from meterline.stream.fast_drain import FastDrainConsumer, deliver_inline, fast_drain_app_class


def test_a_callback_that_does_not_suspend_runs_inline() -> None:
    delivered: list[int] = []

    async def callback(n: int) -> None:
        lock = asyncio.Lock()  # an uncontended lock and a queue with room do not suspend
        async with lock:
            delivered.append(n)

    async def main() -> None:
        for n in range(3):
            assert deliver_inline(callback(n)) is None
        assert delivered == [0, 1, 2]

    asyncio.run(main())


def test_a_callback_that_suspends_is_finished_by_the_rest() -> None:
    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        await queue.put(0)  # full: the next put suspends
        steps: list[str] = []

        async def callback() -> str:
            steps.append("started")
            await queue.put(1)
            await asyncio.sleep(0)  # a bare yield on the way
            steps.append("delivered")
            return "done"

        rest = deliver_inline(callback())
        assert rest is not None and steps == ["started"]
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0.01)
        assert not task.done()
        assert await queue.get() == 0
        assert await task == "done"
        assert steps == ["started", "delivered"] and await queue.get() == 1

    asyncio.run(main())


def test_exceptions_propagate_before_and_after_a_suspension() -> None:
    async def fails_at_once() -> None:
        raise ValueError("first step")

    async def fails_later(future: asyncio.Future[None]) -> None:
        await future
        raise KeyError("after")

    async def main() -> None:
        with pytest.raises(ValueError, match="first step"):
            deliver_inline(fails_at_once())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rest = deliver_inline(fails_later(future))
        assert rest is not None
        task = asyncio.ensure_future(rest)
        future.set_result(None)
        with pytest.raises(KeyError):
            await task
        # A future that fails raises inside the callback, where it can be handled.
        failing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def handles(f: asyncio.Future[None]) -> str:
            try:
                await f
            except RuntimeError:
                return "handled"
            return "not reached"

        rest = deliver_inline(handles(failing))
        assert rest is not None
        task = asyncio.ensure_future(rest)
        failing.set_exception(RuntimeError("broker"))
        assert await task == "handled"

    asyncio.run(main())


def test_cancelling_the_rest_cancels_the_callback_inside() -> None:
    async def main() -> None:
        cleaned: list[bool] = []
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def blocked() -> None:
            try:
                await never
            finally:
                cleaned.append(True)

        rest = deliver_inline(blocked())
        assert rest is not None
        task = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True] and never.cancelled()

    asyncio.run(main())


def test_the_app_class_makes_fast_drain_consumers() -> None:
    app = fast_drain_app_class()("test-fast-drain", broker="kafka://127.0.0.1:1")
    assert app.transport.Consumer is FastDrainConsumer
