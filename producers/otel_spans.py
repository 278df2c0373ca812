"""`MeterlineSpanProcessor`: GenAI spans of an OpenTelemetry SDK become usage events (meterline[otel]).

    from opentelemetry.sdk.trace import TracerProvider
    from meterline.producers.otel_spans import MeterlineSpanProcessor
    provider.add_span_processor(MeterlineSpanProcessor(producer))

Works with any instrumentation that follows the GenAI semantic conventions (OpenLIT, OpenLLMetry,
OpenInference's GenAI mode, opentelemetry-instrumentation-openai-v2, ...). Spans that report no
token usage are ignored; a model-call span meterline cannot read (no team, no model) is logged,
never raised into the application. `on_end` only queues the event (the producer sends on its
own thread), so it adds no network wait to the span's end. This is the one module of
meterline.producers that imports opentelemetry.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from meterline.producers.integrations import Emitter, record_built
from meterline.producers.otel_usage import TEAM_ATTRIBUTE, is_model_call, span_event


class MeterlineSpanProcessor(SpanProcessor):
    """Emit one UsageEvent per finished GenAI model-call span through `producer`."""

    def __init__(
        self, producer: Emitter | None = None, *, team_attribute: str = TEAM_ATTRIBUTE, default_team: str | None = None
    ) -> None:
        self.producer = producer
        self.team_attribute = team_attribute
        self.default_team = default_team

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        if not is_model_call(attributes) or span.context is None or span.start_time is None:
            return
        resource = dict(span.resource.attributes)
        context, start, end = span.context, span.start_time, span.end_time
        record_built(
            lambda: span_event(
                attributes,
                resource,
                trace_id=context.trace_id,
                span_id=context.span_id,
                start_ns=start,
                end_ns=end,
                failed=span.status.status_code is StatusCode.ERROR,
                team_attribute=self.team_attribute,
                default_team=self.default_team,
            ),
            self.producer,
        )

    def shutdown(self) -> None:
        return None  # the producer belongs to the application, which closes it

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.producer, "flush", None)
        return bool(flush(timeout_millis / 1000)) if callable(flush) else True
