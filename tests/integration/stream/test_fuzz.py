"""Fuzz through the real worker (stream, sink, alerts): thousands of bad inputs of many kinds,
interleaved with good events. The worker never dies, every good event is stored once, and
every bad input leaves exactly one dead letter with its reason, in the topic and in
dlq_events."""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from meterline.messages import DeadLetter
from tests.integration.stream.harness import Reader, WorkerProcess
from tests.support.prices import ABSURD_PRICES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BAD_COPIES = 400  # per kind: 30 kinds -> 12,000 bad inputs
GOOD = 1_200


def good_fields(n: int, team: str = "ml") -> dict[str, object]:
    return {
        "event_id": f"good-{n}",
        "team": team,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100 + n,
        "output_tokens": 10,
        "occurred_at": "2026-11-30T12:00:00Z",
    }


def with_(n: int, **changes: object) -> bytes:
    fields = {**good_fields(n), "event_id": f"bad-{n}"}
    for key, value in changes.items():
        if value is _DROP:
            fields.pop(key, None)
        else:
            fields[key] = value
    return orjson.dumps(fields)


_DROP = object()


@dataclass(frozen=True)
class Bad:
    kind: str
    key: bytes | None
    value: bytes | None
    lines: int = 1
    """Bad lines the message holds (JSON Lines packs several)."""
    good_ids: tuple[str, ...] = ()
    """Good events packed in the same message."""


def bad_inputs(n: int, next_good: Callable[[], int]) -> list[Bad]:
    """One input of every kind, numbered `n`."""
    k = b"ml"
    raw = good_fields(n)
    raw["event_id"] = f"bad-{n}"
    base = orjson.dumps(raw).decode()
    packed_good = next_good()
    return [
        Bad("not_json", k, b"not json at all %d" % n),
        Bad("empty", k, b""),
        Bad("tombstone", k, None),
        Bad("not_utf8", k, b'{"team":"ml","x":"\xff\xfe%d"}' % n),
        Bad("array", k, b"[1, 2, %d]" % n),
        Bad("number", k, b"%d" % n),
        Bad("json_string", k, b'"an event %d"' % n),
        Bad("json_null", k, b"null"),
        Bad("missing_team", k, with_(n, team=_DROP)),
        Bad("missing_occurred_at", k, with_(n, occurred_at=_DROP)),
        Bad("bad_team", b"ML Team", with_(n, team="ML Team")),
        Bad("negative_tokens", k, with_(n, input_tokens=-5)),
        Bad("too_many_tokens", k, with_(n, input_tokens=10**12)),
        Bad("float_tokens", k, with_(n, input_tokens=1.5)),
        Bad("cache_over_input", k, with_(n, input_tokens=1, cache_read_tokens=2)),
        Bad("naive_time", k, with_(n, occurred_at="2026-11-30T12:00:00")),
        Bad("year_9999_offset", k, with_(n, occurred_at="9999-12-31T23:59:59-23:59")),
        Bad("year_9999_utc", k, with_(n, occurred_at="9999-12-31T00:00:00Z")),
        Bad("year_1", k, with_(n, occurred_at="0001-01-01T00:00:00Z")),
        Bad("unknown_field", k, with_(n, surprise=True)),
        # The last one wins in JSON parsers: -5 then 10 would pass the schema as 10.
        Bad("duplicate_key", k, (base.replace('"input_tokens":', '"input_tokens":-5,"input_tokens":', 1)).encode()),
        Bad("wrong_key", b"other-team", with_(n)),
        Bad("no_key", None, with_(n)),
        Bad("too_many_tags", k, with_(n, tags={f"t{i}": "v" for i in range(40)})),
        Bad("oversized", k, with_(n, tags={"big": "x" * 200}) + b" " * 70_000),
        Bad("lone_surrogate", k, (base[:-1] + ',"user":"\\ud800"}').encode()),
        Bad("deep_nesting", k, b"[" * 5000 + b"]" * 5000),
        Bad("nan", k, (base[:-1] + ',"latency_ms":NaN}').encode()),
        Bad("poison_price", k, with_(n, model="absurd-model", input_tokens=10**9)),
        # Several bad lines in one JSON Lines message, around a good event of the same team.
        Bad(
            "packed",
            k,
            b"\n".join([b"nope", orjson.dumps({**good_fields(packed_good)}), with_(n, output_tokens=-1), b"{}"]),
            lines=3,
            good_ids=(f"good-{packed_good}",),
        ),
    ]


def sql(worker: WorkerProcess, query: str) -> list[dict[str, object]]:
    status, body = worker.get(f"/sql?q={urllib.parse.quote(query)}&format=json")
    assert status == 200, body
    return json.loads(body)["rows"]


def test_fuzzed_inputs_each_leave_one_dead_letter_and_every_good_event_is_stored_once(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    from kafka import KafkaProducer

    prices = tmp_path / "absurd.toml"
    prices.write_text(ABSURD_PRICES)
    toml = f'[pricing]\noverride_files = ["{prices}"]\n\n[[budgets]]\nteam = "ml"\nname = "daily"\nlimit_usd = "5"\nperiod = "day"\n'
    worker = start_worker(toml, only=None)
    rng = random.Random(16)
    counter = iter(range(GOOD, 10**9))
    bad: list[Bad] = []
    for n in range(BAD_COPIES):
        bad.extend(bad_inputs(n, lambda: next(counter)))
    kinds = Counter(b.kind for b in bad)
    assert len(kinds) >= 25
    messages: list[tuple[bytes | None, bytes | None]] = [(b.key, b.value) for b in bad]
    messages += [(b"ml", orjson.dumps(good_fields(n))) for n in range(GOOD)]
    messages += [(b"ml", orjson.dumps(good_fields(n))) for n in rng.sample(range(GOOD), 200)]  # duplicates
    rng.shuffle(messages)
    good_ids = {f"good-{n}" for n in range(GOOD)} | {g for b in bad for g in b.good_ids}
    expected_letters = sum(b.lines for b in bad)
    assert expected_letters >= 10_000 and len(good_ids) >= 1_000

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, acks="all", max_request_size=2_000_000)
    for key, value in messages:
        producer.send(f"{topic_prefix}usage", key=key, value=value)
    producer.flush()
    producer.close()

    dlq = Reader(kafka_bootstrap, f"{topic_prefix}usage.dlq")
    try:
        dlq.poll_until(lambda rs: len(rs) >= expected_letters, timeout=180)
        letters = [DeadLetter.model_validate_json(r.value) for r in dlq.settle(quiet=3)]
    finally:
        dlq.close()
    assert len(letters) == expected_letters
    assert len({(d.partition, d.offset, d.line_index) for d in letters}) == expected_letters
    assert all(d.reason for d in letters)
    by_kind = Counter(d.error_kind for d in letters)
    poison = Counter(d.reason[:120] for d in letters if b"absurd-model" in base64.b64decode(d.value_b64))
    assert by_kind["processing"] == kinds["poison_price"], (by_kind, poison)
    assert by_kind["duplicate_key"] == kinds["duplicate_key"]
    assert by_kind["wrong_key"] == kinds["wrong_key"] + kinds["no_key"]
    oversized = [d for d in letters if d.error_kind == "oversized"]
    assert len(oversized) == kinds["oversized"]
    # Each dead letter holds its input's bytes (or their head, and says so).
    values = {base64.b64decode(d.value_b64) for d in letters if not d.truncated}
    assert b"null" in values and b"" in values and b"[1, 2, 0]" in values

    deadline = time.monotonic() + 180
    stored: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        stored = sql(worker, "SELECT count() AS rows, uniqExact(event_id) AS ids FROM usage_events")
        dead = sql(worker, "SELECT count() AS rows FROM dlq_events FINAL")
        if int(stored[0]["rows"]) >= len(good_ids) and int(dead[0]["rows"]) >= expected_letters:  # type: ignore[call-overload]  # the rows of /sql's JSON are untyped
            break
        time.sleep(1)
    ids = sql(worker, "SELECT event_id FROM usage_events FINAL")
    assert Counter(str(row["event_id"]) for row in ids) == Counter(dict.fromkeys(good_ids, 1))
    assert sql(worker, "SELECT count() AS rows FROM dlq_events FINAL")[0]["rows"] == expected_letters
    assert sql(worker, "SELECT count() AS rows FROM dlq_events FINAL WHERE reason = ''")[0]["rows"] == 0
    assert worker.metric("meterline_stream_batches_failed_total") == 0
    assert worker.proc is not None and worker.proc.poll() is None, worker.log()
    assert worker.stop() == 0
