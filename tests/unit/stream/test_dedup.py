"""DedupIndex: chunks, expiry bounded by the window, replays rewrite the same keys."""

from __future__ import annotations

from meterline.stream.dedup import CHUNK_IDS, DedupChunk, DedupIndex, make_chunks


def test_chunks_split_and_keys_are_deterministic() -> None:
    ids = [f"e{i}" for i in range(CHUNK_IDS * 2 + 1)]
    chunks = list(make_chunks(3, 700, 10.0, ids))
    assert [c.key for c in chunks] == ["3:700:0", "3:700:1", "3:700:2"]
    assert [len(c.ids) for c in chunks] == [CHUNK_IDS, CHUNK_IDS, 1]
    assert [c.key for c in make_chunks(3, 700, 99.0, ids)] == [c.key for c in chunks]


def test_seen_and_expired_per_partition() -> None:
    index = DedupIndex(window_seconds=100)
    index.add(DedupChunk("0:0:0", 0, 10.0, ("a", "b")))
    index.add(DedupChunk("1:0:0", 1, 10.0, ("c",)))
    index.add(DedupChunk("0:5:0", 0, 60.0, ("d",)))
    assert "a" in index and "c" in index and "z" not in index
    assert index.expire(0, 100.0) == []  # 10 + 100 is not passed yet
    assert index.expire(0, 111.0) == ["0:0:0"]
    assert "a" not in index and "d" in index and "c" in index  # partition 1 untouched
    assert index.expire(1, 111.0) == ["1:0:0"]
    assert len(index) == 1 and index.chunk_count == 1


def test_rewriting_a_chunk_replaces_it() -> None:
    index = DedupIndex(window_seconds=100)
    index.add(DedupChunk("0:0:0", 0, 10.0, ("a",)))
    index.add(DedupChunk("0:0:0", 0, 50.0, ("a",)))
    assert index.expire(0, 115.0) == []  # the rewrite moved its expiry
    assert index.expire(0, 151.0) == ["0:0:0"]


def test_round_trip_json() -> None:
    chunk = DedupChunk("2:9:0", 2, 12.5, ("x", "y"))
    assert DedupChunk.from_json("2:9:0", chunk.to_json()) == chunk
