"""The compiled record batch builder writes the batches kafka-python's own builder writes
(byte for byte, but for the partition leader epoch the broker overwrites)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kafka.record import memory_records
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.default_records import DefaultRecordBatchBuilder as PythonBuilder
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from meterline.producers import record_builder
from meterline.producers.record_builder import CompiledRecordBatchBuilder

pytestmark = pytest.mark.skipif(not record_builder.available(), reason="aiokafka's compiled records are not installed")

NONE, GZIP, LZ4, ZSTD = 0, 1, 3, 4
Record = tuple[int | None, bytes | None, bytes | None, list[tuple[str, bytes]]]


def _records(count: int) -> list[Record]:
    records: list[Record] = []
    for n in range(count):
        headers = [("ce_id", f"id-{n}".encode()), ("ce_time", b"2026-11-29T01:02:03.456789Z"), ("empty", b"")]
        key = None if n % 7 == 3 else f"team-{n % 5}".encode()
        value = None if n % 11 == 5 else (b'{"n":%d,"pad":"' % n + b"x" * (n * 37 % 900) + b'"}')
        records.append((1_764_000_000_000 + n * 13, key, value, headers if n % 3 else []))
    return records


def _build(
    builder_class: Any, records: list[Record], compression: int, state: tuple[int, int, int, bool] | None
) -> tuple[bytearray, int]:
    builder = builder_class(2, compression, False, -1, -1, -1, 1_000_000)
    appended = 0
    for offset, (timestamp, key, value, headers) in enumerate(records):
        if builder.append(offset, timestamp, key, value, headers) is None:
            break
        appended += 1
    if state is not None:
        builder.set_producer_state(*state)
    return builder.build(), appended


def _decoded(buffer: bytearray) -> Iterator[Any]:
    batches = MemoryRecords(bytes(buffer))
    while batches.has_next():
        batch = batches.next_batch()
        assert isinstance(batch, DefaultRecordBatch)
        assert batch.validate_crc()
        header = (
            batch.compression_type,
            batch.is_transactional,
            batch.producer_id,
            batch.producer_epoch,
            batch.base_sequence,
        )
        yield header, [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]


STATES = [None, (4242, 3, 17, False), (4242, 3, 17, True)]


@pytest.mark.parametrize("state", STATES, ids=["plain", "idempotent", "transactional"])
def test_uncompressed_batches_are_byte_identical(state: tuple[int, int, int, bool] | None) -> None:
    records = _records(500)
    python, python_count = _build(PythonBuilder, records, NONE, state)
    compiled, compiled_count = _build(CompiledRecordBatchBuilder, records, NONE, state)
    assert compiled_count == python_count == 500
    # Bytes 12-15, the partition leader epoch, are the only difference: aiokafka writes -1 as
    # the Java client does, kafka-python 0; the broker sets it on append, the CRC skips it.
    assert compiled[12:16] == b"\xff\xff\xff\xff" and python[12:16] == b"\x00\x00\x00\x00"
    assert bytes(compiled[:12] + compiled[16:]) == bytes(python[:12] + python[16:])


@pytest.mark.parametrize("compression", [GZIP, LZ4, ZSTD], ids=["gzip", "lz4", "zstd"])
@pytest.mark.parametrize("state", STATES, ids=["plain", "idempotent", "transactional"])
def test_compressed_batches_decode_to_the_same_records(
    compression: int, state: tuple[int, int, int, bool] | None
) -> None:
    records = _records(800)
    python, _ = _build(PythonBuilder, records, compression, state)
    compiled, _ = _build(CompiledRecordBatchBuilder, records, compression, state)
    assert list(_decoded(compiled)) == list(_decoded(python))
    ((header, decoded),) = list(_decoded(compiled))
    assert header[0] == compression
    assert header[1] is (state is not None and state[3])
    assert len(decoded) == 800


def test_a_full_batch_refuses_the_next_record_as_kafka_python_does() -> None:
    records = _records(3000)
    python = PythonBuilder(2, NONE, False, -1, -1, -1, 50_000)
    compiled = CompiledRecordBatchBuilder(2, NONE, False, -1, -1, -1, 50_000)
    taken = {"python": 0, "compiled": 0}
    for name, builder in (("python", python), ("compiled", compiled)):
        for offset, (timestamp, key, value, headers) in enumerate(records):
            if builder.append(offset, timestamp, key, value, headers) is None:
                break
            taken[name] += 1
    assert 0 < taken["compiled"] == taken["python"] < 3000
    assert compiled.size() == python.size()


def test_size_estimates_match() -> None:
    for _, key, value, headers in _records(200):
        assert record_builder._CompiledSizeEstimate.estimate_size_in_bytes(key, value, headers) == (
            PythonBuilder.estimate_size_in_bytes(key, value, headers)
        )


def test_install_switches_kafka_pythons_memory_records_and_uninstall_restores() -> None:
    was_installed = record_builder.installed()
    try:
        assert record_builder.install()
        builder = MemoryRecordsBuilder(2, ZSTD, 1_000_000)
        assert isinstance(builder._builder, CompiledRecordBatchBuilder)
        for offset, (timestamp, key, value, headers) in enumerate(_records(50)):
            assert builder.append(timestamp, key, value, headers) is not None, offset
        builder.close()
        ((_, decoded),) = list(_decoded(builder.buffer()))
        assert [(r[2], r[3]) for r in decoded] == [(key, value) for _, key, value, _ in _records(50)]
        record_builder.uninstall()
        assert not record_builder.installed()
        assert memory_records.DefaultRecordBatchBuilder is PythonBuilder
    finally:
        if was_installed:
            record_builder.install()
        else:
            record_builder.uninstall()
