"""Decide whether a raw Kafka message holds usage events, or why they go to the DLQ (pure).

A message holds one event, or several of one team as JSON Lines (one compact JSON object per
line; JSON escapes newlines inside strings, so a line break always separates events). Each
line is validated on its own: a bad line goes to the DLQ with its own bytes, the others flow.
Packing events lifts the per-message cost of Kafka and faust off every event.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from meterline.events import UsageEvent
from meterline.messages import DeadLetter

REASON_LIMIT = 1000
DLQ_VALUE_HEAD_BYTES = 256 * 1024
"""A dead letter keeps the whole value up to this size, else its head: base64 makes it 4/3 as
big, and the letter must stay under the producer's and broker's 1 MB message limit."""
DLQ_KEY_HEAD_BYTES = 1024


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


def check_event(value: bytes | None, max_bytes: int) -> UsageEvent | Rejection:
    """Every check of one event's bytes the stream makes, but the Kafka key's (which the
    producer sets to the team): `meterline validate` runs exactly this."""
    if value is None:
        return Rejection("not_json", "the message has no value (a tombstone); send the event JSON as the value")
    if len(value) > max_bytes:
        return Rejection("oversized", f"the event is {len(value)} bytes, above stream.max_event_bytes = {max_bytes}")
    try:
        event = UsageEvent.model_validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)
    repeated = repeated_key(value, event)
    if repeated is not None:
        return Rejection("duplicate_key", f"the JSON names {repeated} twice; send every key once")
    return event


def repeated_key(value: bytes, event: UsageEvent) -> str | None:
    """A key some object of `value` names twice (JSON parsers keep the last), or None.

    Fast path: without a backslash every key appears literally as `"key"`, so if each key of
    the parsed event (its fields and its tags) occurs once in the bytes, none is repeated. A
    value with escapes, or a key text that also occurs elsewhere, is checked exactly."""
    if b"\\" not in value:
        keys = [*event.model_fields_set, *event.tags]
        if sum(value.count(b'"' + key.encode() + b'"') for key in keys) == len(keys):
            return None
    found: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    json.loads(value, object_pairs_hook=pairs)
    return repr(found[0]) if found else None


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
