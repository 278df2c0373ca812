"""MeterlineSpanProcessor with the real opentelemetry-sdk into a real Kafka broker: GenAI spans
become usage events; other spans do not; team from span or resource; errors; ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.events import UsageEvent
from meterline.producers import UsageProducer
from tests.integration.producers.kafka_read import consume

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed: pip install 'meterline[otel]'")

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from meterline.producers.otel_spans import MeterlineSpanProcessor

pytestmark = pytest.mark.integration


def test_genai_spans_become_one_event_each_with_tokens_team_and_ids(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{topic_prefix}usage"
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        provider = TracerProvider(resource=Resource.create({"meterline.team": "search", "service.name": "qa-bot"}))
        provider.add_span_processor(MeterlineSpanProcessor(producer))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("chat claude-sonnet-4-5") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic",
                    "gen_ai.request.model": "claude-sonnet-4-5",
                    "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                    "gen_ai.response.id": "msg_01",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 300,
                    "gen_ai.usage.cache_read.input_tokens": 600,
                    "gen_ai.usage.cache_creation.input_tokens": 100,
                    "gen_ai.usage.reasoning.output_tokens": 120,
                }
            )
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.provider.name": "anthropic"})
        with tracer.start_as_current_span("chat gpt-4o") as legacy:
            legacy.set_attributes(
                {
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "meterline.team": "ads",
                    "gen_ai.usage.prompt_tokens": 50,
                    "gen_ai.usage.completion_tokens": 7,
                }
            )
        with tracer.start_as_current_span("chat gpt-4o-mini") as failed:
            failed.set_attributes(
                {
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 12,
                }
            )
            failed.set_status(Status(StatusCode.ERROR, "timeout"))
        with tracer.start_as_current_span("chat bad") as bad:
            bad.set_attributes({"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 1})  # no model
        assert provider.force_flush(60_000)
        provider.shutdown()
        counters = producer.counters()
    assert counters.emitted == 3 and counters.sent == 3
    assert "names no provider (gen_ai.provider.name) or model" in caplog.text

    events = {
        e.model: e for e in (UsageEvent.from_json_bytes(r.value) for r in consume(kafka_bootstrap, topic, expected=3))
    }
    assert len(events) == 3
    chat_event = events["claude-sonnet-4-5-20250929"]
    assert (chat_event.team, chat_event.provider, chat_event.app, chat_event.request_id) == (
        "search",
        "anthropic",
        "qa-bot",
        "msg_01",
    )
    assert (chat_event.input_tokens, chat_event.output_tokens) == (1000, 300)
    assert (chat_event.cache_read_tokens, chat_event.cache_write_tokens, chat_event.reasoning_tokens) == (600, 100, 120)
    context = chat.get_span_context()
    assert chat_event.event_id == f"otel-{context.trace_id:032x}-{context.span_id:016x}"
    assert chat_event.latency_ms is not None and chat_event.status == "ok"
    assert (events["gpt-4o"].team, events["gpt-4o"].provider, events["gpt-4o"].input_tokens) == ("ads", "openai", 50)
    assert events["gpt-4o-mini"].status == "error" and events["gpt-4o-mini"].team == "search"
