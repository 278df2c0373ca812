"""meterline.producers: what applications import to record usage.

    from meterline.producers import UsageProducer
    with UsageProducer.from_settings(load_settings()) as producer:
        producer.emit(event)
"""

from meterline.producers.budget_guard import BudgetExceededError, BudgetGuard
from meterline.producers.errors import ProducerClosedError, ProducerError, SpoolError
from meterline.producers.handles import EmitHandle, Outcome, ProducerCounters
from meterline.producers.integrations import metered, record_anthropic, record_openai, set_default_producer
from meterline.producers.kafka_config import ProducerTuning
from meterline.producers.producer import UsageProducer
from meterline.producers.traffic import generate_events, iter_events

__all__ = [
    "BudgetExceededError",
    "BudgetGuard",
    "EmitHandle",
    "Outcome",
    "ProducerClosedError",
    "ProducerCounters",
    "ProducerError",
    "ProducerTuning",
    "SpoolError",
    "UsageProducer",
    "generate_events",
    "iter_events",
    "metered",
    "record_anthropic",
    "record_openai",
    "set_default_producer",
]
