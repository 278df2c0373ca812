"""A finished OpenTelemetry span that follows the GenAI semantic conventions, as a UsageEvent. Pure.

Read (https://opentelemetry.io/docs/specs/semconv/gen-ai/): `gen_ai.provider.name` (older
instrumentations: `gen_ai.system`), `gen_ai.response.model` (else `gen_ai.request.model`),
`gen_ai.usage.input_tokens` / `output_tokens` (older: `prompt_tokens` / `completion_tokens`),
`gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`,
`gen_ai.usage.reasoning.output_tokens`, `gen_ai.response.id`. The conventions count cached
tokens inside input tokens, as meterline does. A span with an error status (or `error.type`)
becomes a `status="error"` event. The event id is the span's trace and span id: a span exported
twice counts once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from meterline.events import UsageEvent
from meterline.producers.errors import UsageExtractionError

TEAM_ATTRIBUTE = "meterline.team"
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ_KEY = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE_KEY = "gen_ai.usage.cache_creation.input_tokens"
REASONING_KEY = "gen_ai.usage.reasoning.output_tokens"
CONTEXT_ATTRIBUTES = {
    "project": "meterline.project",
    "app": "service.name",
    "environment": "deployment.environment.name",
}


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attributes[key] for key in keys if attributes.get(key) not in (None, "")), None)


def _tokens(attributes: Mapping[str, Any], *keys: str) -> int:
    value = _first(attributes, keys)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageExtractionError(f"span attribute {keys[0]} is {value!r}, not an integer")
    return value


def is_model_call(attributes: Mapping[str, Any]) -> bool:
    """A GenAI span that reports token usage (tool and agent spans report none and are skipped)."""
    has_provider = _first(attributes, PROVIDER_KEYS) is not None
    return has_provider and _first(attributes, INPUT_KEYS + OUTPUT_KEYS) is not None


def span_event(
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any],
    *,
    trace_id: int,
    span_id: int,
    start_ns: int,
    end_ns: int | None,
    failed: bool,
    team_attribute: str = TEAM_ATTRIBUTE,
    default_team: str | None = None,
) -> UsageEvent:
    """The UsageEvent of one model-call span; the team is a span attribute, else a resource one."""
    team = attributes.get(team_attribute) or resource.get(team_attribute) or default_team
    if not team:
        raise UsageExtractionError(
            f"the GenAI span has no {team_attribute} attribute: set it on the span or on the tracer "
            f"provider's Resource, or pass default_team="
        )
    provider, model = _first(attributes, PROVIDER_KEYS), _first(attributes, MODEL_KEYS)
    if provider is None or model is None:
        raise UsageExtractionError("the GenAI span names no provider (gen_ai.provider.name) or model (gen_ai.*.model)")
    context = {field: attributes.get(key) or resource.get(key) for field, key in CONTEXT_ATTRIBUTES.items()}
    fields: dict[str, Any] = {
        "event_id": f"otel-{trace_id:032x}-{span_id:016x}",
        "occurred_at": datetime.fromtimestamp(start_ns / 1e9, UTC),
        "team": str(team),
        "provider": str(provider),
        "model": str(model),
        "input_tokens": _tokens(attributes, *INPUT_KEYS),
        "output_tokens": _tokens(attributes, *OUTPUT_KEYS),
        "cache_read_tokens": _tokens(attributes, CACHE_READ_KEY),
        "cache_write_tokens": _tokens(attributes, CACHE_WRITE_KEY),
        "reasoning_tokens": _tokens(attributes, REASONING_KEY),
        "status": "error" if failed or attributes.get("error.type") else "ok",
        "request_id": attributes.get("gen_ai.response.id") or None,
        **{field: str(value) for field, value in context.items() if value},
    }
    if end_ns is not None and end_ns >= start_ns:
        fields["latency_ms"] = round((end_ns - start_ns) / 1e6)
    return UsageEvent(**fields)
