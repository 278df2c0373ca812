"""One-line recording of model calls: `record_openai`, `record_anthropic`, `metered`.

Recording never raises into the application for a response it cannot read (it logs a
warning and returns None). The only error is a missing producer: pass `producer=` or install
one with `set_default_producer`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from meterline.events import UsageEvent
from meterline.producers.errors import NoDefaultProducerError, UsageExtractionError
from meterline.producers.handles import EmitHandle
from meterline.producers.usage_extract import (
    Now,
    ResponseKind,
    detect_kind,
    usage_event,
    usage_from_anthropic,
    usage_from_openai,
    utc_now,
)

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class Emitter(Protocol):
    def emit(self, event: UsageEvent) -> EmitHandle: ...


_default_producer: Emitter | None = None


def set_default_producer(producer: Emitter | None) -> None:
    """Install the producer record_*() and metered() use when none is passed."""
    global _default_producer
    _default_producer = producer


def _producer(producer: Emitter | None) -> Emitter:
    chosen = producer if producer is not None else _default_producer
    if chosen is None:
        raise NoDefaultProducerError()
    return chosen


def record_built(build: Callable[[], UsageEvent], producer: Emitter | None) -> EmitHandle | None:
    """Emit the event `build` returns; log (never raise) when it cannot be built from the response."""
    target = _producer(producer)
    try:
        event = build()
    except (UsageExtractionError, ValidationError) as exc:
        log.warning("usage not recorded: %s", exc)
        return None
    return target.emit(event)


def record_openai(
    response: Any, *, team: str, producer: Emitter | None = None, now: Now = utc_now, **context: Any
) -> EmitHandle | None:
    """Record an OpenAI chat-completions or responses-API response's usage."""
    return record_built(lambda: usage_from_openai(response, team=team, now=now, **context), producer)


def record_anthropic(
    message: Any, *, team: str, producer: Emitter | None = None, now: Now = utc_now, **context: Any
) -> EmitHandle | None:
    """Record an Anthropic message's usage (input_tokens normalised to include cache tokens)."""
    return record_built(lambda: usage_from_anthropic(message, team=team, now=now, **context), producer)


class metered:  # noqa: N801 - used like a function: `with metered(...)` / `@metered(...)`
    """Time a model call and record its usage, as a context manager or a decorator.

        with metered(team="search", producer=p) as call:
            call.record(client.chat.completions.create(...))

        @metered(team="search", producer=p)
        def ask(...): return client.messages.create(...)   # the return value is recorded

    An exception inside records `status="error"` (tokens 0 unless a response was recorded;
    needs `provider` and `model` then) and is re-raised unchanged.
    """

    def __init__(
        self,
        *,
        team: str,
        producer: Emitter | None = None,
        now: Now = utc_now,
        timer: Callable[[], float] = time.perf_counter,
        **context: Any,
    ) -> None:
        self.team = team
        self.producer = producer
        self.now = now
        self.timer = timer
        self.context = context
        self.response: Any = None
        self.handle: EmitHandle | None = None
        self._started_at = 0.0
        self._occurred_at: Any = None

    def record(self, response: Any) -> Any:
        """Remember the provider response whose usage is recorded on exit; return it."""
        self.response = response
        return response

    def __enter__(self) -> metered:
        self._occurred_at = self.now()
        self._started_at = self.timer()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        latency_ms = max(0, round((self.timer() - self._started_at) * 1000))
        fields = {"occurred_at": self._occurred_at, "latency_ms": latency_ms, **self.context}
        if exc_type is not None:
            fields["status"] = "error"
        self.handle = record_built(lambda: self._event(fields), self.producer)

    def _event(self, fields: dict[str, Any]) -> UsageEvent:
        if self.response is not None:
            kind: ResponseKind = detect_kind(self.response)
            return usage_event(self.response, team=self.team, kind=kind, now=self.now, **fields)
        if "provider" not in fields or "model" not in fields:
            raise UsageExtractionError("metered() saw no response: pass provider= and model= to record calls that fail")
        return UsageEvent(team=self.team, **fields)

    def _fresh(self) -> metered:
        return metered(team=self.team, producer=self.producer, now=self.now, timer=self.timer, **self.context)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh() as call:
                    return call.record(await func(*args, **kwargs))

            return async_wrapper  # type: ignore[return-value]  # the wrapper keeps func's signature (functools.wraps); mypy cannot see it

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as call:
                return call.record(func(*args, **kwargs))

        return wrapper  # type: ignore[return-value]  # the wrapper keeps func's signature (functools.wraps); mypy cannot see it
