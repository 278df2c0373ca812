"""The spool's files: frames, torn tails, slot locks, orphan adoption, acks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meterline.producers.errors import SpoolError
from meterline.producers.spool import (
    MAX_SLOTS,
    Spool,
    SpooledMessage,
    decode_frames,
    encode_frame,
)


def message(i: int) -> SpooledMessage:
    return SpooledMessage(
        topic="meterline.usage",
        key=b"team-01",
        headers=[("ce_id", f"id-{i}".encode()), ("content-type", b"application/json")],
        value=f'{{"event_id":"id-{i}","note":"zürich"}}'.encode(),
    )


def test_frames_round_trip_byte_for_byte() -> None:
    messages = [message(i) for i in range(5)] + [SpooledMessage("t", None, [], b"{}")]
    data = b"".join(encode_frame(m) for m in messages)
    frames = list(decode_frames(data))
    assert [f.message for f in frames] == messages
    assert frames[-1].end_offset == len(data)


def test_decoding_resumes_from_an_offset() -> None:
    data = b"".join(encode_frame(message(i)) for i in range(4))
    second_end = list(decode_frames(data))[1].end_offset
    assert [f.message for f in decode_frames(data, second_end)] == [message(2), message(3)]


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_a_torn_tail_ends_the_segment(cut: int) -> None:
    data = b"".join(encode_frame(message(i)) for i in range(3))
    frames = list(decode_frames(data[:-cut]))
    assert [f.message for f in frames] == [message(0), message(1)]


def test_a_corrupt_frame_ends_the_segment() -> None:
    first = encode_frame(message(0))
    second = bytearray(encode_frame(message(1)))
    second[-3] ^= 0xFF
    assert [f.message for f in decode_frames(first + bytes(second) + encode_frame(message(2)))] == [message(0)]


def test_appended_messages_replay_in_order_then_the_segment_is_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    slot = spool.open_slot()
    slot.append([message(0), message(1)])
    slot.append([message(2)], sync=False)
    slot.sync()
    seq = slot.seal_for_replay()
    assert seq is not None
    data, start = slot.read_segment(seq)
    assert start == 0
    frames = list(decode_frames(data, start))
    assert [f.message for f in frames] == [message(0), message(1), message(2)]
    slot.acknowledge(seq, frames[0].end_offset)
    assert slot.read_segment(seq)[1] == frames[0].end_offset
    slot.append([message(3)])  # goes to a new active segment, not the sealed one
    slot.finish_segment(seq)
    assert slot.seal_for_replay() == seq + 1
    slot.close()


def test_two_live_producers_get_different_slots_and_never_adopt_each_other(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = spool.open_slot()
    second = spool.open_slot()
    assert first.path != second.path
    second.append([message(0)])
    assert spool.adopt_orphans(first) == []  # the second slot's owner is alive
    first.close()
    second.close()


def test_a_dead_owners_slot_is_adopted_and_its_segments_are_sealed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    mine = spool.open_slot()
    theirs = spool.open_slot()
    theirs.append([message(7)])
    theirs.close()  # as when its process dies: the OS drops the flock
    adopted = spool.adopt_orphans(mine)
    assert [slot.path for slot in adopted] == [theirs.path]
    seq = adopted[0].seal_for_replay()
    assert seq is not None
    data, start = adopted[0].read_segment(seq)
    assert [f.message for f in decode_frames(data, start)] == [message(7)]
    for slot in [mine, *adopted]:
        slot.close()


def test_a_new_slot_owner_continues_numbering_after_old_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    slot = spool.open_slot()
    slot.append([message(0)])
    slot.close()
    reopened = spool.open_slot()
    reopened.append([message(1)])
    names = sorted(p.name for p in reopened.path.glob("*.seg"))
    assert names == ["000000000001.seg", "000000000002.seg"]
    assert reopened.seal_for_replay() == 1
    reopened.close()


def test_full_spool_folder_says_what_to_do(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync="never")
    slots = [spool.open_slot() for _ in range(MAX_SLOTS)]
    with pytest.raises(SpoolError, match="own spool_dir"):
        spool.open_slot()
    for slot in slots:
        slot.close()


def test_unwritable_folder_raises_spool_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/meterline-spool")  # root ignores permissions; /proc refuses mkdir
    else:
        target = tmp_path / "ro" / "spool"
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(SpoolError, match="writable"):
        Spool(target).open_slot()
