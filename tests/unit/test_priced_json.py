"""The priced-event JSON contract, from both sides: what the stream encodes, the sink recognises
and ClickHouse's contract model (PricedEvent) reads back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.events import UsageEvent
from meterline.messages import PricedEvent
from meterline.priced_json import ENCODED_PREFIX, REQUIRED_KEYS_IN_ORDER, encode_priced_event, pack_lines, priced_flag
from meterline.pricing import PriceCatalog
from meterline.settings import PricingSettings

INGESTED = "2026-10-03T12:05:07.000000Z"
BASE: dict[str, object] = {
    "event_id": "ev-1",
    "occurred_at": datetime(2026, 10, 3, 14, 5, 6, 123456, tzinfo=timezone(timedelta(hours=2))),
    "team": "search",
    "provider": "openai",
    "model": "gpt-4o",
    "input_tokens": 1000,
    "output_tokens": 200,
}
SHAPES: dict[str, dict[str, object]] = {
    "bare": {},
    "every optional field": {
        "project": "ranker",
        "app": "web",
        "user": "u-1",
        "environment": "prod",
        "cache_read_tokens": 400,
        "cache_write_tokens": 100,
        "reasoning_tokens": 50,
        "latency_ms": 812,
        "request_id": "req-9",
        "tags": {"feature": "chat", "tier": "gold"},
    },
    "batch": {"batch": True},
    "cache hit": {"cache_hit": True},
    "failed call": {"status": "error", "output_tokens": 0},
    "no price for the model": {"model": "no-such-model-anywhere"},
    "strings that hold the keys": {"tags": {"k": '"team":"x","priced":true'}, "request_id": '"status":"ok"'},
}


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog.load(PricingSettings())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("late", [False, True])
def test_what_the_stream_encodes_the_sink_recognises_and_the_contract_reads_back(
    catalog: PriceCatalog, shape: str, late: bool
) -> None:
    event = UsageEvent.model_validate({**BASE, **SHAPES[shape]})
    price = catalog.price_event(event)
    encoded = encode_priced_event(event, price, late=late, ingested_at=INGESTED)
    assert priced_flag(encoded) is price.priced
    read = PricedEvent.model_validate_json(encoded)
    assert read.model_dump(include=set(UsageEvent.model_fields)) == event.model_dump()
    assert read.model_dump(exclude=set(UsageEvent.model_fields)) == {
        **price.as_fields(),
        "late": late,
        "ingested_at": datetime(2026, 10, 3, 12, 5, 7, tzinfo=UTC),
    }
    assert all(isinstance(getattr(read, name), Decimal) for name in price.as_fields() if name.endswith("_usd"))


def test_the_keys_the_sink_looks_for_come_in_the_order_of_the_contract_models_fields() -> None:
    order = list(PricedEvent.model_fields)
    looked_for = [ENCODED_PREFIX, *REQUIRED_KEYS_IN_ORDER]
    names = [key.split(b'"')[1].decode() for key in looked_for]
    assert names[0] == order[0] == "event_id"
    assert [order.index(name) for name in names] == sorted(order.index(name) for name in names)


def test_only_a_line_holding_every_field_clickhouse_would_default_differently_is_recognised(
    catalog: PriceCatalog,
) -> None:
    event = UsageEvent.model_validate({**BASE, "tags": {"feature": "chat"}})
    value = encode_priced_event(event, catalog.price_event(event), late=False, ingested_at=INGESTED)
    assert priced_flag(value) is True
    assert priced_flag(value.replace(b'"priced":true', b'"priced":false')) is False
    refused = {
        "no value (tombstone)": None,
        "event_id not first": b"{" + value[value.index(b'"occurred_at"') :].replace(b"}", b',"event_id":"x"}', 1),
        "spaced JSON": value.replace(b'"priced":true', b'"priced": true'),
        "priced not a bool": value.replace(b'"priced":true', b'"priced":1'),
        "team missing": value.replace(b'"team":"search",', b""),
        "schema_version missing": value.replace(b'"schema_version":1,', b""),
        "status missing": value.replace(b'"status":"ok",', b""),
        "ingested_at missing": value.replace(b',"ingested_at":', b',"received":'),
    }
    for why, changed in refused.items():
        assert changed != value, why
        assert priced_flag(changed) is None, why
    # A key inside a string is escaped, so it never stands in for a missing field.
    hidden = value.replace(b'"team":"search",', b"").replace(b'"feature":"chat"', b'"feature":"\\"team\\":\\"x"')
    assert b'\\"team\\":\\"x' in hidden and priced_flag(hidden) is None


def reference_encoding(event: UsageEvent, price: object, *, late: bool, ingested_at: str) -> bytes:
    """The whole PricedEvent as one dict dumped by orjson: what the one-pass encoder must equal."""
    import orjson

    from meterline.money import MONEY_FIELDS

    data: dict[str, object] = event.model_dump(mode="json", exclude_none=True)
    data["priced"] = price.priced  # type: ignore[attr-defined]  # a PriceResult
    for name in ("unpriced_reason", "price_id", "price_source"):
        if getattr(price, name) is not None:
            data[name] = getattr(price, name)
    for name in MONEY_FIELDS:
        data[name] = str(getattr(price, name))
    data["late"] = late
    data["ingested_at"] = ingested_at
    return orjson.dumps(data)


def test_the_one_pass_encoding_is_byte_for_byte_the_whole_dict_dumped(catalog: PriceCatalog) -> None:
    from meterline.producers.traffic import generate_events

    unusual = [{**BASE, **shape} for shape in SHAPES.values()] + [
        {**BASE, "tags": {"é": "ü ✓", "emoji": "🙂", "quote": 'a"b', "nl": "a\nb"}, "user": "ø"},
        {**BASE, "occurred_at": datetime(2026, 10, 3, 14, 5, 6, tzinfo=UTC)},
    ]
    events = [UsageEvent.model_validate(data) for data in unusual]
    events += generate_events(seed=9, teams=30, start=datetime(2026, 10, 3, tzinfo=UTC), count=3000, rate=500)
    for event in events:
        price = catalog.price_event(event)
        for late in (False, True):
            assert encode_priced_event(event, price, late=late, ingested_at=INGESTED) == reference_encoding(
                event, price, late=late, ingested_at=INGESTED
            ), event


@given(
    st.lists(st.integers(min_value=1, max_value=120), max_size=60),
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=1, max_value=400),
)
def test_packs_keep_every_line_in_order_within_both_bounds(lengths: list[int], max_events: int, max_bytes: int) -> None:
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(lengths)]
    packs = pack_lines(lines, max_events=max_events, max_bytes=max_bytes)
    assert [line for pack in packs for line in pack.split(b"\n")] == lines, "nothing lost, added or moved"
    for pack in packs:
        held = pack.split(b"\n")
        assert len(held) <= max_events
        assert len(pack) <= max_bytes or len(held) == 1, "only a line longer than the bound travels over it, alone"
    # Greedy: a pack ends only where the next line would break a bound.
    for pack, following in zip(packs, packs[1:], strict=False):
        first_next = following.split(b"\n")[0]
        assert len(pack.split(b"\n")) == max_events or len(pack) + 1 + len(first_next) > max_bytes


def test_no_lines_give_no_packs() -> None:
    assert pack_lines([], max_events=10) == []
