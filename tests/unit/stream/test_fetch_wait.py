"""The worker's faust consumer gets our fetch_max_wait_ms instead of faust's hard-coded 1,500 ms."""

from __future__ import annotations

import asyncio

from meterline.settings import load_settings
from meterline.stream.app import StreamApp


def fetch_wait_of_a_new_worker_consumer(**stream: object) -> int:
    async def build() -> int:
        app = StreamApp(load_settings(topic_prefix="unit.", stream=stream)).app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: releases its client

    return asyncio.run(build())


def test_the_setting_replaces_fausts_1500_ms() -> None:
    assert fetch_wait_of_a_new_worker_consumer() == 100
    assert fetch_wait_of_a_new_worker_consumer(fetch_max_wait_ms=40) == 40  # installed twice: the last wins
