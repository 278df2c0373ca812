"""Errors of meterline.producers."""

from __future__ import annotations

from meterline.errors import MeterlineError


class ProducerError(MeterlineError):
    """Root of the producer SDK's errors."""


class ProducerClosedError(ProducerError):
    """emit() was called after close(); create a new UsageProducer."""

    def __init__(self) -> None:
        super().__init__("this UsageProducer is closed; create a new one (or emit before close())")


class SpoolError(ProducerError):
    """The offline spool folder cannot be used; the message says which folder and why."""


class UsageExtractionError(ProducerError):
    """A provider response carried no usage meterline understands."""


class NoDefaultProducerError(ProducerError):
    """record_*() was called without a producer and none was installed as the default."""

    def __init__(self) -> None:
        super().__init__(
            "no producer given and no default installed: pass producer=..., or call "
            "meterline.producers.set_default_producer(UsageProducer.from_settings(settings))"
        )
