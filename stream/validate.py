"""Decide whether a raw Kafka message holds usage events, or why they go to the DLQ (pure).

A message holds one event, or several of one team as JSON Lines (one compact JSON object per
line; JSON escapes newlines inside strings, so a line break always separates events). Each
line is validated on its own: a bad line goes to the DLQ with its own bytes, the others flow.
Packing events lifts the per-message cost of Kafka and faust off every event.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import ValidationError

from meterline.events import UsageEvent
from meterline.messages import DeadLetter

REASON_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a usage event: one of DeadLetter's error kinds and a reason."""

    kind: str
    reason: str


def event_lines(value: bytes | None) -> list[bytes | None]:
    """The events a message holds: its non-blank lines, or the value itself when it has one
    line (or nothing but blank ones: validate_message then says why it is not an event)."""
    if value is None or b"\n" not in value:
        return [value]
    lines = [line for line in value.split(b"\n") if line and not line.isspace()]
    return lines if lines else [value]


def in_message(rejection: Rejection, index: int, count: int) -> Rejection:
    """`rejection` of line `index` (0-based) of a message of `count` events, saying which."""
    if count == 1:
        return rejection
    return Rejection(rejection.kind, f"line {index + 1} of {count} in the message: {rejection.reason}"[:REASON_LIMIT])


def validate_message(key: bytes | None, value: bytes | None, max_bytes: int) -> UsageEvent | Rejection:
    """Parse and check one event (a message, or one line of it): size, UTF-8, JSON, schema,
    key = team."""
    if value is None:
        return Rejection("not_json", "the message has no value (a tombstone); send the event JSON as the value")
    if len(value) > max_bytes:
        return Rejection("oversized", f"message is {len(value)} bytes, above stream.max_event_bytes = {max_bytes}")
    try:
        event = UsageEvent.model_validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)
    if key is None or key != event.team.encode():
        shown = "no key" if key is None else f"key {key[:80]!r}"
        return Rejection("wrong_key", f"{shown} differs from team {event.team!r}; the key must be the team")
    return event


def _classify(value: bytes, exc: ValidationError) -> Rejection:
    # The fast path parsed JSON and schema at once; on failure, find out which layer broke.
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection("not_utf8", f"not UTF-8 at byte {err.start}: {err.reason}")
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError as err:
        return Rejection("not_json", f"not JSON: {err}"[:REASON_LIMIT])
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(event)'}: {error['msg']}" for error in exc.errors()
    )
    return Rejection("schema", f"schema violation: {problems}"[:REASON_LIMIT])


def dead_letter(
    rejection: Rejection, *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, received_at: datetime
) -> DeadLetter:
    """The DLQ message for a rejected record, with its original bytes."""
    return DeadLetter(
        reason=rejection.reason,
        error_kind=rejection.kind,  # type: ignore[arg-type]
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode(),
        received_at=received_at,
    )
