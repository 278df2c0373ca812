"""stream/faust_fence.py: the installed faust still has what it touches, and each fence works."""

from __future__ import annotations

import asyncio

from meterline.settings import load_settings
from meterline.stream.app import StreamApp


def fetch_wait_of_a_new_worker_consumer(**stream: object) -> int:
    async def build() -> int:
        app = StreamApp(load_settings(topic_prefix="unit.", stream=stream)).app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]  # ConsumerT does not declare the thread faust's Consumer has
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: releases its client

    return asyncio.run(build())


def test_the_setting_replaces_fausts_1500_ms() -> None:
    assert fetch_wait_of_a_new_worker_consumer() == 100
    assert fetch_wait_of_a_new_worker_consumer(fetch_max_wait_ms=40) == 40  # installed twice: the last wins


def test_the_installed_faust_still_has_every_internal_the_fence_touches() -> None:
    from importlib.metadata import version

    from meterline.stream.faust_fence import TESTED_FAUST_VERSION, missing_internals

    assert missing_internals() == []
    assert version("faust-streaming") == TESTED_FAUST_VERSION, "re-check stream/faust_fence.py against the new faust"


def test_a_disarmed_event_is_never_recorded_as_safe_to_commit() -> None:
    """faust's Consumer.ack records an offset only for a message not yet marked acked."""
    from faust.types import TP
    from faust.types.tuples import Message

    from meterline.stream.faust_fence import disarm

    class _Event:
        def __init__(self, message: Message) -> None:
            self.message = message

    message = Message("t", 0, 7, 0.0, 0, None, b"k", b"v", None)
    disarm([_Event(message)])  # type: ignore[list-item]  # a stand-in with the one attribute disarm reads
    assert message.acked
    assert message.tp == TP("t", 0)
