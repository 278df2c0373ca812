"""One LiteLLM call (its callback arguments) as a UsageEvent. Pure; no litellm import.

LiteLLM hands a callback the call's `kwargs` (with `litellm_call_id`, `litellm_params.metadata`
and `standard_logging_object`) and, on success, the response (streamed ones assembled, with the
usage of the last chunk). Its `usage` is OpenAI-shaped for every provider: `prompt_tokens` counts
every prompt token, cached ones included; cache reads are `prompt_tokens_details.cached_tokens`
(or Anthropic's `cache_read_input_tokens`), cache writes `cache_creation_input_tokens`, reasoning
`completion_tokens_details.reasoning_tokens`.

The event id is derived from `litellm_call_id`, so a call reported twice is counted once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from meterline.events import UsageEvent
from meterline.producers.errors import UsageExtractionError
from meterline.producers.usage_extract import field_of, int_field

# Where LiteLLM's proxy puts the calling key's team, most specific first.
PROXY_TEAM_FIELDS = ("user_api_key_team_alias", "team_alias", "user_api_key_team_id", "team_id")
CONTEXT_FIELDS = ("project", "app", "environment", "user")


def _metadata(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's metadata: `completion(metadata=...)` in the SDK, the request's on the proxy."""
    found: dict[str, Any] = {}
    logged = field_of(kwargs.get("standard_logging_object"), "metadata") or {}
    for source in (field_of(logged, "requester_metadata"), field_of(kwargs.get("litellm_params"), "metadata")):
        if isinstance(source, Mapping):
            found.update({k: v for k, v in source.items() if v is not None})
    return found


def team_of(kwargs: Mapping[str, Any], team_key: str, default_team: str | None) -> str:
    """The call's team: metadata[team_key], else the proxy key's team, else `default_team`."""
    metadata = _metadata(kwargs)
    if metadata.get(team_key):
        return str(metadata[team_key])
    logged = field_of(kwargs.get("standard_logging_object"), "metadata") or {}
    for name in PROXY_TEAM_FIELDS:
        if field_of(logged, name):
            return str(field_of(logged, name))
    if default_team:
        return default_team
    raise UsageExtractionError(
        f"the LiteLLM call names no team: pass metadata={{{team_key!r}: ...}} to completion(), "
        "use a proxy key that belongs to a team, or MeterlineCallback(default_team=...)"
    )


def token_counts(usage: Any) -> dict[str, int]:
    cache_read = int_field(usage, "prompt_tokens_details", "cached_tokens") or int_field(
        usage, "cache_read_input_tokens"
    )
    cache_write = int_field(usage, "cache_creation_input_tokens") or int_field(
        usage, "prompt_tokens_details", "cache_creation_tokens"
    )
    return {
        "input_tokens": int_field(usage, "prompt_tokens"),
        "output_tokens": int_field(usage, "completion_tokens"),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": int_field(usage, "completion_tokens_details", "reasoning_tokens"),
    }


def _moment(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)  # LiteLLM's are naive local times
    return None


def litellm_event(
    kwargs: Mapping[str, Any],
    response: Any,
    *,
    failed: bool,
    team_key: str = "team",
    default_team: str | None = None,
    start_time: Any = None,
    end_time: Any = None,
) -> UsageEvent:
    """The UsageEvent of one LiteLLM call; UsageExtractionError when it cannot say what was called."""
    logged = kwargs.get("standard_logging_object") or {}
    call_id = kwargs.get("litellm_call_id") or field_of(logged, "id")
    if not call_id:
        raise UsageExtractionError("LiteLLM passed no litellm_call_id: cannot give the event a stable id")
    provider = field_of(logged, "custom_llm_provider") or field_of(kwargs.get("litellm_params"), "custom_llm_provider")
    model = str(field_of(response, "model") or field_of(logged, "model") or kwargs.get("model") or "")
    if provider and model.startswith(f"{provider}/"):
        model = model.removeprefix(f"{provider}/")
    if not provider or not model:
        raise UsageExtractionError("the LiteLLM call names no provider or model")
    started = _moment(field_of(logged, "startTime")) or _moment(start_time)
    ended = _moment(field_of(logged, "endTime")) or _moment(end_time)
    if started is None:
        raise UsageExtractionError("the LiteLLM call has no start time")
    metadata = _metadata(kwargs)
    usage = field_of(response, "usage")
    fields: dict[str, Any] = {
        "event_id": f"litellm-{call_id}"[:128],
        "occurred_at": started,
        "team": team_of(kwargs, team_key, default_team),
        "provider": str(provider),
        "model": model,
        "status": "error" if failed else "ok",
        "request_id": field_of(response, "id") or None,
        "cache_hit": bool(field_of(logged, "cache_hit")),
        **(token_counts(usage) if usage is not None else {}),
        **{name: str(metadata[name]) for name in CONTEXT_FIELDS if metadata.get(name)},
    }
    if ended is not None and ended >= started:
        fields["latency_ms"] = round((ended - started).total_seconds() * 1000)
    if not failed and usage is None:
        raise UsageExtractionError(
            "the LiteLLM response has no usage: for streaming, pass stream_options={'include_usage': True}"
        )
    return UsageEvent(**fields)
