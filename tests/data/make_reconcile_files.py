"""Write the provider report files of the reconcile tests from tests/support/reconcile_truth.py.

Run from the repository root: `.venv/bin/python tests/data/make_reconcile_files.py`. The JSON is
shaped as the APIs document it (tests/data/README.md); the CSV files flatten the same results.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import reconcile_truth as truth

HERE = Path(__file__).resolve().parent


def unix(day: Any) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())


def rfc3339(day: Any) -> str:
    return datetime.combine(day, time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def planted(
    lines: tuple[truth.TruthLine, ...],
    left_out: tuple[Any, ...],
    changed: dict[tuple[Any, ...], dict[str, Any]],
    extra: truth.TruthLine,
) -> list[truth.TruthLine]:
    """The truth as the provider reports it: one line left out, some figures changed, one line more."""
    kept = [line for line in lines if (line.day, line.model, line.scope) != left_out]
    return [replace(line, **changed.get((line.day, line.model, line.scope), {})) for line in kept] + [extra]


def openai_lines() -> list[truth.TruthLine]:
    output, cost = truth.OPENAI_OUTPUT_OVER, truth.OPENAI_COST_OVER
    changes: dict[tuple[Any, ...], dict[str, Any]] = {
        output[:3]: {"output": output[3]},
        cost[:3]: {"cost_usd": cost[3]},
    }
    return planted(truth.OPENAI_TRUTH, truth.OPENAI_NOT_IN_PROVIDER, changes, truth.OPENAI_ONLY_IN_PROVIDER)


def anthropic_lines() -> list[truth.TruthLine]:
    cache_read = truth.ANTHROPIC_CACHE_READ_OVER
    changes: dict[tuple[Any, ...], dict[str, Any]] = {cache_read[:3]: {"cache_read": cache_read[3]}}
    return planted(truth.ANTHROPIC_TRUTH, truth.ANTHROPIC_NOT_IN_PROVIDER, changes, truth.ANTHROPIC_ONLY_IN_PROVIDER)


def by_day(lines: list[truth.TruthLine]) -> dict[Any, list[truth.TruthLine]]:
    days: dict[Any, list[truth.TruthLine]] = {}
    for line in lines:
        days.setdefault(line.day, []).append(line)
    return dict(sorted(days.items()))


def openai_usage(lines: list[truth.TruthLine]) -> dict[str, Any]:
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": unix(day),
                "end_time": unix(day + timedelta(days=1)),
                "results": [
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": line.input_tokens,
                        "output_tokens": line.output,
                        "input_cached_tokens": line.cache_read,
                        "input_audio_tokens": 0,
                        "output_audio_tokens": 0,
                        "num_model_requests": line.requests,
                        "project_id": line.scope,
                        "user_id": None,
                        "api_key_id": None,
                        "model": line.model,
                        "batch": None,
                    }
                    for line in day_lines
                ],
            }
            for day, day_lines in by_day(lines).items()
        ],
        "has_more": False,
        "next_page": None,
    }


def halves(amount: Decimal) -> tuple[Decimal, Decimal]:
    """An amount split in an input and an output part that add up to it exactly."""
    first = (amount * Decimal("0.4")).quantize(Decimal("1e-6"))
    return first, amount - first


def openai_costs(lines: list[truth.TruthLine]) -> str:
    """The Costs API page as text: amount.value is a JSON number, and a float would not keep it exact."""
    buckets = []
    for day, day_lines in by_day(lines).items():
        results = [
            f'{{"object": "organization.costs.result", "amount": {{"value": {part}, "currency": "usd"}}, '
            f'"line_item": "{line.model}, {kind}", "project_id": "{line.scope}"}}'
            for line in day_lines
            for kind, part in zip(("input", "output"), halves(line.cost_usd), strict=True)
        ]
        joined = ",\n    ".join(results)
        buckets.append(
            f'{{"object": "bucket", "start_time": {unix(day)}, "end_time": {unix(day + timedelta(days=1))}, '
            f'"results": [\n    {joined}\n  ]}}'
        )
    body = ",\n  ".join(buckets)
    return f'{{"object": "page", "data": [\n  {body}\n], "has_more": false, "next_page": null}}\n'


def anthropic_usage(lines: list[truth.TruthLine]) -> dict[str, Any]:
    return {
        "data": [
            {
                "starting_at": rfc3339(day),
                "ending_at": rfc3339(day + timedelta(days=1)),
                "results": [
                    {
                        "uncached_input_tokens": line.uncached_input,
                        "cache_creation": {
                            # The truth's cache writes: the 5-minute cache on day 2, the 1-hour one after.
                            "ephemeral_1h_input_tokens": line.cache_write if day != truth.D2 else 0,
                            "ephemeral_5m_input_tokens": line.cache_write if day == truth.D2 else 0,
                        },
                        "cache_read_input_tokens": line.cache_read,
                        "output_tokens": line.output,
                        "server_tool_use": {"web_search_requests": 0},
                        "api_key_id": None,
                        "workspace_id": line.scope,
                        "model": line.model,
                        "service_tier": "standard",
                        "context_window": "0-200k",
                    }
                    for line in day_lines
                ],
            }
            for day, day_lines in by_day(lines).items()
        ],
        "has_more": False,
        "next_page": None,
    }


def anthropic_costs(lines: list[truth.TruthLine]) -> dict[str, Any]:
    def result(line: truth.TruthLine, token_type: str, usd: Decimal, label: str) -> dict[str, Any]:
        return {
            "currency": "USD",
            "amount": f"{usd * 100:f}",  # cents, as a decimal string
            "workspace_id": line.scope,
            "description": f"{line.model} Usage - {label}",
            "cost_type": "tokens",
            "context_window": "0-200k",
            "model": line.model,
            "service_tier": "standard",
            "token_type": token_type,
        }

    return {
        "data": [
            {
                "starting_at": rfc3339(day),
                "ending_at": rfc3339(day + timedelta(days=1)),
                "results": [
                    item
                    for line in day_lines
                    for item in (
                        result(line, "uncached_input_tokens", halves(line.cost_usd)[0], "Input Tokens"),
                        result(line, "output_tokens", halves(line.cost_usd)[1], "Output Tokens"),
                    )
                ],
            }
            for day, day_lines in by_day(lines).items()
        ],
        "has_more": False,
        "next_page": None,
    }


def flatten(document: dict[str, Any], start_key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The results of a JSON report as CSV rows, nested fields named with a dot."""
    rows: list[dict[str, Any]] = []
    for bucket in document["data"]:
        for item in bucket["results"]:
            row: dict[str, Any] = {start_key: bucket[start_key]}
            for key, value in item.items():
                if isinstance(value, dict):
                    row.update({f"{key}.{inner}": v for inner, v in value.items()})
                else:
                    row[key] = "" if value is None else value
            rows.append(row)
    columns = list(dict.fromkeys(column for row in rows for column in row))
    return columns, rows


def write_csv(path: Path, document: dict[str, Any], start_key: str) -> None:
    columns, rows = flatten(document, start_key)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    usage = openai_usage(openai_lines())
    (HERE / "openai_usage_completions.json").write_text(json.dumps(usage, indent=2) + "\n", encoding="utf-8")
    (HERE / "openai_costs.json").write_text(openai_costs(openai_lines()), encoding="utf-8")
    write_csv(HERE / "openai_usage_completions.csv", usage, "start_time")
    report = anthropic_usage(anthropic_lines())
    (HERE / "anthropic_usage_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_csv(HERE / "anthropic_usage_report.csv", report, "starting_at")
    costs = anthropic_costs(anthropic_lines())
    (HERE / "anthropic_cost_report.json").write_text(json.dumps(costs, indent=2) + "\n", encoding="utf-8")
    write_csv(HERE / "anthropic_cost_report.csv", costs, "starting_at")


if __name__ == "__main__":
    main()
