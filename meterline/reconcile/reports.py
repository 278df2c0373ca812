"""The provider's usage and cost reports, read into per day x model x scope lines (pure).

Formats, as the providers document them (pages and fields: tests/data/README.md):

- OpenAI `GET /v1/organization/usage/completions`: a page of `bucket`s (`start_time`,
  `end_time` in Unix seconds) whose `results` are `organization.usage.completions.result`
  objects: `input_tokens` (cached included), `input_cached_tokens`, `output_tokens`,
  `num_model_requests`, and, when grouped, `model`, `project_id`, `api_key_id`.
- OpenAI `GET /v1/organization/costs`: buckets of `organization.costs.result`: `amount`
  {`value` (a JSON number, read exactly as a decimal), `currency`}, `line_item`
  ("<model>, <token kind>" when grouped by line item) and `project_id`.
- Anthropic `GET /v1/organizations/usage_report/messages`: `data` buckets (`starting_at`,
  `ending_at`, RFC 3339) of results with `uncached_input_tokens`, `cache_read_input_tokens`,
  `cache_creation` {`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`},
  `output_tokens`, and, when grouped, `model`, `workspace_id`, `api_key_id`.
- Anthropic `GET /v1/organizations/cost_report`: results with `amount` (a decimal string in
  cents: "123.45" is 1.2345 USD), `currency`, `model`, `token_type`, `workspace_id`.

A file holds one report: the JSON an API returned (one page, or a JSON array of pages), or the
same results flattened to CSV, one row per result, named by the API's field names (bucket
times as `start_time`/`starting_at`, nested fields with a dot: `cache_creation.ephemeral_5m_input_tokens`,
`amount.value`).

Tokens are counted the way meterline counts them: input includes cache reads and cache writes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from meterline.errors import MeterlineError

Provider = Literal["openai", "anthropic"]
ReportKind = Literal["usage", "cost"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")
CENTS = Decimal(100)


class ReportFormatError(MeterlineError):
    """A provider report could not be read; the message names the file, the place and the fix."""


@dataclass(frozen=True, slots=True)
class LineKey:
    """What a line is matched on: the UTC day, the model, and the scope (project, workspace or
    API key id) when the report was grouped by one ('' otherwise)."""

    day: date
    model: str
    scope: str = ""


@dataclass(slots=True)
class Measures:
    """Tokens by type, requests and cost on one side of a line; None where that side has no figure."""

    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    requests: int | None = None
    cost_usd: Decimal | None = None

    def add(self, other: Measures) -> None:
        for name in MEASURES:
            theirs = getattr(other, name)
            if theirs is not None:
                mine = getattr(self, name)
                setattr(self, name, theirs if mine is None else mine + theirs)


MEASURES: tuple[str, ...] = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "requests",
    "cost_usd",
)
TOKEN_MEASURES: tuple[str, ...] = MEASURES[:4]


@dataclass(frozen=True)
class ProviderReport:
    """One provider file: whose, which kind, what scope it is grouped by, and its lines."""

    provider: Provider
    kind: ReportKind
    lines: dict[LineKey, Measures] = field(default_factory=dict)
    scope_kind: str = ""
    """'project_id', 'workspace_id' or 'api_key_id' when the lines carry one, else ''."""
    unattributed_cost_usd: Decimal = Decimal(0)
    """Cost the report gave without a model (not grouped by line item, or a non-token charge)."""


def read_report(name: str, text: str, provider: Provider | None = None) -> ProviderReport:
    """Read one report file (JSON or CSV, by its content); `provider`, when given, must match."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ReportFormatError(f"{name}: not valid JSON ({exc})") from exc
        pages = document if isinstance(document, list) else [document]
        results = list(_json_results(name, pages))
    else:
        results = list(_csv_results(name, text))
    detected = _detect(name, results)
    if provider is not None and detected[0] != provider:
        raise ReportFormatError(
            f"{name}: this is an {detected[0]} {detected[1]} report, not {provider}: drop --provider or give {detected[0]}"
        )
    reader = _READERS[detected]
    return reader(name, results)


# -- the containers: JSON pages and CSV rows, both giving (bucket start, result) ---------------


def _json_results(name: str, pages: list[Any]) -> Iterator[tuple[datetime, dict[str, Any]]]:
    for page_index, page in enumerate(pages):
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise ReportFormatError(
                f"{name}: page {page_index} has no `data` list: give the JSON the usage or cost API returned"
            )
        for bucket_index, bucket in enumerate(page["data"]):
            where = f"{name}: data[{bucket_index}]"
            if not isinstance(bucket, dict):
                raise ReportFormatError(f"{where} is not an object")
            start = _bucket_start(where, bucket)
            results = bucket.get("results", bucket.get("result"))
            if not isinstance(results, list):
                raise ReportFormatError(f"{where} has no `results` list")
            for result in results:
                if not isinstance(result, dict):
                    raise ReportFormatError(f"{where}.results holds a {type(result).__name__}, not an object")
                yield start, result


def _csv_results(name: str, text: str) -> Iterator[tuple[datetime, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ReportFormatError(f"{name}: empty CSV: give a header row with the API's field names")
    for number, row in enumerate(reader, start=2):
        where = f"{name}: line {number}"
        start = _bucket_start(where, row)
        result: dict[str, Any] = {}
        for column, value in row.items():
            if column in {"start_time", "end_time", "starting_at", "ending_at"} or column is None:
                continue
            target = result
            *parents, leaf = column.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = None if value in ("", None) else value
        yield start, result


def _bucket_start(where: str, bucket: dict[str, Any]) -> datetime:
    if "start_time" in bucket:
        try:
            return datetime.fromtimestamp(int(bucket["start_time"]), UTC)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ReportFormatError(f"{where}: start_time {bucket['start_time']!r} is not Unix seconds") from exc
    if "starting_at" in bucket:
        try:
            moment = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ReportFormatError(f"{where}: starting_at {bucket['starting_at']!r} is not an RFC 3339 time") from exc
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ReportFormatError(f"{where} has neither start_time (OpenAI) nor starting_at (Anthropic)")


def _detect(name: str, results: list[tuple[datetime, dict[str, Any]]]) -> tuple[Provider, ReportKind]:
    if not results:
        raise ReportFormatError(f"{name}: the report holds no results: nothing to reconcile")
    sample = results[0][1]
    if sample.get("object") == "organization.usage.completions.result" or "num_model_requests" in sample:
        return "openai", "usage"
    if sample.get("object") == "organization.costs.result" or "line_item" in sample:
        return "openai", "cost"
    if "uncached_input_tokens" in sample:
        return "anthropic", "usage"
    if "token_type" in sample or "cost_type" in sample or ("amount" in sample and "currency" in sample):
        return "anthropic", "cost"
    raise ReportFormatError(
        f"{name}: not a report meterline knows: expected OpenAI usage/completions or costs results, "
        "or Anthropic usage_report/messages or cost_report results (see tests/data/README.md)"
    )


# -- the four readers --------------------------------------------------------------------------


def _count(where: str, result: dict[str, Any], key: str, *, required: bool = True) -> int:
    value = result.get(key)
    if value is None:
        if required:
            raise ReportFormatError(f"{where}: `{key}` is missing")
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ReportFormatError(f"{where}: `{key}` is {value!r}, not a whole number of tokens")


def _decimal(where: str, value: Any, key: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ReportFormatError(f"{where}: `{key}` is {value!r}, not a decimal amount") from exc
    if not amount.is_finite():
        raise ReportFormatError(f"{where}: `{key}` is {value!r}, not a finite amount")
    return amount


def _scope(result: dict[str, Any], kinds: Iterable[str]) -> tuple[str, str]:
    for kind in kinds:
        if result.get(kind):
            return kind, str(result[kind])
    return "", ""


def _model(result: dict[str, Any]) -> str:
    return str(result.get("model") or "").strip().lower()


def _collect(provider: Provider, kind: ReportKind, items: Iterable[tuple[LineKey, str, Measures]]) -> ProviderReport:
    lines: dict[LineKey, Measures] = {}
    scope_kinds: set[str] = set()
    unattributed = Decimal(0)
    for key, scope_kind, measures in items:
        if scope_kind:
            scope_kinds.add(scope_kind)
        if not key.model and measures.cost_usd is not None:
            unattributed += measures.cost_usd
            continue
        lines.setdefault(key, Measures()).add(measures)
    scope_kind = "+".join(sorted(scope_kinds))
    return ProviderReport(provider, kind, lines, scope_kind, unattributed)


def _openai_usage(name: str, results: list[tuple[datetime, dict[str, Any]]]) -> ProviderReport:
    def items() -> Iterator[tuple[LineKey, str, Measures]]:
        for index, (start, result) in enumerate(results):
            where = f"{name}: result {index}"
            scope_kind, scope = _scope(result, ("project_id", "api_key_id"))
            yield (
                LineKey(start.date(), _model(result), scope),
                scope_kind,
                Measures(
                    input_tokens=_count(where, result, "input_tokens"),
                    cache_read_tokens=_count(where, result, "input_cached_tokens", required=False),
                    output_tokens=_count(where, result, "output_tokens"),
                    requests=_count(where, result, "num_model_requests"),
                ),
            )

    return _collect("openai", "usage", items())


def _openai_cost(name: str, results: list[tuple[datetime, dict[str, Any]]]) -> ProviderReport:
    def items() -> Iterator[tuple[LineKey, str, Measures]]:
        for index, (start, result) in enumerate(results):
            where = f"{name}: result {index}"
            amount = result.get("amount") or {}
            currency = str(amount.get("currency") or "usd").lower()
            if currency != "usd":
                raise ReportFormatError(f"{where}: amount is in {currency}, and meterline reconciles USD")
            value = _decimal(where, amount.get("value", 0), "amount.value")
            line_item = str(result.get("line_item") or "")
            # "gpt-4o-2024-08-06, input": the model, then the kind of tokens billed.
            model = line_item.rsplit(", ", 1)[0].strip().lower() if ", " in line_item else line_item.strip().lower()
            scope_kind, scope = _scope(result, ("project_id", "api_key_id"))
            yield LineKey(start.date(), model, scope), scope_kind, Measures(cost_usd=value)

    return _collect("openai", "cost", items())


def _anthropic_usage(name: str, results: list[tuple[datetime, dict[str, Any]]]) -> ProviderReport:
    def items() -> Iterator[tuple[LineKey, str, Measures]]:
        for index, (start, result) in enumerate(results):
            where = f"{name}: result {index}"
            creation = result.get("cache_creation") or {}
            if not isinstance(creation, dict):
                raise ReportFormatError(f"{where}: `cache_creation` is not an object")
            uncached = _count(where, result, "uncached_input_tokens")
            cache_read = _count(where, result, "cache_read_input_tokens", required=False)
            cache_write = _count(where, creation, "ephemeral_5m_input_tokens", required=False) + _count(
                where, creation, "ephemeral_1h_input_tokens", required=False
            )
            scope_kind, scope = _scope(result, ("workspace_id", "api_key_id"))
            yield (
                LineKey(start.date(), _model(result), scope),
                scope_kind,
                Measures(
                    input_tokens=uncached + cache_read + cache_write,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                    output_tokens=_count(where, result, "output_tokens"),
                ),
            )

    return _collect("anthropic", "usage", items())


def _anthropic_cost(name: str, results: list[tuple[datetime, dict[str, Any]]]) -> ProviderReport:
    def items() -> Iterator[tuple[LineKey, str, Measures]]:
        for index, (start, result) in enumerate(results):
            where = f"{name}: result {index}"
            currency = str(result.get("currency") or "USD").upper()
            if currency != "USD":
                raise ReportFormatError(f"{where}: amount is in {currency}, and meterline reconciles USD")
            cents = _decimal(where, result.get("amount", "0"), "amount")
            scope_kind, scope = _scope(result, ("workspace_id",))
            yield LineKey(start.date(), _model(result), scope), scope_kind, Measures(cost_usd=cents / CENTS)

    return _collect("anthropic", "cost", items())


_READERS = {
    ("openai", "usage"): _openai_usage,
    ("openai", "cost"): _openai_cost,
    ("anthropic", "usage"): _anthropic_usage,
    ("anthropic", "cost"): _anthropic_cost,
}
