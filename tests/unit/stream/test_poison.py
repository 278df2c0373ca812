"""One bad event never takes its batch down: each input gets a priced record, a dead letter
with its reason, or is a duplicate, whatever it holds (the real processor and catalog)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path
from typing import Literal

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from meterline.event_check import check_event, repeated_key
from meterline.events import MAX_TAGS, MAX_TOKENS, OCCURRED_AT_MAX, OCCURRED_AT_MIN, UsageEvent
from meterline.messages import BudgetState, DeadLetter, PricedEvent
from meterline.pricing import PriceCatalog
from meterline.settings import Settings
from meterline.sinks.rows import usage_event_row
from meterline.stream.processor import Record, StreamProcessor
from meterline.stream.validate import DLQ_VALUE_HEAD_BYTES, record_time
from tests.support.prices import ABSURD_PRICES
from tests.unit.stream.test_processor import NOW, Recorded

BUDGETS = [
    {"team": "ml", "name": "daily", "limit_usd": D("5"), "period": "day", "timezone": "Pacific/Kiritimati"},
    {"team": "ml", "name": "weekly", "limit_usd": D("50"), "period": "week", "timezone": "Etc/GMT+12"},
    {"team": "ml", "name": "monthly", "limit_usd": D("500"), "period": "month"},
    {"team": "ml", "name": "rolling", "limit_usd": D("5"), "period": "rolling", "window": "24h"},
]


def make_processor(tmp_path: Path, *, max_event_bytes: int = 65_536) -> StreamProcessor:
    prices = tmp_path / "absurd.toml"
    prices.write_text(ABSURD_PRICES)
    settings = Settings(
        topic_prefix="p.",
        budgets=BUDGETS,
        pricing={"override_files": [prices]},
        stream={"max_event_bytes": max_event_bytes},
    )
    return StreamProcessor(settings, PriceCatalog.load(settings.pricing), now=lambda: NOW)


def line(**fields: object) -> bytes:
    base: dict[str, object] = {
        "team": "ml",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 100,
        "occurred_at": (NOW - timedelta(minutes=5)).isoformat(),
    }
    base.update(fields)
    return orjson.dumps(base)


def run(proc: StreamProcessor, values: list[bytes], *, timestamp: float | None = None) -> Recorded:
    out = Recorded()
    records = [
        Record("p.usage", 0, i, NOW.timestamp() if timestamp is None else timestamp, b"ml", v)
        for i, v in enumerate(values)
    ]
    asyncio.run(proc.process(records, out))
    return out


def test_an_event_pricing_raises_on_is_dead_lettered_and_the_rest_of_the_batch_flows(tmp_path: Path) -> None:
    proc = make_processor(tmp_path)
    good = [line(event_id=f"g{i}") for i in range(40)]
    poison = line(event_id="poison", model="absurd-model", input_tokens=MAX_TOKENS)
    out = run(proc, good[:20] + [poison] + good[20:])
    priced = [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")]
    assert priced == [f"g{i}" for i in range(40)]
    (letter,) = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    assert letter.error_kind == "processing" and letter.offset == 20
    assert "InvalidOperation" in letter.reason
    assert base64.b64decode(letter.value_b64) == poison
    # The poison is not marked seen: a fixed catalog prices it when it is sent again.
    assert "poison" not in proc.dedup
    assert BudgetState.model_validate_json(out.on("budget.state")[-1]).spend_usd > 0


@pytest.mark.parametrize(
    "occurred_at",
    [
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T00:00:00Z",
        "0001-01-01T00:00:00+23:59",
        "1999-12-31T23:59:59.999999Z",
        "2100-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
    ],
)
def test_occurred_at_outside_the_accepted_range_is_a_schema_dead_letter(tmp_path: Path, occurred_at: str) -> None:
    proc = make_processor(tmp_path)
    out = run(proc, [line(event_id="a"), line(event_id="bad", occurred_at=occurred_at), line(event_id="b")])
    assert [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")] == ["a", "b"]
    (letter,) = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    assert letter.error_kind == "schema" and "outside the accepted range" in letter.reason


@pytest.mark.parametrize(
    "occurred_at", ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z", "2000-01-01T23:00:00+23:00"]
)
def test_the_range_edges_are_accepted(occurred_at: str) -> None:
    assert isinstance(check_event(line(occurred_at=occurred_at), 65_536), UsageEvent)


@pytest.mark.parametrize(
    "raw, key",
    [
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","input_tokens":-5,"input_tokens":10}',
            "input_tokens",
        ),
        (
            b'{"team":"ml","team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z"}',
            "team",
        ),
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","te\\u0061m":"ml"}',
            "team",
        ),
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","tags":{"a":"1","a":"2"}}',
            "a",
        ),
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","tags":{"\\u00e9":"1","\xc3\xa9":"2"}}',
            "\u00e9",
        ),
    ],
)
def test_a_key_named_twice_is_refused(raw: bytes, key: str) -> None:
    checked = check_event(raw, 65_536)
    assert not isinstance(checked, UsageEvent)
    assert checked.kind == "duplicate_key" and repr(key) in checked.reason


@pytest.mark.parametrize(
    "raw",
    [
        b'{"team":"ml","provider":"openai","model":"team","occurred_at":"2025-01-01T00:00:00Z"}',  # a value equal to a key
        b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","tags":{"k":"say \\"team\\""}}',
        b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","tags":{"team":"x"}}',
    ],
)
def test_keys_that_also_occur_as_text_are_not_mistaken_for_repeats(raw: bytes) -> None:
    event = check_event(raw, 65_536)
    assert isinstance(event, UsageEvent)
    assert repeated_key(raw, event) is None


def test_a_dead_letter_too_big_for_the_broker_is_cut_and_says_so(tmp_path: Path) -> None:
    proc = make_processor(tmp_path)
    junk = b"x" * 1_900_000
    out = run(proc, [junk, line(event_id="after")])
    (letter_bytes,) = out.on("usage.dlq")
    assert len(letter_bytes) < 1_000_000
    letter = DeadLetter.model_validate_json(letter_bytes)
    assert letter.truncated and letter.error_kind == "oversized"
    assert letter.value_size == len(junk) and letter.value_sha256 == hashlib.sha256(junk).hexdigest()
    assert base64.b64decode(letter.value_b64) == junk[:DLQ_VALUE_HEAD_BYTES]
    assert "cut to its first" in letter.reason
    assert [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")] == ["after"]


def test_every_bad_line_of_a_message_has_its_own_dead_letter(tmp_path: Path) -> None:
    proc = make_processor(tmp_path)
    message = b"\n".join([line(event_id="a"), b"nope", line(event_id="b"), b"{}", line(event_id="c", team="Bad Team")])
    out = Recorded()
    asyncio.run(proc.process([Record("p.usage", 0, 7, NOW.timestamp(), b"ml", message)], out))
    letters = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    assert [(d.offset, d.line_index, d.line_count) for d in letters] == [(7, 1, 5), (7, 3, 5), (7, 4, 5)]
    assert [PricedEvent.model_validate_json(v).event_id for v in out.on("usage.priced")] == ["a", "b"]


@pytest.mark.parametrize("timestamp", [-1.0, 1e15, -1e15, float("nan"), float("inf")])
def test_a_record_timestamp_no_datetime_holds_falls_back_to_the_receive_time(tmp_path: Path, timestamp: float) -> None:
    assert record_time(timestamp, NOW) in (NOW, datetime.fromtimestamp(-1, UTC))
    out = run(make_processor(tmp_path), [line(event_id="a")], timestamp=timestamp)
    assert len(out.on("usage.priced")) == 1


# -- property: schema-valid extremes never raise out of the processor -----------------------------
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.one_of(
    st.datetimes(min_value=datetime(1999, 12, 30), max_value=datetime(2100, 1, 2), timezones=offsets),
    st.sampled_from([OCCURRED_AT_MIN, OCCURRED_AT_MAX - timedelta(microseconds=1), NOW, NOW + timedelta(days=3)]),
)
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
"""Lone surrogates cannot be encoded as UTF-8: they never reach the wire."""
text = st.text(st.characters(exclude_categories=SURROGATES), min_size=1, max_size=128)
tokens = st.one_of(st.sampled_from([0, 1, MAX_TOKENS]), st.integers(min_value=0, max_value=MAX_TOKENS))


@st.composite
def events(draw: st.DrawFn) -> dict[str, object]:
    input_tokens = draw(tokens)
    cache_read = draw(st.integers(min_value=0, max_value=input_tokens))
    output = draw(tokens)
    return {
        "event_id": draw(st.one_of(st.sampled_from(["e1", "e2"]), st.text(min_size=1, max_size=128))),
        "team": "ml",
        "occurred_at": draw(moments).isoformat(),
        "provider": draw(st.one_of(st.sampled_from(["openai", "anthropic", "google-gla", "openai"]), text)),
        "model": draw(
            st.one_of(st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "absurd-model", "gemini-2.5-pro"]), text)
        ),
        "input_tokens": input_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": draw(st.integers(min_value=0, max_value=input_tokens - cache_read)),
        "output_tokens": output,
        "reasoning_tokens": draw(st.integers(min_value=0, max_value=output)),
        "batch": draw(st.booleans()),
        "cache_hit": draw(st.booleans()),
        "project": draw(st.one_of(st.none(), text)),
        "user": draw(st.one_of(st.none(), text)),
        "tags": draw(st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=256), max_size=MAX_TAGS)),
    }


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(batch=st.lists(events(), min_size=1, max_size=8))
def test_schema_valid_extremes_are_priced_or_dead_lettered_never_raised(
    tmp_path: Path, batch: list[dict[str, object]]
) -> None:
    proc = make_processor(tmp_path)
    values = [orjson.dumps({k: v for k, v in e.items() if v is not None}) for e in batch]
    out = run(proc, values)
    priced = [PricedEvent.model_validate_json(v) for v in out.on("usage.priced")]
    letters = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    ids = [event.event_id for event in priced]
    assert len(ids) == len(set(ids)), "an event was priced twice"
    dead = {orjson.loads(base64.b64decode(letter.value_b64))["event_id"] for letter in letters}
    assert set(ids) | dead == {e["event_id"] for e in batch}, "an event was neither priced nor dead-lettered"
    for letter in letters:  # schema-valid but for the moments drawn just outside the range
        assert letter.error_kind == "processing" or "outside the accepted range" in letter.reason, letter.reason
    for event in priced:
        usage_event_row(event)  # the sink can build its row
        assert OCCURRED_AT_MIN <= event.occurred_at < OCCURRED_AT_MAX
    for value in out.on("budget.state"):
        BudgetState.model_validate_json(value)


@pytest.mark.parametrize(
    ("raw", "repeated"),
    [
        (b'{"team" : "ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z"}', None),
        (
            b'{"team" : "ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","team":"ml"}',
            "team",
        ),
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","model":"gpt-4o"}',
            "model",
        ),
        (
            b'{"team":"ml","provider":"openai","model":"gpt-4o","occurred_at":"2025-01-01T00:00:00Z","tags":{"x":"a:b"}}',
            None,
        ),
    ],
)
def test_the_one_scan_fast_path_and_the_exact_check_agree(raw: bytes, repeated: str | None) -> None:
    """The fast path counts `":` (one per key without escapes); space before a colon falls back
    to the exact parse, and a repeated key anywhere makes the count exceed the keys kept."""
    checked = check_event(raw, 65_536)
    if repeated is None:
        assert isinstance(checked, UsageEvent)
        assert repeated_key(raw, checked) is None
    else:
        assert not isinstance(checked, UsageEvent)
        assert checked.kind == "duplicate_key" and repr(repeated) in checked.reason


def test_the_fast_path_never_misses_a_repeat_in_random_spellings() -> None:
    """Random events, spacing and repeats (top level or in tags): the check's verdict always
    equals a parse that sees every pair."""
    import functools
    import json
    import random

    rng = random.Random(11)
    spaces = ["", "", " ", "\t"]
    base = [
        ("team", '"ml"'),
        ("provider", '"openai"'),
        ("model", '"gpt-4o"'),
        ("occurred_at", '"2025-01-01T00:00:00Z"'),
        ("input_tokens", "12"),
    ]
    for _ in range(400):
        pairs = list(base)
        tags = [(f"t{i}", f'"v:{i}"') for i in range(rng.randrange(3))]
        if tags and rng.random() < 0.3:
            tags.append(rng.choice(tags))
        elif rng.random() < 0.3:
            pairs.append(rng.choice(pairs))
        rng.shuffle(pairs)

        def obj(items: list[tuple[str, str]]) -> str:
            return "{" + ",".join(f'"{k}"{rng.choice(spaces)}:{v}' for k, v in items) + "}"

        if tags:
            pairs.append(("tags", obj(tags)))
        raw = obj(pairs).encode()
        seen: list[str] = []
        json.loads(raw, object_pairs_hook=functools.partial(_note_repeats, found=seen))
        checked = check_event(raw, 65_536)
        if seen:
            assert not isinstance(checked, UsageEvent) and checked.kind == "duplicate_key", raw
        else:
            assert isinstance(checked, UsageEvent), (raw, checked)


def _note_repeats(items: list[tuple[str, object]], found: list[str]) -> dict[str, object]:
    keys = [k for k, _ in items]
    found.extend(k for k in set(keys) if keys.count(k) > 1)
    return dict(items)
