"""Turn provider responses into UsageEvents (pure; duck-typed, no provider SDK imported).

Works on SDK objects (attributes) and on plain dicts (parsed JSON) alike:
- OpenAI chat completions: `usage.prompt_tokens` (cached included),
  `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`.
- OpenAI responses API: `usage.input_tokens` (cached included), `input_tokens_details.cached_tokens`,
  `output_tokens_details.reasoning_tokens`.
- Anthropic messages: `usage.input_tokens` EXCLUDES cache tokens; `cache_read_input_tokens` and
  `cache_creation_input_tokens` are added back so `input_tokens` is the total, as meterline wants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from meterline.events import UsageEvent
from meterline.producers.errors import UsageExtractionError

Now = Callable[[], datetime]
ResponseKind = Literal["openai-chat", "openai-responses", "anthropic"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def field_of(obj: Any, name: str) -> Any:
    """`obj.name` or `obj[name]`, None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def int_field(obj: Any, *path: str) -> int:
    value = obj
    for name in path:
        value = field_of(value, name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageExtractionError(f"usage field {'.'.join(path)} is {value!r}, not an integer")
    return value


def detect_kind(response: Any) -> ResponseKind:
    """Which provider shape a response has; raise UsageExtractionError if none."""
    usage = field_of(response, "usage")
    if usage is None:
        raise UsageExtractionError(
            f"{type(response).__name__} has no `usage`; pass the provider's response object "
            "(not a stream chunk without usage)"
        )
    if field_of(usage, "prompt_tokens") is not None:
        return "openai-chat"
    if field_of(response, "type") == "message" or field_of(usage, "cache_creation_input_tokens") is not None:
        return "anthropic"
    if field_of(response, "object") == "response" or field_of(usage, "input_tokens_details") is not None:
        return "openai-responses"
    if field_of(usage, "input_tokens") is not None:
        return "anthropic"
    raise UsageExtractionError(f"unrecognised usage shape on {type(response).__name__}")


def token_counts(response: Any, kind: ResponseKind | None = None) -> dict[str, int]:
    """Normalised token counts (meterline's field names) of one response."""
    kind = kind or detect_kind(response)
    usage = field_of(response, "usage")
    if kind == "openai-chat":
        return {
            "input_tokens": int_field(usage, "prompt_tokens"),
            "output_tokens": int_field(usage, "completion_tokens"),
            "cache_read_tokens": int_field(usage, "prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,
            "reasoning_tokens": int_field(usage, "completion_tokens_details", "reasoning_tokens"),
        }
    if kind == "openai-responses":
        return {
            "input_tokens": int_field(usage, "input_tokens"),
            "output_tokens": int_field(usage, "output_tokens"),
            "cache_read_tokens": int_field(usage, "input_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,
            "reasoning_tokens": int_field(usage, "output_tokens_details", "reasoning_tokens"),
        }
    cache_read = int_field(usage, "cache_read_input_tokens")
    cache_write = int_field(usage, "cache_creation_input_tokens")
    return {
        "input_tokens": int_field(usage, "input_tokens") + cache_read + cache_write,
        "output_tokens": int_field(usage, "output_tokens"),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": 0,
    }


def _provider_of(kind: ResponseKind) -> str:
    return "anthropic" if kind == "anthropic" else "openai"


def usage_event(
    response: Any,
    *,
    team: str,
    kind: ResponseKind | None = None,
    now: Now = utc_now,
    **context: Any,
) -> UsageEvent:
    """A UsageEvent for one provider response; `context` sets any other event field
    (project, app, user, environment, provider, model, latency_ms, batch, tags, ...)."""
    kind = kind or detect_kind(response)
    fields: dict[str, Any] = {
        "team": team,
        "provider": _provider_of(kind),
        "model": field_of(response, "model"),
        "request_id": field_of(response, "id"),
        **token_counts(response, kind),
    }
    fields.update({k: v for k, v in context.items() if v is not None})
    fields.setdefault("occurred_at", now())
    if not fields.get("model"):
        raise UsageExtractionError("the response names no model; pass model=... to record it")
    return UsageEvent(**fields)


def usage_from_openai(response: Any, *, team: str, now: Now = utc_now, **context: Any) -> UsageEvent:
    """A UsageEvent for an OpenAI chat-completions or responses-API response."""
    kind = detect_kind(response)
    if kind == "anthropic":
        raise UsageExtractionError("this looks like an Anthropic message; use record_anthropic")
    return usage_event(response, team=team, kind=kind, now=now, **context)


def usage_from_anthropic(message: Any, *, team: str, now: Now = utc_now, **context: Any) -> UsageEvent:
    """A UsageEvent for an Anthropic Messages API message (cache tokens added to input)."""
    return usage_event(message, team=team, kind="anthropic", now=now, **context)
