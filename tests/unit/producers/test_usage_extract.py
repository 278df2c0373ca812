"""Provider responses -> UsageEvents: OpenAI chat and responses API, Anthropic with cache tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.producers.errors import UsageExtractionError
from meterline.producers.usage_extract import (
    detect_kind,
    token_counts,
    usage_event,
    usage_from_anthropic,
    usage_from_openai,
)
from tests.unit.producers.fixtures import (
    ANTHROPIC_CACHE_READ_MESSAGE,
    ANTHROPIC_MESSAGE,
    OPENAI_CHAT_COMPLETION,
    OPENAI_REASONING_CHAT_COMPLETION,
    OPENAI_RESPONSE,
    as_sdk_object,
)

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)

CASES = [
    ("openai-chat", OPENAI_CHAT_COMPLETION, (1117, 46, 1024, 0, 0)),
    ("openai-chat", OPENAI_REASONING_CHAT_COMPLETION, (75, 1186, 0, 0, 1024)),
    ("openai-responses", OPENAI_RESPONSE, (328, 52, 256, 0, 12)),
    # Anthropic: 21 uncached + 188086 written = 188107 total prompt tokens.
    ("anthropic", ANTHROPIC_MESSAGE, (188107, 393, 0, 188086, 0)),
    ("anthropic", ANTHROPIC_CACHE_READ_MESSAGE, (188107, 120, 188086, 0, 0)),
]


@pytest.mark.parametrize("shape", ["dict", "sdk object"])
@pytest.mark.parametrize(("kind", "response", "expected"), CASES)
def test_token_counts(kind: str, response: dict[str, Any], expected: tuple[int, ...], shape: str) -> None:
    obj = response if shape == "dict" else as_sdk_object(response)
    assert detect_kind(obj) == kind
    counts = token_counts(obj)
    assert (
        counts["input_tokens"],
        counts["output_tokens"],
        counts["cache_read_tokens"],
        counts["cache_write_tokens"],
        counts["reasoning_tokens"],
    ) == expected


def test_openai_event_carries_model_request_id_and_context() -> None:
    event = usage_from_openai(
        as_sdk_object(OPENAI_CHAT_COMPLETION),
        team="search",
        now=lambda: NOW,
        app="chat-api",
        latency_ms=840,
        tags={"feature": "answer"},
    )
    assert (event.provider, event.model, event.request_id) == (
        "openai",
        "gpt-4o-2024-08-06",
        OPENAI_CHAT_COMPLETION["id"],
    )
    assert (event.team, event.app, event.latency_ms, event.occurred_at, event.tags) == (
        "search",
        "chat-api",
        840,
        NOW,
        {"feature": "answer"},
    )


def test_anthropic_event_normalises_input_to_the_total() -> None:
    event = usage_from_anthropic(ANTHROPIC_MESSAGE, team="search", now=lambda: NOW)
    assert event.provider == "anthropic"
    assert event.input_tokens == 21 + 188086
    assert event.cache_write_tokens + event.cache_read_tokens <= event.input_tokens


def test_context_overrides_provider_for_compatible_apis() -> None:
    event = usage_event(OPENAI_CHAT_COMPLETION, team="t", now=lambda: NOW, provider="azure", batch=True)
    assert (event.provider, event.batch) == ("azure", True)


def test_openai_helper_refuses_an_anthropic_message() -> None:
    with pytest.raises(UsageExtractionError, match="record_anthropic"):
        usage_from_openai(ANTHROPIC_MESSAGE, team="t")


@pytest.mark.parametrize(
    "response",
    [
        {"id": "x", "model": "gpt-4o"},  # a stream chunk without usage
        {"model": "gpt-4o", "usage": {"total": 3}},
        {"model": "gpt-4o", "usage": {"prompt_tokens": "many"}},
        {"usage": {"prompt_tokens": 1, "completion_tokens": 1}},  # no model
        object(),
    ],
)
def test_unreadable_responses_raise_usage_extraction_error(response: Any) -> None:
    with pytest.raises(UsageExtractionError):
        usage_event(response, team="t", now=lambda: NOW)
