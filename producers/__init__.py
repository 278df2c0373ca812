"""meterline.producers: what applications import to record usage.

    from meterline.producers import UsageProducer
    with UsageProducer.from_settings(load_settings()) as producer:
        producer.emit(event)
"""

from meterline.producers.errors import ProducerClosedError, ProducerError, SpoolError
from meterline.producers.handles import EmitHandle, Outcome, ProducerCounters
from meterline.producers.kafka_config import ProducerTuning
from meterline.producers.producer import UsageProducer

__all__ = [
    "EmitHandle",
    "Outcome",
    "ProducerClosedError",
    "ProducerCounters",
    "ProducerError",
    "ProducerTuning",
    "SpoolError",
    "UsageProducer",
]
