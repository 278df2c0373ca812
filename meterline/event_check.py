"""One usage event's bytes checked as the stream checks them: size, UTF-8, JSON, schema, repeated
keys. Pure. The stream (stream/validate.py), `meterline validate` and the producer's JSONL reader
(producers/jsonl.py) all run this one check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from meterline.events import UsageEvent

_SPACE_BEFORE_COLON = re.compile(rb'"[ \t\r\n]+:')

REASON_LIMIT = 1000
"""Characters of a rejection's reason kept: enough to say what is wrong, bounded for the DLQ."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a usage event: one of DeadLetter's error kinds and a reason."""

    kind: str
    reason: str


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

    Fast path, two scans: without a backslash a quote only opens or closes a string, and only
    a key's closing quote can be followed (after optional space) by a colon. With no space
    there, the bytes hold exactly one `":` per key of every object; when that count equals the
    keys the parsed event kept (its fields and its tags), none was named twice. A value with
    escapes, or with space before a colon, is checked exactly."""
    if (
        b"\\" not in value
        and _SPACE_BEFORE_COLON.search(value) is None
        and value.count(b'":') == len(event.model_fields_set) + len(event.tags)
    ):
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
