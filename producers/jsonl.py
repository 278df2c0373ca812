"""Read usage events from JSON Lines, reporting each bad line by number (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from meterline.event_check import Rejection, check_event
from meterline.events import UsageEvent


@dataclass(frozen=True, slots=True)
class JsonlLine:
    """One non-blank line: its event, or why it is not one."""

    number: int
    event: UsageEvent | None
    error: str | None


def describe_validation_error(exc: ValidationError) -> str:
    """`field: message; field: message` (JSON errors as pydantic words them)."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_line(number: int, raw: bytes, max_bytes: int) -> JsonlLine:
    """The line's event, or why the stream would dead-letter it (the stream's own checks,
    size and repeated keys included; JSON and schema problems worded field by field)."""
    checked = check_event(raw, max_bytes)
    if not isinstance(checked, Rejection):
        return JsonlLine(number, checked, None)
    if checked.kind in ("schema", "not_json"):
        try:
            UsageEvent.from_json_bytes(raw)
        except ValidationError as exc:
            return JsonlLine(number, None, describe_validation_error(exc))
    return JsonlLine(number, None, checked.reason)


def read_jsonl(path: Path, max_bytes: int) -> Iterator[JsonlLine]:
    """Yield every non-blank line of `path` (numbered from 1), valid or not; `max_bytes` is
    the stream's `stream.max_event_bytes`."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield parse_line(number, raw.rstrip(b"\r\n"), max_bytes)


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)
