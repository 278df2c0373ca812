"""dlq_events on the real engine: one row per bad line, re-deliveries collapse, old rows kept."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from meterline.messages import DeadLetter
from meterline.sinks.insert_plan import OffsetRange, RangeBatch, SourceRecord, plan_inserts
from meterline.sinks.migrations import MIGRATIONS_TABLE, apply_migrations, load_migrations
from meterline.sinks.writer import write_batch

pytestmark = pytest.mark.integration

DLQ_TOPIC = "t.usage.dlq"
RECEIVED = datetime(2026, 11, 30, 8, tzinfo=UTC)


def bad_lines(offset: int, lines: list[int], count: int) -> list[DeadLetter]:
    """The stream's dead letters for the bad `lines` of one JSON Lines message of `count` lines."""
    value = b"\n".join(b'{"line": %d}' % i for i in range(count))
    return [
        DeadLetter(
            reason=f"line {i} of {count}: schema",
            error_kind="schema",
            topic="t.usage",
            partition=1,
            offset=offset,
            line_index=i,
            line_count=count,
            key_b64=None,
            value_b64=base64.b64encode(b'{"line": %d}' % i).decode(),
            value_size=len(value),
            value_sha256=hashlib.sha256(value).hexdigest(),
            received_at=RECEIVED,
        )
        for i in lines
    ]


def write_letters(client, letters: list[DeadLetter], first_offset: int = 0) -> None:
    records = [
        SourceRecord(DLQ_TOPIC, 0, first_offset + i, None, letter.model_dump_json().encode(), 0)
        for i, letter in enumerate(letters)
    ]
    batch = RangeBatch(OffsetRange(DLQ_TOPIC, 0, first_offset, first_offset + len(letters) - 1), records)
    for insert in plan_inserts("dlq", batch):
        write_batch(client, insert)


def test_every_bad_line_of_a_message_keeps_its_own_row_and_a_redelivery_adds_none(sink_client) -> None:
    letters = bad_lines(40, [0, 3, 4, 9], 10) + bad_lines(41, [0], 1)
    write_letters(sink_client, letters)
    write_letters(sink_client, letters)  # the same range again: a replay after a crash before the commit
    rows = "SELECT offset, line_index, line_count, value_size, truncated FROM dlq_events {} ORDER BY offset, line_index"
    expected = [(40, i, 10, letters[0].value_size, False) for i in (0, 3, 4, 9)] + [
        (41, 0, 1, letters[-1].value_size, False)
    ]
    assert sink_client.query(rows.format("")).result_rows == expected, "no duplicates, even before a merge"
    # The same dead letters delivered again at other offsets (the stream re-sent them): the
    # block is new, and the sorting key still collapses each line to one row.
    write_letters(sink_client, letters, first_offset=100)
    sink_client.command("OPTIMIZE TABLE dlq_events FINAL")
    assert sink_client.query(rows.format("")).result_rows == expected
    assert sink_client.query(rows.format("FINAL")).result_rows == expected


def test_dlq_rows_written_before_the_line_key_stay_as_line_0_of_1(chdb_client) -> None:
    before, after = load_migrations()[:4], load_migrations()[4:]
    assert after[0].label == "0005_dlq_line_key"
    # A database as the migrations before 0005 left it: dlq_events as 0003 made it.
    apply_migrations(chdb_client)
    chdb_client.command("DROP TABLE dlq_events SYNC")
    chdb_client.command(f"ALTER TABLE {MIGRATIONS_TABLE} DELETE WHERE version >= 5", settings={"mutations_sync": 1})
    for statement in before[2].statements:
        chdb_client.command(statement)
    chdb_client.command(
        "INSERT INTO dlq_events (topic, partition, offset, reason, error_kind, key_b64, value_b64, received_at) "
        "VALUES ('t.usage', 0, 7, 'not json', 'not_json', NULL, 'eA==', '2026-11-01 00:00:00')"
    )
    assert [m.label for m in apply_migrations(chdb_client)] == [m.label for m in after]
    (statement,) = after[0].statements
    chdb_client.command(statement)  # a crash before the version was recorded re-runs it: harmless
    key = chdb_client.query(
        "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'dlq_events'"
    )
    assert key.result_rows == [("topic, partition, offset, line_index",)]
    assert chdb_client.query(
        "SELECT offset, line_index, line_count, value_size, value_sha256, truncated FROM dlq_events"
    ).result_rows == [(7, 0, 1, None, None, False)]
