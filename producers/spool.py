"""The offline spool: append-only segment files that hold messages Kafka did not take.

Layout: `<spool_dir>/slot-N/` folders. A live producer holds an exclusive `flock` on one slot
(`slot-N/.lock`) for its whole life, writes to and replays from that slot only, and may adopt
another slot whose lock it can take (its owner died). The OS drops a dead process's flock, so a
spool left by a crashed process is replayed by the next producer that opens the folder, and two
live producers never replay the same slot.

A slot holds segments `000000000001.seg`, `000000000002.seg`, … and, for a segment being
replayed, `<n>.ack`: the byte offset up to which its frames are delivered. A frame is
`>II` (payload length, CRC-32 of the payload) then the payload,
`orjson([topic, key, [[header, value], …], value])`.

Durability (the fsync policy, `SpoolFsync`):
- Every frame is written with one `os.write` on an unbuffered descriptor, so once `append`
  returns the frame is in the kernel and survives a crash or SIGKILL of the process.
- `"batch"` (default): `append(..., sync=True)` (the background threads, once per batch they
  spool) fsyncs the segment before returning; frames written with `sync=False` (from `emit()`
  when the in-memory queue is full) are fsynced by the next `sync()` (the sender calls it at
  least every 100 ms). Power loss can lose at most those last unsynced frames.
- `"never"`: leave flushing to the OS (tests, benchmarks).
Ack files follow the same policy. A torn tail frame (power loss mid-write) fails its CRC and
ends the segment; it is logged and skipped.

No double send by the spool itself: a replayed frame is acknowledged (its `.ack` offset
advanced) only after Kafka acknowledged it; frames Kafka refused are re-appended to the active
segment before the offset moves past them. Only a crash between Kafka's ack and the `.ack`
write can replay a frame twice (consumers dedup by event_id).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from meterline.producers.errors import SpoolError

log = logging.getLogger(__name__)

SpoolFsync = Literal["batch", "never"]
Headers = list[tuple[str, bytes]]

_FRAME_HEADER = struct.Struct(">II")
_SEGMENT_SUFFIX = ".seg"
_ACK_SUFFIX = ".ack"
MAX_SLOTS = 64
SEGMENT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """One Kafka message as it will be sent again."""

    topic: str
    key: bytes | None
    headers: Headers
    value: bytes


@dataclass(frozen=True, slots=True)
class SpoolFrame:
    """A message read back from a segment and the offset just after it."""

    message: SpooledMessage
    end_offset: int


def encode_frame(message: SpooledMessage) -> bytes:
    """Frame one message for a segment file."""
    payload = orjson.dumps(
        [
            message.topic,
            None if message.key is None else message.key.decode(),
            [[name, value.decode()] for name, value in message.headers],
            message.value.decode(),
        ]
    )
    return _FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes, start: int = 0) -> Iterator[SpoolFrame]:
    """Yield the frames of a segment from `start`; stop at a torn or corrupt tail."""
    offset = start
    while offset + _FRAME_HEADER.size <= len(data):
        length, crc = _FRAME_HEADER.unpack_from(data, offset)
        body_start = offset + _FRAME_HEADER.size
        payload = data[body_start : body_start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("spool segment has a torn or corrupt frame at byte %d; skipping the rest", offset)
            return
        topic, key, headers, value = orjson.loads(payload)
        offset = body_start + length
        yield SpoolFrame(
            SpooledMessage(
                topic=topic,
                key=None if key is None else key.encode(),
                headers=[(name, text.encode()) for name, text in headers],
                value=value.encode(),
            ),
            offset,
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolSlot:
    """One locked slot folder: the active segment for appends and sealed ones for replay."""

    def __init__(self, path: Path, lock_fd: int, fsync: SpoolFsync) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._fsync = fsync
        self._mutex = threading.Lock()
        self._active_fd: int | None = None
        self._active_seq = 0
        self._active_bytes = 0
        self._unsynced = False
        existing = self._segment_seqs()
        # Segments present at open were left by an earlier owner: all are sealed.
        self._next_seq = (existing[-1] + 1) if existing else 1

    # -- appends -----------------------------------------------------------------
    def append(self, messages: list[SpooledMessage], sync: bool = True) -> None:
        """Write messages to the active segment; with `sync` and policy batch, fsync it."""
        if not messages:
            return
        data = b"".join(encode_frame(m) for m in messages)
        with self._mutex:
            if self._lock_fd < 0:
                raise SpoolError(f"spool slot {self.path} is closed; open the producer again")
            if self._active_fd is None or self._active_bytes >= SEGMENT_MAX_BYTES:
                self._roll()
            assert self._active_fd is not None
            try:
                written = os.write(self._active_fd, data)
                while written < len(data):
                    written += os.write(self._active_fd, data[written:])
                self._active_bytes += len(data)
                if sync and self._fsync == "batch":
                    os.fsync(self._active_fd)
                else:
                    self._unsynced = True
            except OSError as exc:
                raise SpoolError(
                    f"could not write the spool at {self.path} ({exc}); free disk space or "
                    "point spool_dir at a writable folder"
                ) from exc

    def sync(self) -> None:
        """fsync frames written with `sync=False` (policy batch)."""
        with self._mutex:
            if self._unsynced and self._active_fd is not None and self._fsync == "batch":
                os.fsync(self._active_fd)
            self._unsynced = False

    def _roll(self) -> None:
        self._close_active()
        seq = self._next_seq
        self._next_seq += 1
        path = self.path / f"{seq:012d}{_SEGMENT_SUFFIX}"
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active_seq = seq
        self._active_bytes = 0
        if self._fsync == "batch":
            _fsync_dir(self.path)

    def _close_active(self) -> None:
        if self._active_fd is not None:
            if self._unsynced and self._fsync == "batch":
                os.fsync(self._active_fd)
            os.close(self._active_fd)
            self._unsynced = False
            self._active_fd = None

    # -- replay ------------------------------------------------------------------
    def _segment_seqs(self) -> list[int]:
        seqs = []
        for entry in self.path.iterdir():
            if entry.name.endswith(_SEGMENT_SUFFIX) and entry.name[: -len(_SEGMENT_SUFFIX)].isdigit():
                seqs.append(int(entry.name[: -len(_SEGMENT_SUFFIX)]))
        return sorted(seqs)

    def seal_for_replay(self) -> int | None:
        """The oldest segment to replay, sealing the active one if it is the only one left."""
        with self._mutex:
            active = self._active_seq if self._active_fd is not None else None
            sealed = [seq for seq in self._segment_seqs() if seq != active]
            if sealed:
                return sealed[0]
            if active is not None and self._active_bytes > 0:
                self._close_active()
                return active
            return None

    def pending_bytes(self) -> int:
        """Bytes of segments not yet fully replayed (an upper bound; ack offsets not subtracted)."""
        total = 0
        for seq in self._segment_seqs():
            try:
                total += (self.path / f"{seq:012d}{_SEGMENT_SUFFIX}").stat().st_size
            except FileNotFoundError:
                continue
        return total

    def read_segment(self, seq: int) -> tuple[bytes, int]:
        """A sealed segment's bytes and the offset replay resumes from."""
        data = (self.path / f"{seq:012d}{_SEGMENT_SUFFIX}").read_bytes()
        try:
            start = int((self.path / f"{seq:012d}{_ACK_SUFFIX}").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            start = 0
        return data, start

    def acknowledge(self, seq: int, offset: int) -> None:
        """Record that frames of segment `seq` before `offset` are delivered."""
        ack = self.path / f"{seq:012d}{_ACK_SUFFIX}"
        tmp = ack.with_suffix(".ack.tmp")
        with open(tmp, "w") as handle:
            handle.write(str(offset))
            handle.flush()
            if self._fsync == "batch":
                os.fsync(handle.fileno())
        os.replace(tmp, ack)

    def finish_segment(self, seq: int) -> None:
        """Delete a segment whose every frame is delivered (segment first, then its ack)."""
        (self.path / f"{seq:012d}{_SEGMENT_SUFFIX}").unlink(missing_ok=True)
        (self.path / f"{seq:012d}{_ACK_SUFFIX}").unlink(missing_ok=True)
        if self._fsync == "batch":
            _fsync_dir(self.path)

    # -- lifetime ----------------------------------------------------------------
    def close(self) -> None:
        """Sync, close the active segment and release the slot's lock."""
        with self._mutex:
            self._close_active()
            if self._lock_fd >= 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = -1


class Spool:
    """The spool folder: hands out locked slots."""

    def __init__(self, directory: Path | str, fsync: SpoolFsync = "batch") -> None:
        self.directory = Path(directory)
        self.fsync: SpoolFsync = fsync

    def _try_lock(self, index: int) -> SpoolSlot | None:
        path = self.directory / f"slot-{index}"
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return SpoolSlot(path, fd, self.fsync)

    def open_slot(self) -> SpoolSlot:
        """Lock the first free slot (a crashed producer's slot is free again)."""
        try:
            for index in range(MAX_SLOTS):
                slot = self._try_lock(index)
                if slot is not None:
                    return slot
        except OSError as exc:
            raise SpoolError(f"cannot use spool folder {self.directory} ({exc}); make it writable") from exc
        raise SpoolError(
            f"all {MAX_SLOTS} spool slots in {self.directory} are held by live producers; "
            "give this producer its own spool_dir"
        )

    def adopt_orphans(self, own: SpoolSlot) -> list[SpoolSlot]:
        """Lock every other slot that has segments and no live owner."""
        adopted: list[SpoolSlot] = []
        if not self.directory.is_dir():
            return adopted
        for entry in sorted(self.directory.glob("slot-*")):
            suffix = entry.name.removeprefix("slot-")
            if entry == own.path or not suffix.isdigit():
                continue
            if not any(entry.glob(f"*{_SEGMENT_SUFFIX}")):
                continue
            slot = self._try_lock(int(suffix))
            if slot is not None:
                adopted.append(slot)
        return adopted
