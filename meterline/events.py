"""The usage event: one per model call, the contract between applications and meterline.

Wire format: one UTF-8 JSON object per Kafka message, key = team, with CloudEvents
binary-mode headers (see `cloudevent_headers`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from uuid6 import uuid7

SCHEMA_VERSION: Final = 1
CLOUDEVENTS_TYPE = "meterline.usage.v1"
MAX_TOKENS = 10**9

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True)]
TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,64}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
MAX_TAGS = 32

OCCURRED_AT_MIN = datetime(2000, 1, 1, tzinfo=UTC)
OCCURRED_AT_MAX = datetime(2100, 1, 1, tzinfo=UTC)
"""`occurred_at` must lie in [2000-01-01, 2100-01-01) UTC. Why these: usage_hourly's `hour` is
a ClickHouse DateTime (seconds since 1970 in a UInt32, so 1970-01-01 .. 2106-02-07; outside it
the engine clamps, and the rollup would disagree with usage_events), and the budget code
turns a moment into its period and the period before in the budget's timezone, which
overflows Python's datetime near the years 1 and 9999. Usage before 2000 or after 2100 is
a clock or a producer bug, not a model call."""

# RFC 3339 date-time: seconds required, offset required (`Z` or `+hh:mm`); pydantic alone
# would also take unix numbers, missing seconds and `+hhmm`, which other producers must not send.
_RFC3339 = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
_RFC3339_RE = re.compile(_RFC3339)
RFC3339_MESSAGE = (
    "occurred_at must be an RFC 3339 timestamp with an offset, "
    "e.g. 2025-05-01T12:30:00Z or 2025-05-01T14:30:00.123+02:00"
)
RANGE_MESSAGE = "occurred_at is outside the accepted range 2000-01-01T00:00:00Z <= occurred_at < 2100-01-01T00:00:00Z"


def new_event_id() -> str:
    """A new time-ordered UUID (v7), so ids sort roughly by creation time."""
    return str(uuid7())


def _rfc3339_only(value: Any) -> Any:
    """Let datetimes through; require strings to be RFC 3339 with an offset; refuse the rest."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if _RFC3339_RE.fullmatch(value) is None:
            raise ValueError(RFC3339_MESSAGE)
        return value
    raise ValueError("occurred_at must be an RFC 3339 string (or a timezone-aware datetime)")


SCHEMA_VERSION_MESSAGE = "schema_version must be the integer 1"


def _exact_int(value: Any) -> Any:
    """Refuse `true` and `1.0` where the literal 1 is meant (pydantic's Literal takes both)."""
    if type(value) is not int:
        raise ValueError(SCHEMA_VERSION_MESSAGE)
    return value


class _SchemaVersionSchema:
    """`schema_version`: the integer 1, never `true` or `1.0` (pydantic's Literal takes both).
    From JSON a strict integer, then the literal, inside pydantic-core; from Python `_exact_int`."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        one = core_schema.literal_schema([SCHEMA_VERSION])
        return core_schema.json_or_python_schema(
            json_schema=core_schema.custom_error_schema(
                core_schema.chain_schema([core_schema.int_schema(strict=True), one]),
                "schema_version",
                custom_error_message=SCHEMA_VERSION_MESSAGE,
            ),
            python_schema=core_schema.no_info_before_validator_function(_exact_int, one),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(core_schema.literal_schema([SCHEMA_VERSION]))


class _OccurredAtSchema:
    """`occurred_at`: an aware RFC 3339 moment in [OCCURRED_AT_MIN, OCCURRED_AT_MAX).

    From JSON (the stream's hot path) every step runs inside pydantic-core, no Python call
    per event: a JSON string matching the RFC 3339 pattern, parsed as an aware datetime,
    then the range, compared as aware datetimes (no conversion, so no overflow at the year
    9999's edge). From Python (SDK callers) a datetime or such a string is taken."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        aware = core_schema.datetime_schema(tz_constraint="aware")
        in_range = core_schema.custom_error_schema(
            core_schema.datetime_schema(ge=OCCURRED_AT_MIN, lt=OCCURRED_AT_MAX),
            "occurred_at_range",
            custom_error_message=RANGE_MESSAGE,
        )
        rfc3339_text = core_schema.custom_error_schema(
            core_schema.str_schema(pattern=f"^(?:{_RFC3339})$", strict=True),
            "rfc3339",
            custom_error_message=RFC3339_MESSAGE,
        )
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([rfc3339_text, aware, in_range]),
            python_schema=core_schema.chain_schema(
                [core_schema.no_info_before_validator_function(_rfc3339_only, aware), in_range]
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"format": "date-time", "type": "string"}


OccurredAt = Annotated[datetime, _OccurredAtSchema]


class UsageEvent(BaseModel):
    """One model call's token usage."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(default_factory=new_event_id)
    occurred_at: OccurredAt
    schema_version: Annotated[Literal[1], _SchemaVersionSchema] = SCHEMA_VERSION
    team: TeamName
    project: ShortText | None = None
    app: ShortText | None = None
    user: ShortText | None = None
    environment: ShortText | None = None
    provider: ShortText
    model: ShortText
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cache_read_tokens: TokenCount = 0
    cache_write_tokens: TokenCount = 0
    reasoning_tokens: TokenCount = 0
    batch: Annotated[bool, Field(strict=True)] = False
    cache_hit: Annotated[bool, Field(strict=True)] = False
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000, strict=True)] | None = None
    status: Literal["ok", "error"] = "ok"
    request_id: ShortText | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=MAX_TAGS)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _token_relations(self) -> UsageEvent:
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cache_read_tokens + cache_write_tokens must not exceed input_tokens "
                "(input_tokens counts every prompt token, cached ones included)"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens must not exceed output_tokens (output_tokens includes them)")
        return self

    def to_json_bytes(self) -> bytes:
        """The Kafka message value: compact UTF-8 JSON without null fields."""
        # pydantic-core's serializer writes the same bytes as orjson over model_dump(mode="json")
        # in about two thirds of the time (tests/unit/test_events.py checks the equality).
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)

    @classmethod
    def from_json_bytes(cls, payload: bytes | str) -> UsageEvent:
        """Parse a message value; raises pydantic.ValidationError on any problem."""
        return cls.model_validate_json(payload)

    def cloudevent_headers(self) -> list[tuple[str, bytes]]:
        """CloudEvents binary-mode headers for this event's Kafka message."""
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", self.event_id.encode()),
            ("ce_source", (self.app or "unknown").encode()),
            ("ce_type", CLOUDEVENTS_TYPE.encode()),
            ("ce_time", _rfc3339(self.occurred_at).encode()),
            ("content-type", b"application/json"),
        ]
        return headers


def _rfc3339(moment: datetime) -> str:
    """Format like the JSON payload does, so `ce_time` equals the value's `occurred_at`."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def usage_event_json_schema() -> dict[str, Any]:
    """The JSON Schema producers in other languages validate against."""
    schema = UsageEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://meterline.dev/schemas/usage-event.v1.json"
    schema["description"] = (
        "One LLM call's token usage (meterline.usage.v1). Also: "
        "cache_read_tokens + cache_write_tokens <= input_tokens; reasoning_tokens <= output_tokens; "
        "2000-01-01T00:00:00Z <= occurred_at < 2100-01-01T00:00:00Z; no object names a key twice."
    )
    return schema
