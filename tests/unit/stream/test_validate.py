"""Message validation: every DLQ kind, and the happy path."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from meterline.event_check import Rejection
from meterline.events import UsageEvent
from meterline.messages import DeadLetter
from meterline.stream.validate import dead_letter, event_lines, in_message, validate_message

GOOD = UsageEvent(
    team="ml", provider="openai", model="gpt-4o", input_tokens=10, occurred_at=datetime(2026, 11, 28, tzinfo=UTC)
)


@pytest.mark.parametrize(
    ("key", "value", "kind", "fragment"),
    [
        (b"ml", b"\xff\xfe{}", "not_utf8", "not UTF-8"),
        (b"ml", b'{"team": ', "not_json", "not JSON"),
        (b"ml", None, "not_json", "tombstone"),
        (b"ml", b'{"team": "ml"}', "schema", "occurred_at"),
        (b"ml", GOOD.to_json_bytes().replace(b'"input_tokens":10', b'"input_tokens":-1'), "schema", "input_tokens"),
        (b"other", GOOD.to_json_bytes(), "wrong_key", "team 'ml'"),
        (None, GOOD.to_json_bytes(), "wrong_key", "no key"),
        (b"ml", b" " * 1000 + GOOD.to_json_bytes(), "oversized", "max_event_bytes = 1000"),
    ],
)
def test_rejections(key: bytes | None, value: bytes | None, kind: str, fragment: str) -> None:
    result = validate_message(key, value, 1000)
    assert isinstance(result, Rejection)
    assert result.kind == kind
    assert fragment in result.reason


def test_valid_event_passes() -> None:
    assert validate_message(b"ml", GOOD.to_json_bytes(), 65536) == GOOD


def test_dead_letter_keeps_original_bytes() -> None:
    value = b"\x00\x01not json"
    letter = dead_letter(
        Rejection("not_json", "not JSON"),
        topic="p.usage",
        partition=2,
        offset=41,
        key=b"ml",
        value=value,
        received_at=datetime(2026, 11, 28, tzinfo=UTC),
    )
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert base64.b64decode(again.value_b64) == value
    assert (again.topic, again.partition, again.offset, again.key_b64) == (
        "p.usage",
        2,
        41,
        base64.b64encode(b"ml").decode(),
    )


def test_a_message_of_one_event_is_one_line() -> None:
    value = GOOD.to_json_bytes()
    assert event_lines(value) == [value]
    assert event_lines(None) == [None]


def test_json_lines_are_the_events_of_a_message_and_blank_lines_carry_nothing() -> None:
    first, second = GOOD.to_json_bytes(), GOOD.model_copy(update={"event_id": "e2"}).to_json_bytes()
    assert event_lines(first + b"\n" + second + b"\n") == [first, second]
    assert event_lines(first + b"\r\n\n  \n" + second) == [first + b"\r", second]
    assert validate_message(b"ml", first + b"\r", 65536) == GOOD, "a CRLF line ending is JSON whitespace"
    # Nothing but blank lines: the value itself, which validation rejects as not JSON.
    assert event_lines(b"\n \n") == [b"\n \n"]
    rejected = validate_message(b"ml", b"\n \n", 65536)
    assert isinstance(rejected, Rejection) and rejected.kind == "not_json"


def test_a_newline_inside_a_json_string_is_escaped_so_it_never_splits_an_event() -> None:
    tagged = GOOD.model_copy(update={"tags": {"prompt": "two\nlines"}})
    assert event_lines(tagged.to_json_bytes()) == [tagged.to_json_bytes()]
    assert validate_message(b"ml", tagged.to_json_bytes(), 65536) == tagged


def test_a_rejected_line_says_where_it_was_in_the_message() -> None:
    rejection = Rejection("schema", "schema violation: occurred_at: Field required")
    assert in_message(rejection, 0, 1) == rejection
    located = in_message(rejection, 2, 5)
    assert located.kind == "schema"
    assert located.reason == "line 3 of 5 in the message: schema violation: occurred_at: Field required"
