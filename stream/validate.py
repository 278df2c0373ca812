"""Decide whether a raw Kafka message holds usage events, or why they go to the DLQ (pure).

A message holds one event, or several of one team as JSON Lines (one compact JSON object per
line; JSON escapes newlines inside strings, so a line break always separates events). Each
line is validated on its own: a bad line goes to the DLQ with its own bytes, the others flow.
Packing events lifts the per-message cost of Kafka and faust off every event.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from meterline.event_check import REASON_LIMIT, Rejection, check_event
from meterline.events import UsageEvent
from meterline.messages import DeadLetter

DLQ_VALUE_HEAD_BYTES = 256 * 1024
"""A dead letter keeps the whole value up to this size, else its head: base64 makes it 4/3 as
big, and the letter must stay under the producer's and broker's 1 MB message limit."""
DLQ_KEY_HEAD_BYTES = 1024


def event_lines(value: bytes | None) -> list[bytes | None]:
    """The events a message holds: its non-blank lines, or the value itself when it has one
    line (or nothing but blank ones: validate_message then says why it is not an event)."""
    if value is None or b"\n" not in value:
        return [value]
    lines: list[bytes | None] = [line for line in value.split(b"\n") if line and not line.isspace()]
    return lines if lines else [value]


def in_message(rejection: Rejection, index: int, count: int) -> Rejection:
    """`rejection` of line `index` (0-based) of a message of `count` events, saying which."""
    if count == 1:
        return rejection
    return Rejection(rejection.kind, f"line {index + 1} of {count} in the message: {rejection.reason}"[:REASON_LIMIT])


def validate_message(key: bytes | None, value: bytes | None, max_bytes: int) -> UsageEvent | Rejection:
    """Parse and check one event (a message, or one line of it): size, UTF-8, JSON, schema,
    repeated keys, key = team."""
    checked = check_event(value, max_bytes)
    if isinstance(checked, Rejection):
        return checked
    if key is None or key != checked.team.encode():
        shown = "no key" if key is None else f"key {key[:80]!r}"
        return Rejection("wrong_key", f"{shown} differs from team {checked.team!r}; the key must be the team")
    return checked


def record_time(timestamp: float, fallback: datetime) -> datetime:
    """A Kafka record's timestamp as a UTC datetime; `fallback` where the producer set one no
    datetime holds (any value can be sent: -1, 1e15, NaN)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (ValueError, OverflowError, OSError):
        return fallback


def dlq_key(key: bytes | None) -> bytes:
    """The Kafka key of a dead letter: the original key's head (the team, when it was one)."""
    return (key or b"")[:DLQ_KEY_HEAD_BYTES]


def letter_bytes(letter: DeadLetter) -> bytes:
    return letter.model_dump_json().encode()


def dead_letter(
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    received_at: datetime,
    line_index: int = 0,
    line_count: int = 1,
) -> DeadLetter:
    """The DLQ message for a rejected record (or one line of it), with its original bytes, cut
    to their head when too big to travel (`truncated`; size and SHA-256 are of the whole)."""
    raw = value or b""
    cut_value = len(raw) > DLQ_VALUE_HEAD_BYTES
    cut_key = key is not None and len(key) > DLQ_KEY_HEAD_BYTES
    reason = rejection.reason
    if cut_value or cut_key:
        parts = [f"value cut to its first {DLQ_VALUE_HEAD_BYTES} of {len(raw)} bytes"] if cut_value else []
        parts += [f"key cut to its first {DLQ_KEY_HEAD_BYTES} of {len(key or b'')} bytes"] if cut_key else []
        reason = f"{reason} [{'; '.join(parts)}]"
    return DeadLetter(
        reason=_printable(reason),
        error_kind=rejection.kind,
        topic=topic,
        partition=partition,
        offset=offset,
        line_index=line_index,
        line_count=line_count,
        key_b64=base64.b64encode(key[:DLQ_KEY_HEAD_BYTES]).decode() if key is not None else None,
        value_b64=base64.b64encode(raw[:DLQ_VALUE_HEAD_BYTES]).decode(),
        value_size=len(raw),
        value_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=cut_value or cut_key,
        received_at=received_at,
    )


def _printable(reason: str) -> str:
    """The reason as valid UTF-8 (an exception's text may hold lone surrogates), capped."""
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")[:REASON_LIMIT]
