"""UsageProducer against the real broker: bytes, keys, headers; integrations; the CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.events import UsageEvent
from meterline.producers import UsageProducer
from meterline.producers.integrations import metered, record_anthropic, record_openai, set_default_producer
from meterline.producers.kafka_config import ProducerTuning
from meterline.producers.traffic import generate_events
from meterline.settings import load_settings
from tests.integration.producers.kafka_read import consume
from tests.unit.producers.fixtures import ANTHROPIC_MESSAGE, OPENAI_RESPONSE, as_sdk_object

pytestmark = pytest.mark.integration
START = datetime(2025, 5, 1, tzinfo=UTC)


def test_emitted_events_arrive_byte_identical_with_keys_and_headers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}usage"
    events = generate_events(seed=3, teams=5, start=START, count=2000, duplicate_share=0.0)
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        handles = [producer.emit(event) for event in events]
        assert producer.flush(60)
        counters = producer.counters()
    assert {h.outcome for h in handles} == {"sent"}
    assert (counters.emitted, counters.sent, counters.spooled, counters.failed) == (2000, 2000, 0, 0)

    records = consume(kafka_bootstrap, topic, expected=len(events))
    assert len(records) == len(events)
    by_id = {e.event_id: e for e in events}
    for record in records:
        event = by_id[dict(record.headers)["ce_id"].decode()]
        assert record.value == event.to_json_bytes()
        assert record.key == event.team.encode()
        assert record.headers == event.cloudevent_headers()
    assert {dict(r.headers)["ce_id"].decode() for r in records} == set(by_id)


def test_packed_events_arrive_as_json_lines_of_one_team_in_emit_order(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}usage"
    events = generate_events(seed=4, teams=3, start=START, count=1000, duplicate_share=0.0)
    tuning = ProducerTuning(events_per_message=50, message_max_bytes=8_000)
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool", tuning=tuning) as producer:
        handles = [producer.emit(event) for event in events]
        assert producer.flush(60)
        counters = producer.counters()
    assert {h.outcome for h in handles} == {"sent"}
    assert (counters.emitted, counters.sent, counters.spooled, counters.failed) == (1000, 1000, 0, 0)

    records = consume(kafka_bootstrap, topic, expected=1000, count_lines=True)
    for record in records:
        lines = record.value.split(b"\n")
        assert len(record.value) <= 8_000, "a packed message stops growing at message_max_bytes"
        assert len(lines) <= 50
        if len(lines) > 1:
            assert record.headers == [("content-type", b"application/jsonl")]
    assert_each_event_once_in_emit_order(records, events)
    assert len(records) < 1000 / 10, "events were packed, not sent one per message"


def assert_each_event_once_in_emit_order(records: list[Any], events: list[UsageEvent]) -> None:
    """Every event once, byte-identical, and each team's events in the order they were emitted."""
    lines_by_team: dict[bytes, list[bytes]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        lines_by_team.setdefault(record.key, []).extend(record.value.split(b"\n"))
    for team, lines in lines_by_team.items():
        assert lines == [e.to_json_bytes() for e in events if e.team.encode() == team]
    assert sum(len(lines) for lines in lines_by_team.values()) == len(events)


def test_paced_events_gather_for_the_pack_linger_before_packing(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # An application emitting steadily (here ~2,000 events/s over 4 teams) hands the sender
    # one event at a time; without the linger every message would hold a single event.
    topic = f"{topic_prefix}usage"
    events = generate_events(seed=5, teams=4, start=START, count=600, duplicate_share=0.0)
    tuning = ProducerTuning(events_per_message=100, pack_linger_ms=40)
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool", tuning=tuning) as producer:
        assert producer.emit(events[0]).wait(30) == "sent"  # connected before the pacing starts
        started = time.monotonic()
        for i, event in enumerate(events[1:], start=1):
            producer.emit(event)
            pause = started + i / 2_000 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        assert producer.flush(60)
        counters = producer.counters()
    assert (counters.sent, counters.spooled, counters.failed) == (600, 0, 0)

    records = consume(kafka_bootstrap, topic, expected=600, count_lines=True)
    assert_each_event_once_in_emit_order(records, events)
    assert len(records) < 600 / 4, f"{len(records)} messages for 600 paced events: the linger did not pack them"


def test_from_settings_uses_the_usage_topic_and_data_dir(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = load_settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, data_dir=tmp_path)
    producer = UsageProducer.from_settings(settings)
    assert (producer.topic, producer.bootstrap) == (f"{topic_prefix}usage", kafka_bootstrap)
    assert producer.spool.directory == tmp_path / "spool"
    event = UsageEvent(team="team-01", provider="openai", model="gpt-4o", occurred_at=START)
    with producer:
        assert producer.emit(event).wait(30) == "sent"
    [record] = consume(kafka_bootstrap, producer.topic, expected=1)
    assert record.value == event.to_json_bytes()


def test_integrations_record_through_the_default_producer(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}usage"
    ticks = iter([10.0, 10.25, 20.0, 20.5])
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        set_default_producer(producer)
        try:
            record_openai(as_sdk_object(OPENAI_RESPONSE), team="search", app="chat-api", request_id="r-openai")
            record_anthropic(ANTHROPIC_MESSAGE, team="search", batch=True, request_id="r-anthropic")
            with metered(team="agents", timer=lambda: next(ticks), request_id="r-metered") as call:
                call.record(ANTHROPIC_MESSAGE)

            @metered(team="agents", provider="openai", model="gpt-4o", timer=lambda: next(ticks), request_id="r-fail")
            def failing_call() -> None:
                raise TimeoutError("provider timed out")

            with pytest.raises(TimeoutError):
                failing_call()
            assert record_openai({"id": "chunk"}, team="search") is None  # unreadable: logged, not raised
        finally:
            set_default_producer(None)
        assert producer.flush(30)
    events = {
        e.request_id: e
        for e in (UsageEvent.from_json_bytes(r.value) for r in consume(kafka_bootstrap, topic, expected=4))
    }
    assert set(events) == {"r-openai", "r-anthropic", "r-metered", "r-fail"}
    assert (events["r-openai"].input_tokens, events["r-openai"].cache_read_tokens, events["r-openai"].app) == (
        328,
        256,
        "chat-api",
    )
    assert (
        events["r-anthropic"].input_tokens,
        events["r-anthropic"].cache_write_tokens,
        events["r-anthropic"].batch,
    ) == (
        188107,
        188086,
        True,
    )
    assert (events["r-metered"].latency_ms, events["r-metered"].status, events["r-metered"].team) == (
        250,
        "ok",
        "agents",
    )
    failed = events["r-fail"]
    assert (failed.status, failed.latency_ms, failed.input_tokens, failed.model) == ("error", 500, 0, "gpt-4o")


def test_cli_emit_file_sends_valid_lines_and_reports_invalid_ones(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("METERLINE_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("METERLINE_DATA_DIR", str(tmp_path))
    events = generate_events(seed=5, teams=3, start=START, count=30, duplicate_share=0.0)
    lines = [e.to_json_bytes().decode() for e in events]
    lines.insert(10, '{"team": "team-01"}')
    lines.insert(20, "{broken")
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(lines) + "\n")

    result = CliRunner().invoke(app, ["emit", "--file", str(file)])
    assert result.exit_code == 1
    assert "line 11: " in result.output and "line 21: Invalid JSON" in result.output
    assert "sent 30, spooled 0" in result.output
    records = consume(kafka_bootstrap, f"{topic_prefix}usage", expected=30)
    assert sorted(r.value for r in records) == sorted(e.to_json_bytes() for e in events)

    one = CliRunner().invoke(
        app,
        [
            "emit",
            "--team",
            "team-09",
            "--provider",
            "google",
            "--model",
            "gemini-2.5-flash",
            "--input-tokens",
            "120",
            "--output-tokens",
            "30",
            "--tag",
            "feature=search",
            "--event-id",
            "cli-1",
        ],
    )
    assert one.exit_code == 0, one.output
    records = consume(kafka_bootstrap, f"{topic_prefix}usage", expected=31)
    event = UsageEvent.from_json_bytes(next(r.value for r in records if r.key == b"team-09"))
    assert (event.event_id, event.input_tokens, event.tags) == ("cli-1", 120, {"feature": "search"})


def test_emit_from_many_threads_loses_nothing(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    import threading

    topic = f"{topic_prefix}usage"
    events = generate_events(seed=9, teams=6, start=START, count=2000, duplicate_share=0.0)
    with UsageProducer(kafka_bootstrap, topic, tmp_path / "spool") as producer:
        workers = [
            threading.Thread(target=lambda part=events[i::4]: [producer.emit(e) for e in part]) for i in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert producer.flush(60)
        counters = producer.counters()
    assert (counters.emitted, counters.sent) == (2000, 2000)
    records = consume(kafka_bootstrap, topic, expected=2000)
    assert sorted(r.value for r in records) == sorted(e.to_json_bytes() for e in events)
