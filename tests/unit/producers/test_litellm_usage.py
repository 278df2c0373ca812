"""LiteLLM callback arguments -> UsageEvent, without litellm (plain dicts in LiteLLM's shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.producers.errors import UsageExtractionError
from meterline.producers.litellm_usage import litellm_event, team_of

START = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def call(
    metadata: dict[str, Any] | None = None, logged_metadata: dict[str, Any] | None = None, **logged: Any
) -> dict[str, Any]:
    return {
        "litellm_call_id": "call-1",
        "model": "anthropic/claude-sonnet-4-5",
        "litellm_params": {"metadata": metadata or {}},
        "standard_logging_object": {
            "id": "chatcmpl-1",
            "custom_llm_provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "startTime": START.timestamp(),
            "endTime": START.timestamp() + 1.25,
            "metadata": logged_metadata or {},
            **logged,
        },
    }


RESPONSE = {
    "id": "msg_01",
    "model": "claude-sonnet-4-5",
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "cache_read_input_tokens": 600,
        "cache_creation_input_tokens": 50,
        "completion_tokens_details": {"reasoning_tokens": 80},
    },
}


def test_a_success_becomes_one_event_with_tokens_by_type_ids_and_latency() -> None:
    event = litellm_event(call({"team": "search", "project": "qa"}), RESPONSE, failed=False)
    assert (event.event_id, event.request_id, event.team, event.project) == ("litellm-call-1", "msg_01", "search", "qa")
    assert (event.provider, event.model, event.status, event.occurred_at, event.latency_ms) == (
        "anthropic",
        "claude-sonnet-4-5",
        "ok",
        START,
        1250,
    )
    assert (
        event.input_tokens,
        event.output_tokens,
        event.cache_read_tokens,
        event.cache_write_tokens,
        event.reasoning_tokens,
    ) == (
        1000,
        200,
        600,
        50,
        80,
    )


def test_a_failure_is_an_error_event_with_no_tokens() -> None:
    event = litellm_event(call({"team": "ads"}), None, failed=True)
    assert (event.status, event.input_tokens, event.output_tokens, event.request_id) == ("error", 0, 0, None)


def test_team_comes_from_call_metadata_then_proxy_request_then_proxy_key_then_default() -> None:
    assert team_of(call({"team": "a"}, {"user_api_key_team_alias": "b"}), "team", "z") == "a"
    assert (
        team_of(call(None, {"requester_metadata": {"team": "c"}, "user_api_key_team_alias": "b"}), "team", "z") == "c"
    )
    assert team_of(call(None, {"user_api_key_team_alias": "b", "user_api_key_team_id": "id"}), "team", "z") == "b"
    assert team_of(call(None, {"user_api_key_team_id": "id"}), "team", None) == "id"
    assert team_of(call({"cost_center": "d"}), "cost_center", None) == "d"
    assert team_of(call(), "team", "z") == "z"
    with pytest.raises(UsageExtractionError, match=r"pass metadata=\{'team': \.\.\.\}"):
        team_of(call(), "team", None)


def test_a_success_without_usage_says_how_to_get_it() -> None:
    with pytest.raises(UsageExtractionError, match="include_usage"):
        litellm_event(call({"team": "a"}), {"id": "x", "model": "m"}, failed=False)


def test_a_call_without_an_id_or_provider_is_refused() -> None:
    no_id = call({"team": "a"})
    del no_id["litellm_call_id"]
    no_id["standard_logging_object"]["id"] = None
    with pytest.raises(UsageExtractionError, match="litellm_call_id"):
        litellm_event(no_id, RESPONSE, failed=False)
    with pytest.raises(UsageExtractionError, match="provider"):
        litellm_event(call({"team": "a"}, custom_llm_provider=None), RESPONSE, failed=False)
