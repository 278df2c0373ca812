"""MeterlineCallback through LiteLLM's own completion path (mock responses, no network) into a
real Kafka broker: sync and async, success and failure, streaming, tokens by type, team, ids."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meterline.events import UsageEvent
from meterline.producers import UsageProducer
from tests.integration.producers.kafka_read import consume

# LiteLLM fetches its model price map from GitHub at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm", reason="litellm is not installed: pip install 'meterline[litellm]'")

from meterline.producers.litellm_callback import MeterlineCallback  # noqa: E402 - needs litellm, skipped above

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "How much did this cost?"}]


@pytest.fixture(scope="module", autouse=True)
def _litellm_logging_threads() -> None:
    """Start all of LiteLLM's process-wide logging threads up front (it runs sync callbacks on them
    and keeps them for the process's life), so the per-test thread-leak check sees only ours."""
    from litellm.litellm_core_utils.thread_pool_executor import MAX_THREADS, executor

    barrier = threading.Barrier(MAX_THREADS + 1)
    for _ in range(MAX_THREADS):
        executor.submit(barrier.wait, 30)
    barrier.wait(30)


@pytest.fixture
def callbacks() -> Any:
    saved = litellm.callbacks
    yield
    litellm.callbacks = saved


def wait_emitted(producer: UsageProducer, count: int, timeout: float = 30.0) -> None:
    """LiteLLM runs success callbacks on its own thread or task: wait for them (a bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while producer.counters().emitted < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{producer.counters().emitted} of {count} usage events emitted")
        time.sleep(0.05)


def detailed_response() -> Any:
    """A mock response whose usage has every token type (OpenAI shape, as LiteLLM normalises it)."""
    return litellm.ModelResponse(
        id="chatcmpl-detailed-1",
        model="claude-sonnet-4-5",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=1200,
            completion_tokens=300,
            total_tokens=1500,
            prompt_tokens_details={"cached_tokens": 800},
            completion_tokens_details={"reasoning_tokens": 120},
            cache_creation_input_tokens=100,
        ),
    )


def read_events(kafka_bootstrap: str, topic: str, expected: int) -> list[UsageEvent]:
    return [UsageEvent.from_json_bytes(r.value) for r in consume(kafka_bootstrap, topic, expected=expected)]


def test_sync_async_streaming_and_failed_calls_each_make_one_event(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, callbacks: Any
) -> None:
    topic = f"{topic_prefix}usage"
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        litellm.callbacks = [MeterlineCallback(producer)]
        done = litellm.completion(
            model="anthropic/claude-sonnet-4-5",
            messages=MESSAGES,
            mock_response=detailed_response(),
            metadata={"team": "search", "project": "qa"},
        )
        stream = litellm.completion(
            model="gpt-4o",
            messages=MESSAGES,
            mock_response="streamed answer in parts",
            stream=True,
            stream_options={"include_usage": True},
            metadata={"team": "search"},
        )
        chunks = list(stream)
        with pytest.raises(Exception, match="upstream down"):
            litellm.completion(
                model="gpt-4o", messages=MESSAGES, mock_response=Exception("upstream down"), metadata={"team": "ads"}
            )

        async def async_call() -> Any:
            answer = await litellm.acompletion(
                model="gpt-4o-mini", messages=MESSAGES, mock_response="hi", metadata={"team": "ads"}
            )
            deadline = time.monotonic() + 30
            while producer.counters().emitted < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the async callback runs as a task of this loop
            return answer

        async_answer = asyncio.run(async_call())
        wait_emitted(producer, 4)
        assert producer.flush(60)
    assert chunks and done.id == "chatcmpl-detailed-1"

    events = read_events(kafka_bootstrap, topic, expected=4)
    assert len(events) == 4  # one per call, nothing twice
    by_model = {e.model: e for e in events if e.status == "ok"}
    detailed = by_model["claude-sonnet-4-5"]
    assert (detailed.team, detailed.provider, detailed.project, detailed.request_id) == (
        "search",
        "anthropic",
        "qa",
        "chatcmpl-detailed-1",
    )
    assert (detailed.input_tokens, detailed.output_tokens) == (1200, 300)
    assert (detailed.cache_read_tokens, detailed.cache_write_tokens, detailed.reasoning_tokens) == (800, 100, 120)
    streamed = by_model["gpt-4o"]
    assert streamed.team == "search" and streamed.provider == "openai"
    assert streamed.input_tokens > 0 and streamed.output_tokens > 0 and streamed.request_id
    assert by_model["gpt-4o-mini"].team == "ads" and by_model["gpt-4o-mini"].request_id == async_answer.id
    (failed,) = [e for e in events if e.status == "error"]
    assert (failed.team, failed.provider, failed.model, failed.input_tokens) == ("ads", "openai", "gpt-4o", 0)
    assert len({e.event_id for e in events}) == 4 and all(e.event_id.startswith("litellm-") for e in events)


def test_a_call_without_a_team_is_logged_not_raised_and_default_team_applies(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{topic_prefix}usage"
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        litellm.callbacks = [MeterlineCallback(producer)]
        answer = litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="hi")
        deadline = time.monotonic() + 30
        while "names no team" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        litellm.callbacks = [MeterlineCallback(producer, default_team="platform")]
        litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="hi")
        wait_emitted(producer, 1)
        assert producer.flush(60)
    assert answer.choices[0].message.content == "hi"  # the application got its answer
    assert "the LiteLLM call names no team: pass metadata={'team': ...}" in caplog.text
    (event,) = read_events(kafka_bootstrap, topic, expected=1)
    assert event.team == "platform"
