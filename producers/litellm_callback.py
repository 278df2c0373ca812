"""`MeterlineCallback`: a LiteLLM callback that records one usage event per call (meterline[litellm]).

    import litellm
    from meterline.producers.litellm_callback import MeterlineCallback
    litellm.callbacks = [MeterlineCallback(producer)]

Sync and async calls, successes and failures (status "error"), streamed calls (LiteLLM reports
them once, assembled, with the usage of the stream's last chunk: ask for it with
`stream_options={"include_usage": True}`). The team comes from `metadata={"team": ...}` of the
call, the proxy key's team, or `default_team`. A call meterline cannot read is logged, never raised
into LiteLLM. This is the one module of meterline.producers that imports litellm: install the
`meterline[litellm]` extra to use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from meterline.producers.handles import EmitHandle
from meterline.producers.integrations import Emitter, record_built
from meterline.producers.litellm_usage import litellm_event


class MeterlineCallback(CustomLogger):
    """Emit a UsageEvent for every LiteLLM call through `producer` (default: the default producer)."""

    def __init__(
        self, producer: Emitter | None = None, *, team_key: str = "team", default_team: str | None = None
    ) -> None:
        super().__init__()
        self.producer = producer
        self.team_key = team_key
        self.default_team = default_team

    def _record(
        self, kwargs: Mapping[str, Any], response_obj: Any, start_time: Any, end_time: Any, *, failed: bool
    ) -> EmitHandle | None:
        return record_built(
            lambda: litellm_event(
                kwargs,
                None if failed else response_obj,
                failed=failed,
                team_key=self.team_key,
                default_team=self.default_team,
                start_time=start_time,
                end_time=end_time,
            ),
            self.producer,
        )

    # LiteLLM calls these with keyword arguments: the parameter names are its API.
    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        # emit() only appends to the producer's buffer (kafka-python sends on its own thread).
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)
