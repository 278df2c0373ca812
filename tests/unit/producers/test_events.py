"""UsageEvent: every rule of the wire contract, valid and invalid, plus generated junk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from meterline.events import CLOUDEVENTS_TYPE, OCCURRED_AT_MAX, OCCURRED_AT_MIN, UsageEvent, usage_event_json_schema
from meterline.producers.cli import schema_text

REPO = Path(__file__).resolve().parents[3]
BASE: dict[str, Any] = {
    "team": "team-01",
    "provider": "openai",
    "model": "gpt-4o",
    "occurred_at": "2025-05-01T12:30:00Z",
}


def make(**changes: Any) -> UsageEvent:
    fields = {**BASE, **changes}
    return UsageEvent.model_validate({k: v for k, v in fields.items() if v is not ...})


def test_minimal_event_gets_defaults() -> None:
    event = make()
    assert event.schema_version == 1
    assert len(event.event_id) == 36 and event.event_id[14] == "7"  # a UUIDv7
    assert (event.input_tokens, event.output_tokens, event.batch, event.cache_hit, event.status) == (
        0,
        0,
        False,
        False,
        "ok",
    )
    assert event.tags == {}


def test_default_event_ids_are_unique_and_time_ordered() -> None:
    ids = [make().event_id for _ in range(200)]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)


VALID_CASES = [
    {"event_id": "x"},
    {"event_id": "e" * 128},
    {"occurred_at": "2025-05-01T12:30:00.123456+02:00"},
    {"occurred_at": "2025-05-01T12:30:00-07:00"},
    {"occurred_at": datetime(2025, 5, 1, tzinfo=timezone(timedelta(hours=5)))},
    {"team": "a"},
    {"team": "a" * 64},
    {"team": "team.a_b-c9"},
    {"project": "p" * 128, "app": "a" * 128, "user": "u" * 128, "environment": "prod"},
    {"provider": "anthropic", "model": "claude-sonnet-4-20250514"},
    {"input_tokens": 10**9, "output_tokens": 10**9},
    {"input_tokens": 100, "cache_read_tokens": 60, "cache_write_tokens": 40},
    {"output_tokens": 50, "reasoning_tokens": 50},
    {"batch": True, "cache_hit": True},
    {"latency_ms": 0},
    {"status": "error"},
    {"request_id": "req_123"},
    {"tags": {f"k{i}": "v" for i in range(32)}},
    {"tags": {"k" * 64: "v" * 256, "empty": ""}},
    {"schema_version": 1},
]


@pytest.mark.parametrize("changes", VALID_CASES)
def test_valid_events(changes: dict[str, Any]) -> None:
    event = make(**changes)
    assert UsageEvent.from_json_bytes(event.to_json_bytes()) == event


INVALID_CASES = [
    ("event_id", {"event_id": ""}),
    ("event_id", {"event_id": "e" * 129}),
    ("occurred_at", {"occurred_at": ...}),
    ("occurred_at", {"occurred_at": "2025-05-01T12:30:00"}),  # naive
    ("occurred_at", {"occurred_at": datetime(2025, 5, 1)}),  # naive datetime
    ("occurred_at", {"occurred_at": "2025-05-01"}),
    ("occurred_at", {"occurred_at": "2025-05-01T12:30Z"}),  # seconds missing
    ("occurred_at", {"occurred_at": "2025-05-01T12:30:00+0200"}),  # offset without colon
    ("occurred_at", {"occurred_at": 1746102600}),  # unix seconds
    ("occurred_at", {"occurred_at": "1746102600"}),
    ("occurred_at", {"occurred_at": "2025-13-01T12:30:00Z"}),
    ("schema_version", {"schema_version": 2}),
    ("schema_version", {"schema_version": True}),
    ("schema_version", {"schema_version": 1.0}),
    ("schema_version", {"schema_version": "1"}),
    ("team", {"team": ...}),
    ("team", {"team": ""}),
    ("team", {"team": "a" * 65}),
    ("team", {"team": "Team"}),
    ("team", {"team": "team one"}),
    ("team", {"team": "team\n"}),
    ("team", {"team": "équipe"}),
    ("project", {"project": "p" * 129}),
    ("app", {"app": "a" * 129}),
    ("user", {"user": "u" * 129}),
    ("user", {"user": ""}),
    ("environment", {"environment": "e" * 129}),
    ("provider", {"provider": ...}),
    ("provider", {"provider": ""}),
    ("model", {"model": ...}),
    ("model", {"model": ""}),
    ("input_tokens", {"input_tokens": -1}),
    ("input_tokens", {"input_tokens": 10**9 + 1}),
    ("input_tokens", {"input_tokens": 1.0}),
    ("input_tokens", {"input_tokens": "5"}),
    ("input_tokens", {"input_tokens": True}),
    ("output_tokens", {"output_tokens": -1}),
    ("cache_read_tokens", {"cache_read_tokens": -1}),
    ("cache_write_tokens", {"cache_write_tokens": 10**9 + 1}),
    ("reasoning_tokens", {"reasoning_tokens": -5}),
    ("cache", {"input_tokens": 100, "cache_read_tokens": 101}),
    ("cache", {"input_tokens": 100, "cache_read_tokens": 60, "cache_write_tokens": 41}),
    ("reasoning", {"output_tokens": 10, "reasoning_tokens": 11}),
    ("batch", {"batch": "yes"}),
    ("batch", {"batch": 1}),
    ("cache_hit", {"cache_hit": "true"}),
    ("latency_ms", {"latency_ms": -1}),
    ("latency_ms", {"latency_ms": 2.5}),
    ("status", {"status": "OK"}),
    ("status", {"status": "failed"}),
    ("request_id", {"request_id": "r" * 129}),
    ("tags", {"tags": {f"k{i}": "v" for i in range(33)}}),
    ("tags", {"tags": {"k" * 65: "v"}}),
    ("tags", {"tags": {"": "v"}}),
    ("tags", {"tags": {"k": "v" * 257}}),
    ("tags", {"tags": {"k": 1}}),
    ("tags", {"tags": ["k", "v"]}),
    ("unknown field", {"cost_usd": "0.1"}),
    ("unknown field", {"Team": "x"}),
]


@pytest.mark.parametrize(("rule", "changes"), INVALID_CASES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(INVALID_CASES)])
def test_invalid_events(rule: str, changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make(**changes)
    # The same refusal on the wire path (JSON bytes), where it applies.
    payload = {**BASE, **changes}
    payload = {k: v for k, v in payload.items() if v is not ...}
    try:
        raw = orjson.dumps(payload)
    except TypeError:
        return  # a Python-only value such as a naive datetime
    if isinstance(changes.get("occurred_at"), datetime):
        return
    with pytest.raises(ValidationError):
        UsageEvent.from_json_bytes(raw)


def test_token_relation_messages_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="cache_read_tokens \\+ cache_write_tokens must not exceed input_tokens"):
        make(input_tokens=1, cache_read_tokens=2)
    with pytest.raises(ValidationError, match="reasoning_tokens must not exceed output_tokens"):
        make(output_tokens=1, reasoning_tokens=2)


def test_event_is_frozen() -> None:
    event = make()
    with pytest.raises(ValidationError):
        event.team = "other"  # type: ignore[misc]  # the test checks that the frozen model refuses it


def test_wire_bytes_are_compact_json_without_nulls_and_equal_orjson_dump() -> None:
    event = make(tags={"région": "zürich"}, occurred_at="2025-05-01T12:30:00.5+02:00", latency_ms=12)
    raw = event.to_json_bytes()
    assert raw == orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    decoded = json.loads(raw)
    assert "project" not in decoded and decoded["occurred_at"] == "2025-05-01T12:30:00.500000+02:00"
    assert "zürich".encode() in raw


def test_cloudevent_headers() -> None:
    event = make(app="chat-api", occurred_at="2025-05-01T12:30:00Z")
    headers = dict(event.cloudevent_headers())
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": event.event_id.encode(),
        "ce_source": b"chat-api",
        "ce_type": CLOUDEVENTS_TYPE.encode(),
        "ce_time": b"2025-05-01T12:30:00Z",
        "content-type": b"application/json",
    }
    assert headers["ce_time"].decode() == json.loads(event.to_json_bytes())["occurred_at"]
    assert dict(make().cloudevent_headers())["ce_source"] == b"unknown"


def test_checked_in_schema_equals_the_export() -> None:
    checked_in = (REPO / "schemas" / "usage-event.v1.json").read_text(encoding="utf-8")
    assert checked_in == schema_text(usage_event_json_schema()), (
        "schemas/usage-event.v1.json is stale: run `meterline schema --output schemas/usage-event.v1.json`"
    )


def test_schema_states_the_rules() -> None:
    schema = usage_event_json_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"occurred_at", "team", "provider", "model"}
    assert props["team"]["pattern"] == "^[a-z0-9._-]{1,64}$"
    assert props["tags"]["maxProperties"] == 32
    assert props["input_tokens"]["maximum"] == 10**9 and props["input_tokens"]["minimum"] == 0
    assert props["occurred_at"]["format"] == "date-time"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)
field_names = st.sampled_from(sorted(UsageEvent.model_fields) + ["extra", ""])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=12))
def test_junk_dicts_raise_only_validation_errors(junk: dict[str, Any]) -> None:
    try:
        UsageEvent.model_validate({**BASE, **junk})
    except ValidationError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_junk_bytes_raise_only_validation_errors(junk: bytes | str) -> None:
    try:
        UsageEvent.from_json_bytes(junk)
    except ValidationError:
        pass


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_junk_documents_raise_only_validation_errors(junk: Any) -> None:
    try:
        raw = orjson.dumps(junk)
    except TypeError:
        return  # orjson refuses some junk (integers beyond 64 bits): nothing to parse
    try:
        UsageEvent.from_json_bytes(raw)
    except ValidationError:
        pass


# -- occurred_at: the wire path (checked inside pydantic-core) and the Python path agree ---------
def _timestamp_texts() -> st.SearchStrategy[str]:
    """Moments written every way a producer might, RFC 3339 or almost: separators, case,
    0-11 fraction digits, offsets in and out of range, the accepted range's edges."""
    two = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")
    year = st.sampled_from(["1999", "2000", "2024", "2025", "2099", "2100", "0001", "9999"])
    fraction = st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=11).map(lambda d: "." + d))
    offset = st.one_of(
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0200", "+02", "+23:59", "-23:59", "+24:00"]),
        st.tuples(st.sampled_from("+-"), two, two).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
    )
    return st.tuples(year, two, two, st.sampled_from("Tt x"), two, two, two, fraction, offset).map(
        lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}"
    )


EDGE_TIMES = [
    "2000-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T01:00:00+02:00",  # 1999-12-31T23:00Z
    "2099-12-31T23:59:59.999999Z",
    "2099-12-31T23:00:00-02:00",  # 2100-01-01T01:00Z
    "2100-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2025-01-01T00:00:60Z",
    "2025-01-01T00:00:00.123456789Z",
]


def _outcome(parse: Any) -> tuple[Any, ...]:
    try:
        event = parse()
    except ValidationError:
        return ("refused",)
    return ("taken", event.occurred_at, event.occurred_at.utcoffset(), event.to_json_bytes())


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.sampled_from(EDGE_TIMES), _timestamp_texts()))
def test_the_wire_and_python_paths_take_and_refuse_the_same_timestamps(text: str) -> None:
    wire = _outcome(lambda: UsageEvent.from_json_bytes(orjson.dumps({**BASE, "event_id": "e", "occurred_at": text})))
    python = _outcome(lambda: make(event_id="e", occurred_at=text))
    assert wire == python
    if wire[0] == "taken":
        assert OCCURRED_AT_MIN <= wire[1] < OCCURRED_AT_MAX


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("1999-12-31T23:59:59.999999Z", None),
        ("2000-01-01T01:00:00+02:00", None),
        ("2099-12-31T23:59:59.999999Z", datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2099-12-31T23:00:00-02:00", None),
        ("2025-01-01 00:00:00z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T05:30:00.123456789+05:30", datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_the_accepted_range_and_rfc3339_spellings_on_the_wire(text: str, moment: datetime | None) -> None:
    raw = orjson.dumps({**BASE, "occurred_at": text})
    if moment is not None:
        assert UsageEvent.from_json_bytes(raw).occurred_at == moment
        return
    with pytest.raises(ValidationError, match="outside the accepted range"):
        UsageEvent.from_json_bytes(raw)


def test_wire_refusals_of_occurred_at_and_schema_version_say_what_to_send() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"occurred_at": "2025-05-01T12:30:00"}, "RFC 3339 timestamp with an offset"),
        ({"occurred_at": 1746102600}, "RFC 3339 timestamp with an offset"),
        ({"schema_version": True}, "schema_version must be the integer 1"),
        ({"schema_version": 1.0}, "schema_version must be the integer 1"),
    ]
    for changes, says in cases:
        with pytest.raises(ValidationError, match=says):
            UsageEvent.from_json_bytes(orjson.dumps({**BASE, **changes}))
