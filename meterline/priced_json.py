"""The priced-event JSON on usage.priced: written by the stream, read by the sink. Pure.

Both sides of the byte-level contract live here. The stream writes each priced event with
`encode_priced_event`; the sink hands such lines to ClickHouse to parse as they are when
`priced_flag` recognises them, and validates anything else field by field. The recognition
depends on the order the encoder writes the keys in (the order of `PricedEvent`'s fields),
so the two must change together: tests/unit/test_priced_json.py checks one against the other.
"""

from __future__ import annotations

from typing import Any

import orjson

from meterline.events import UsageEvent
from meterline.money import MONEY_FIELDS
from meterline.pricing.result import PriceResult


def encode_priced_event(event: UsageEvent, price: PriceResult, *, late: bool, ingested_at: str) -> bytes:
    """The `PricedEvent` JSON for a validated event and its price, keys in the model's order.

    The event's own fields are serialized by pydantic in one pass (its JSON mode, None left
    out) and the price's fields appended to that object: byte for byte what dumping the whole
    dict gives (tests/unit/test_priced_json.py), in half the time."""
    head = event.model_dump_json(exclude_none=True).encode()
    tail: dict[str, Any] = {"priced": price.priced}
    if price.unpriced_reason is not None:
        tail["unpriced_reason"] = price.unpriced_reason
    if price.price_id is not None:
        tail["price_id"] = price.price_id
    if price.price_source is not None:
        tail["price_source"] = price.price_source
    for name in MONEY_FIELDS:
        tail[name] = str(getattr(price, name))
    tail["late"] = late
    tail["ingested_at"] = ingested_at
    # '{…event…}' + '{"priced":…}' -> '{…event…,"priced":…}' (an event always has fields).
    return head[:-1] + b"," + orjson.dumps(tail)[1:]


# The keys every encoded event holds, in the order it writes them after `{"event_id":"`:
# `priced`, and those whose ClickHouse default would differ from the contract's (a missing one
# must not become '' or 0 silently). Inside a JSON string a quote is escaped, so `"key":`
# matches keys only; found in order, each search starts where the last one ended (one pass).
ENCODED_PREFIX = b'{"event_id":"'
REQUIRED_KEYS_IN_ORDER = (
    b'"occurred_at":"',
    b'"schema_version":1,',
    b'"team":"',
    b'"provider":"',
    b'"model":"',
    b'"status":"',
    b'"priced":',
    b'"ingested_at":"',
)
_PRICED_KEY = REQUIRED_KEYS_IN_ORDER[6]


def priced_flag(value: bytes | None) -> bool | None:
    """For a line `encode_priced_event` wrote, which ClickHouse can parse as it is, its `priced`
    flag; None for anything else (another writer's JSON, spacing, a missing or moved key)."""
    if value is None or not value.startswith(ENCODED_PREFIX):
        return None
    at, priced = len(ENCODED_PREFIX), None
    for key in REQUIRED_KEYS_IN_ORDER:
        at = value.find(key, at)
        if at < 0:
            return None
        at += len(key)
        if key is _PRICED_KEY:
            if value.startswith(b"true", at):
                priced = True
            elif value.startswith(b"false", at):
                priced = False
            else:
                return None
    return priced


PACK_MAX_BYTES = 256 * 1024
"""Most bytes of one usage.priced record: well inside the stream producer's 512 KiB batch and
the broker's default 1 MiB message."""


def pack_lines(lines: list[bytes], *, max_events: int, max_bytes: int = PACK_MAX_BYTES) -> list[bytes]:
    """`lines` (priced events of one team, in order) as JSON Lines values of at most
    `max_events` lines and `max_bytes` bytes each; a line longer than `max_bytes` alone.

    One record per event cost the broker, the stream's producer and above all the sink's
    kafka-python reads per record; a pack pays them once for up to `max_events` events. The
    sink reads a value line by line, as the stream reads packed usage messages."""
    packs: list[bytes] = []
    start, size = 0, 0
    for index, line in enumerate(lines):
        grown = size + len(line) + (1 if index > start else 0)
        if index > start and (index - start >= max_events or grown > max_bytes):
            packs.append(b"\n".join(lines[start:index]))
            start, grown = index, len(line)
        size = grown
    if start < len(lines):
        packs.append(b"\n".join(lines[start:]))
    return packs
