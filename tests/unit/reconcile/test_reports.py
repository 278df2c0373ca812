"""Reading the providers' documented reports, and matching them line by line (pure)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.reconcile.matching import Tolerance, merge_reports, reconcile, without_scope
from meterline.reconcile.reports import LineKey, Measures, ReportFormatError, read_report
from tests.support import reconcile_truth as truth

DATA = Path(__file__).resolve().parents[2] / "data"


def report(name: str):
    path = DATA / name
    return read_report(name, path.read_text(encoding="utf-8"))


def truth_lines(lines: tuple[truth.TruthLine, ...], *, requests: bool) -> dict[LineKey, Measures]:
    return {
        LineKey(line.day, line.model, line.scope): Measures(
            input_tokens=line.input_tokens,
            cache_read_tokens=line.cache_read,
            cache_write_tokens=line.cache_write,
            output_tokens=line.output,
            requests=line.requests if requests else None,
            cost_usd=line.cost_usd,
        )
        for line in lines
    }


def test_openai_usage_reads_tokens_by_type_and_requests_per_day_model_and_project() -> None:
    usage = report("openai_usage_completions.json")
    assert (usage.provider, usage.kind, usage.scope_kind) == ("openai", "usage", "project_id")
    line = usage.lines[LineKey(date(2026, 11, 2), "gpt-4o-2024-08-06", "proj_search")]
    assert (line.input_tokens, line.cache_read_tokens, line.output_tokens, line.requests) == (12000, 4000, 3000, 4)
    assert line.cache_write_tokens is None and line.cost_usd is None, "the usage API has neither"


def test_openai_costs_take_the_model_from_the_line_item_and_keep_amounts_exact() -> None:
    costs = report("openai_costs.json")
    assert (costs.provider, costs.kind) == ("openai", "cost")
    line = costs.lines[LineKey(date(2026, 11, 2), "gpt-4o-mini-2024-07-18", "proj_support")]
    assert line.cost_usd == Decimal("0.0123") and line.input_tokens is None


def test_anthropic_usage_counts_cache_reads_and_both_cache_writes_into_input() -> None:
    usage = report("anthropic_usage_report.json")
    assert (usage.provider, usage.kind, usage.scope_kind) == ("anthropic", "usage", "workspace_id")
    day2 = usage.lines[LineKey(date(2026, 11, 2), "claude-sonnet-4-20250514", "wrkspc_a")]
    assert (day2.input_tokens, day2.cache_read_tokens, day2.cache_write_tokens, day2.output_tokens) == (
        17000,
        5000,
        2000,
        3000,
    )
    day3 = usage.lines[LineKey(date(2026, 11, 3), "claude-sonnet-4-20250514", "wrkspc_a")]
    assert day3.cache_write_tokens == 500, "the 1-hour cache writes count too"
    assert day2.requests is None, "the usage report counts no requests"


def test_anthropic_cost_amounts_are_cents() -> None:
    costs = report("anthropic_cost_report.json")
    assert costs.lines[LineKey(date(2026, 11, 2), "claude-3-5-haiku-20241022", "wrkspc_b")].cost_usd == Decimal("0.036")


@pytest.mark.parametrize("stem", ["openai_usage_completions", "anthropic_usage_report", "anthropic_cost_report"])
def test_the_csv_export_reads_as_its_json(stem: str) -> None:
    assert report(f"{stem}.csv").lines == report(f"{stem}.json").lines


def test_the_planted_openai_gaps_and_only_they_are_found() -> None:
    merged = merge_reports([report("openai_usage_completions.json"), report("openai_costs.json")])
    result = reconcile(merged, truth_lines(truth.OPENAI_TRUTH, requests=True), Tolerance())
    found = {(line.key.day, line.key.model, line.key.scope): (line.status, line.differing) for line in result.lines}
    assert found == truth.EXPECTED_OPENAI
    assert result.has_gap


def test_the_planted_anthropic_gaps_and_only_they_are_found() -> None:
    merged = merge_reports([report("anthropic_usage_report.csv"), report("anthropic_cost_report.json")])
    result = reconcile(merged, truth_lines(truth.ANTHROPIC_TRUTH, requests=True), Tolerance())
    found = {(line.key.day, line.key.model, line.key.scope): (line.status, line.differing) for line in result.lines}
    assert found == truth.EXPECTED_ANTHROPIC


def test_the_tolerance_decides_what_is_over() -> None:
    merged = report("openai_usage_completions.json")
    ours = truth_lines(truth.OPENAI_TRUTH, requests=True)
    loose = reconcile(merged, ours, Tolerance(relative=Decimal("0.06")))
    line = next(
        li for li in loose.lines if li.key == LineKey(date(2026, 11, 3), "gpt-4o-mini-2024-07-18", "proj_support")
    )
    assert line.status == "matched", "4200 vs 4000 is within 6 %"
    tight = Tolerance(relative=Decimal(0), min_usd=Decimal("0.01"))
    assert tight.agrees("cost_usd", Decimal("1.005"), Decimal("1")) and not tight.agrees("output_tokens", 1001, 1000)


def test_reports_grouped_differently_meet_without_their_scope() -> None:
    costs = without_scope(report("openai_costs.json"))
    merged = merge_reports([report("openai_usage_completions.json"), costs])
    assert merged.scope_kind == "" and all(key.scope == "" for key in merged.lines)
    line = merged.lines[LineKey(date(2026, 11, 2), "gpt-4o-2024-08-06")]
    assert line.input_tokens == 12000 and line.cost_usd == Decimal("0.555")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"object": "list"}', "has no `data` list"),
        ('{"data": [{"results": []}]}', "neither start_time"),
        ('{"data": [{"start_time": 1793577600, "results": [{"foo": 1}]}]}', "not a report meterline knows"),
        ('{"data": []}', "holds no results"),
        (
            '{"data": [{"start_time": 1793577600, "results": [{"num_model_requests": 1, "input_tokens": -4, "output_tokens": 1}]}]}',
            "`input_tokens` is -4, not a whole number",
        ),
        (
            '{"data": [{"starting_at": "2026-11-02T00:00:00Z", "results": [{"amount": "1", "currency": "EUR", "model": "m"}]}]}',
            "in EUR",
        ),
        ("starting_at,foo\n2026-11-02T00:00:00Z,1\n", "not a report meterline knows"),
    ],
)
def test_a_bad_file_says_what_is_wrong_and_where(text: str, message: str) -> None:
    with pytest.raises(ReportFormatError, match=message) as info:
        read_report("report.json", text)
    assert str(info.value).startswith("report.json")


def test_a_provider_that_does_not_match_the_file_is_refused() -> None:
    text = (DATA / "anthropic_usage_report.json").read_text(encoding="utf-8")
    with pytest.raises(ReportFormatError, match="anthropic usage report, not openai"):
        read_report("a.json", text, "openai")
