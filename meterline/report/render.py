"""The chargeback report as CSV (exact money), Markdown, or self-contained HTML with charts (pure)."""

from __future__ import annotations

import csv
import html
import io
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

from meterline.report.model import TOKEN_KINDS, ChargebackReport

ReportFormat = Literal["html", "csv", "md"]
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)
LINE_COLUMNS = (
    "team",
    "project",
    "provider",
    "model",
    "requests",
    *TOKEN_KINDS,
    "cost_usd",
    "cache_saving_usd",
    "batch_saving_usd",
    "previous_cost_usd",
    "change_usd",
)
SHOWN_PLACES = Decimal("0.0001")


def shown(amount: Decimal) -> str:
    """Money for people: 4 places, half up (CSV keeps all 12)."""
    return f"{amount.quantize(SHOWN_PLACES, rounding=ROUND_HALF_UP):,}"


def exact(amount: Decimal) -> str:
    return format(amount, "f")


def render_csv(report: ChargebackReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LINE_COLUMNS)
    for line in report.lines:
        writer.writerow(
            [
                line.team,
                line.project,
                line.provider,
                line.model,
                line.requests,
                *(line.tokens[k] for k in TOKEN_KINDS),
                exact(line.cost_usd),
                exact(line.cache_saving_usd),
                exact(line.batch_saving_usd),
                exact(line.previous_cost_usd),
                exact(line.change_usd),
            ]
        )
    writer.writerow(
        [
            "TOTAL",
            "",
            "",
            "",
            report.total_requests,
            *(report.total_tokens(k) for k in TOKEN_KINDS),
            exact(report.total_cost_usd),
            exact(sum((x.cache_saving_usd for x in report.lines), Decimal(0))),
            exact(sum((x.batch_saving_usd for x in report.lines), Decimal(0))),
            exact(report.total_previous_cost_usd),
            exact(report.total_cost_usd - report.total_previous_cost_usd),
        ]
    )
    return out.getvalue()


def _team_rows(report: ChargebackReport) -> list[list[str]]:
    rows = []
    for team in report.teams:
        budgets = "; ".join(
            f"{b.budget}: {shown(b.spend_usd)} of {shown(b.limit_usd)} ({b.percent:.1f} %)" for b in team.budgets
        )
        rows.append(
            [
                team.team,
                f"{team.requests:,}",
                shown(team.cost_usd),
                shown(team.savings_usd),
                shown(team.previous_cost_usd),
                shown(team.cost_usd - team.previous_cost_usd),
                budgets or "no monthly budget",
            ]
        )
    return rows


TEAM_HEADINGS = ["team", "requests", "spend USD", "savings USD", "previous USD", "change USD", "monthly budgets"]
LINE_HEADINGS = [
    "team",
    "project",
    "provider",
    "model",
    "requests",
    "input",
    "output",
    "cache read",
    "cache write",
    "reasoning",
    "spend USD",
    "cache saving USD",
    "batch saving USD",
    "previous USD",
    "change USD",
]


def _line_rows(report: ChargebackReport) -> list[list[str]]:
    return [
        [
            line.team,
            line.project or "(none)",
            line.provider,
            line.model,
            f"{line.requests:,}",
            *(f"{line.tokens[k]:,}" for k in TOKEN_KINDS),
            shown(line.cost_usd),
            shown(line.cache_saving_usd),
            shown(line.batch_saving_usd),
            shown(line.previous_cost_usd),
            shown(line.change_usd),
        ]
        for line in report.lines
    ]


def _summary(report: ChargebackReport) -> str:
    return (
        f"{report.total_requests:,} requests, {shown(report.total_cost_usd)} USD spent "
        f"({shown(report.total_savings_usd)} USD saved by cache and batch); "
        f"{report.previous_period}: {shown(report.total_previous_cost_usd)} USD"
    )


def render_md(report: ChargebackReport) -> str:
    def table(headings: list[str], rows: list[list[str]]) -> list[str]:
        cells = [headings, ["---"] * len(headings), *rows]
        return ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]

    out = [f"# LLM chargeback report {report.period}", "", _summary(report) + ".", "", "## Per team", ""]
    out += table(TEAM_HEADINGS, _team_rows(report))
    out += ["", "## Per team, project and model", ""]
    out += table(LINE_HEADINGS, _line_rows(report))
    out += ["", "Spend and savings in USD; every figure is a sum over meterline's usage_hourly rollup (UTC month).", ""]
    return "\n".join(out)


def render_html(report: ChargebackReport, chart_js: str) -> str:
    """One HTML file: the tables, and charts drawn by the inlined Chart.js (works offline)."""

    def table(headings: list[str], rows: list[list[str]], table_id: str) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    chart_data = {
        "teams": [t.team for t in report.teams],
        "current": [float(t.cost_usd) for t in report.teams],  # drawing only; the tables hold the figures
        "previous": [float(t.previous_cost_usd) for t in report.teams],
        "period": report.period,
        "previousPeriod": report.previous_period,
    }
    data = json.dumps(chart_data).replace("</", "<\\/")
    script = chart_js.replace("</script", "<\\/script")
    title = html.escape(f"LLM chargeback report {report.period}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:14px system-ui,sans-serif;margin:24px;color:#1d2430}} table{{border-collapse:collapse;margin:8px 0 24px}}
th,td{{padding:3px 8px;border-bottom:1px solid #dde2ea;text-align:left}} td:nth-child(n+5){{text-align:right}}
.chart{{position:relative;height:320px;max-width:900px}}</style></head>
<body><h1>{title}</h1><p id="summary">{html.escape(_summary(report))}.</p>
<h2>Spend per team, {html.escape(report.period)} against {html.escape(report.previous_period)}</h2>
<div class="chart"><canvas id="chart-teams"></canvas></div>
<h2>Per team</h2>{table(TEAM_HEADINGS, _team_rows(report), "teams")}
<h2>Per team, project and model</h2>{table(LINE_HEADINGS, _line_rows(report), "lines")}
<p>Spend and savings in USD; every figure is a sum over meterline's usage_hourly rollup (UTC month).</p>
<script>{script}</script>
<script>
const d = {data};
new Chart(document.getElementById("chart-teams"), {{type: "bar", options: {{responsive: true, maintainAspectRatio: false, animation: false}},
  data: {{labels: d.teams, datasets: [{{label: d.previousPeriod, data: d.previous, backgroundColor: "#9ca3af"}},
                                      {{label: d.period, data: d.current, backgroundColor: "#2563eb"}}]}}}});
</script></body></html>
"""
