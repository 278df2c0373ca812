"""The chargeback report's arithmetic and renderings (pure)."""

from __future__ import annotations

from decimal import Decimal

from meterline.report.model import TOKEN_KINDS, build_report
from meterline.report.render import render_csv, render_html, render_md, shown


def line(team: str, project: str, model: str, cost: str, requests: int = 1) -> dict[str, object]:
    return {
        "team": team,
        "project": project,
        "provider": "openai",
        "model": model,
        "requests": requests,
        **dict.fromkeys(TOKEN_KINDS, 10),
        "cost_usd": cost,
        "cache_saving_usd": "0.1",
        "batch_saving_usd": "0",
    }


def test_lines_carry_the_previous_month_and_lines_gone_since_stay_visible() -> None:
    report = build_report(
        "2026-11",
        "2026-10",
        [line("a", "p", "m1", "1.000000000001"), line("b", "", "m1", "2")],
        [line("a", "p", "m1", "0.5"), line("a", "old", "m2", "3")],
        [
            {
                "team": "a",
                "budget": "monthly",
                "period": "2026-11",
                "spend_usd": "1",
                "limit_usd": "10",
                "percent": "10",
            },
            {
                "team": "a",
                "budget": "daily",
                "period": "2026-11-03",
                "spend_usd": "1",
                "limit_usd": "2",
                "percent": "50",
            },
        ],
    )
    assert [(x.key, x.cost_usd, x.previous_cost_usd) for x in report.lines] == [
        (("a", "old", "openai", "m2"), Decimal(0), Decimal(3)),
        (("a", "p", "openai", "m1"), Decimal("1.000000000001"), Decimal("0.5")),
        (("b", "", "openai", "m1"), Decimal(2), Decimal(0)),
    ]
    assert report.total_cost_usd == Decimal("3.000000000001") and report.total_previous_cost_usd == Decimal("3.5")
    (team_a, team_b) = report.teams
    assert [b.budget for b in team_a.budgets] == ["monthly"] and team_b.budgets == []
    assert (
        render_csv(report)
        .splitlines()[-1]
        .startswith("TOTAL,,,,2,20,20,20,20,20,3.000000000001,0.2,0,3.5,-0.499999999999")
    )
    assert "| b | 1 | 2.0000 |" in render_md(report)


def test_html_escapes_names_and_keeps_the_script_closed() -> None:
    report = build_report("2026-11", "2026-10", [line("<b>x</b>", "</script>", "m", "1")], [], [])
    page = render_html(report, "/* chart */")
    assert "<b>x</b>" not in page.split("<script>")[0] and "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("</script>") == 2


def test_shown_money_rounds_half_up_to_four_places() -> None:
    assert shown(Decimal("1234.56785")) == "1,234.5679" and shown(Decimal("0.00004")) == "0.0000"
