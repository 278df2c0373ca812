"""meterline.producers: what applications import to record usage.

    from meterline.producers import UsageProducer
    with UsageProducer.from_settings(load_settings()) as producer:
        producer.emit(event)

Lives here: `UsageProducer` (Kafka, with the offline spool and its replayer), SDK integrations
(`record_openai`, `record_anthropic`, `metered`), `BudgetGuard`, the JSONL reader of
`meterline emit`, and seeded demo traffic.

May import: the core (`meterline.events`, `settings`, `messages`, …) and kafka-python; never the
stream, sinks or alerts, nor faust or clickhouse-connect, so an application stays light.

Optional extras, each imported by one module only and never from here (an import contract checks
it): `litellm_callback` (`MeterlineCallback`, needs `meterline[litellm]`; its pure half is
`litellm_usage`) and `otel_spans` (`MeterlineSpanProcessor`, needs `meterline[otel]`; its pure
half is `otel_usage`).
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
