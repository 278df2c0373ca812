"""Provider responses shaped like the real SDKs' JSON (copied field for field from their docs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

OPENAI_CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The image shows a wooden boardwalk.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

OPENAI_REASONING_CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-AFs9kqTq3L3wP1hV2w5l4x9hMxQ2b",
    "object": "chat.completion",
    "model": "o3-mini-2025-01-31",
    "usage": {
        "prompt_tokens": 75,
        "completion_tokens": 1186,
        "total_tokens": 1261,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 1024, "audio_tokens": 0},
    },
}

OPENAI_RESPONSE: dict[str, Any] = {
    "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
    "object": "response",
    "created_at": 1741476777,
    "status": "completed",
    "model": "gpt-4o-2024-08-06",
    "output": [],
    "usage": {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 256},
        "output_tokens": 52,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 380,
    },
}

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 393,
        "service_tier": "standard",
    },
}

ANTHROPIC_CACHE_READ_MESSAGE: dict[str, Any] = {
    **ANTHROPIC_MESSAGE,
    "id": "msg_01CacheRead",
    "model": "claude-3-5-haiku-20241022",
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 188086,
        "output_tokens": 120,
        "service_tier": "standard",
    },
}


def as_sdk_object(value: Any) -> Any:
    """The same data as attribute access, as the openai/anthropic SDK models give it."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: as_sdk_object(v) for k, v in value.items()})
    if isinstance(value, list):
        return [as_sdk_object(v) for v in value]
    return value
