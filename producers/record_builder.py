"""kafka-python's record batches, built by aiokafka's compiled builder.

kafka-python encodes every record of a batch in pure Python (varints, headers, sizes): a
quarter of the producer's CPU in a profile, and the producer is CPU-bound on one core (the
GIL). aiokafka, installed with faust-streaming, ships a builder for the same wire format
(Kafka record batch v2) compiled with Cython. `install()` makes kafka-python build its batches
with it; everything else (accumulator, idempotence, sequence numbers, retries) stays
kafka-python's. Unit tests compare the batches byte for byte with kafka-python's own builder.

The one difference: aiokafka fixes the transactional flag when a batch starts, kafka-python
sets it when the batch is drained, so `build()` sets that header bit (and the CRC over it)
itself when a transactional producer asks for it.

Imports inside functions load heavy libraries (Kafka clients, faust, aiohttp, pyarrow, genai-prices'
data) only when a function needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka.record import memory_records
from kafka.record.default_records import DefaultRecordBatchBuilder as PythonRecordBatchBuilder
from kafka.record.util import calc_crc32c

try:
    from aiokafka.record._crecords.default_records import (
        DefaultRecordBatchBuilder as _CompiledBuilder,
    )
except ImportError:  # aiokafka without its C extensions: keep kafka-python's builder
    _CompiledBuilder = None

_ATTRIBUTES_OFFSET = PythonRecordBatchBuilder.ATTRIBUTES_OFFSET
_CRC_OFFSET = PythonRecordBatchBuilder.CRC_OFFSET
_TRANSACTIONAL_MASK = PythonRecordBatchBuilder.TRANSACTIONAL_MASK


class CompiledRecordBatchBuilder:
    """kafka-python's DefaultRecordBatchBuilder interface over aiokafka's compiled builder."""

    __slots__ = ("_builder", "_transactional", "append", "size")

    def __init__(
        self,
        magic: int,
        compression_type: int,
        is_transactional: bool,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        batch_size: int,
    ) -> None:
        self._builder = _CompiledBuilder(
            magic, compression_type, 0, producer_id, producer_epoch, base_sequence, batch_size
        )
        self._transactional = bool(is_transactional)
        # Bound C methods: no Python frame per record.
        self.append = self._builder.append
        self.size = self._builder.size

    def set_producer_state(
        self, producer_id: int, producer_epoch: int, base_sequence: int, is_transactional: bool
    ) -> None:
        self._builder.set_producer_state(producer_id, producer_epoch, base_sequence)
        self._transactional = bool(is_transactional)

    @property
    def producer_id(self) -> int:
        return int(self._builder.producer_id)

    @property
    def producer_epoch(self) -> int:
        return int(self._builder.producer_epoch)

    @property
    def base_sequence(self) -> int:
        return int(self._builder.base_sequence)

    def build(self) -> bytearray:
        buffer: bytearray = self._builder.build()
        if self._transactional:
            (attributes,) = struct.unpack_from(">h", buffer, _ATTRIBUTES_OFFSET)
            struct.pack_into(">h", buffer, _ATTRIBUTES_OFFSET, attributes | _TRANSACTIONAL_MASK)
            crc = calc_crc32c(memoryview(buffer)[_ATTRIBUTES_OFFSET:])
            struct.pack_into(">I", buffer, _CRC_OFFSET, crc)
        return buffer


class _CompiledSizeEstimate(PythonRecordBatchBuilder):
    """kafka-python's builder class (its codec constants) with the compiled size estimate,
    which KafkaProducer.send calls for every record."""

    if _CompiledBuilder is not None:
        estimate_size_in_bytes = staticmethod(_CompiledBuilder.estimate_size_in_bytes)


def available() -> bool:
    """True when aiokafka's compiled builder can be imported here."""
    return _CompiledBuilder is not None


def install() -> bool:
    """Make kafka-python build record batches with the compiled builder (process-wide, for
    every kafka-python producer; idempotent). False when it is not available."""
    if _CompiledBuilder is None:
        return False
    import kafka.producer.kafka as kafka_producer

    memory_records.DefaultRecordBatchBuilder = CompiledRecordBatchBuilder
    kafka_producer.DefaultRecordBatchBuilder = _CompiledSizeEstimate
    return True


def uninstall() -> None:
    """Back to kafka-python's pure-Python builder."""
    import kafka.producer.kafka as kafka_producer

    memory_records.DefaultRecordBatchBuilder = PythonRecordBatchBuilder
    kafka_producer.DefaultRecordBatchBuilder = PythonRecordBatchBuilder


def installed() -> bool:
    """True while kafka-python builds its batches with the compiled builder."""
    builder: Any = memory_records.DefaultRecordBatchBuilder
    return builder is CompiledRecordBatchBuilder
