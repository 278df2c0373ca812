"""usage.priced records of many JSON lines (the stream packs a team's events): every line lands
once, through a kill between write and commit, and a bad line is its own dead letter."""

from __future__ import annotations

import base64
import itertools

import pytest

from meterline.sinks.client import open_client
from tests.support.samples import sample_priced_events

from .support import (
    crash_after_writing,
    create_topics,
    expected_totals,
    produce_packed,
    recorded_batch_ranges,
    run_sink_to_the_end,
    sink_settings,
    stored_totals,
    totals,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIZES = (1, 7, 13, 4, 29, 2, 61)
"""Lines per record, in turn: cuts of 120 rows fall inside records and must move to their ends."""
BAD_LINE = b'{"event_id": "broken", oops'


def test_packed_records_killed_between_write_and_commit_land_once_and_a_bad_line_is_dead_lettered(
    kafka_bootstrap: str, topic_prefix: str, chdb_dsn: str
) -> None:
    create_topics(kafka_bootstrap, topic_prefix, partitions=1)
    events = sample_priced_events(400, seed=43)
    lines = [event.model_dump_json().encode() for event in events]
    packs: list[list[bytes]] = []
    start = 0
    for size in itertools.cycle(SIZES):
        if start >= len(lines):
            break
        packs.append(lines[start : start + size])
        start += size
    bad_pack = 4  # 29 lines: the bad one goes in as its line 10 (index 9)
    packs[bad_pack].insert(9, BAD_LINE)
    bad_offset, bad_count = bad_pack, len(packs[bad_pack])
    settings = sink_settings(kafka_bootstrap, topic_prefix, chdb_dsn, batch_rows=50, batch_seconds=0.2)
    produce_packed(kafka_bootstrap, settings.topic("usage.priced"), packs)
    ends = list(itertools.accumulate(len(pack) for pack in packs))  # rows up to and including each offset

    # A sink cutting batches of 120 rows writes whole records (a range ends where a record
    # does), then dies before committing them.
    written = crash_after_writing(kafka_bootstrap, topic_prefix, chdb_dsn, 120, one_event_per_record=False)
    assert all(ends[last] - (ends[first - 1] if first else 0) >= 120 for first, last in written[:-1])
    written_rows = ends[written[-1][1]]
    stored = stored_totals(chdb_dsn)
    assert stored["raw_rows"] == stored["hourly_requests"] == written_rows - 1, "every good line written"

    # A new sink with another batch size re-reads from offset 0 and re-forms the recorded ranges.
    run_sink_to_the_end(settings, kafka_bootstrap)
    client = open_client(chdb_dsn)
    try:
        assert totals(client) == expected_totals(events)
        ranges = recorded_batch_ranges(client)
        assert ranges[: len(written)] == written
        letters = client.query(
            "SELECT `offset`, line_index, line_count, value_b64, error_kind FROM dlq_events FINAL"
        ).result_rows
        assert letters == [(bad_offset, 9, bad_count, base64.b64encode(BAD_LINE).decode(), "not_json")]
    finally:
        client.close()
