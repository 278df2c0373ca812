"""The dashboard's data endpoint on a real embedded ClickHouse: named queries only, equal to the views."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from meterline.budgets.rules import forecast_spend
from meterline.settings import BudgetConfig, Settings
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.named_queries import NAMED_QUERIES, DashboardFilter
from meterline.sinks.query import QueryLimits, prepare_query
from tests.support.cost_data import LIMITS, THRESHOLDS, write_cost_data
from tests.support.dashboard_server import serve_dashboard

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
NOVEMBER_SQL = "occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01'"


def dashboard_settings(**stream: Any) -> Settings:
    budgets = [
        BudgetConfig(team=team, name="monthly", limit_usd=limit, thresholds=list(THRESHOLDS))
        for team, limit in LIMITS.items()
    ]
    return Settings(budgets=budgets, stream=stream)


@pytest.fixture(scope="module")
def cost_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("dashboard") / "clickhouse"
    path.mkdir()
    dsn = f"chdb://{path}"
    client = open_client(dsn)
    apply_migrations(client)
    write_cost_data(client)
    client.close()
    return dsn


@pytest.fixture(scope="module")
def base_url(cost_dsn: str) -> Iterator[str]:
    with serve_dashboard(cost_dsn, dashboard_settings(), NOW) as url:
        yield url


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def api(base_url: str, name: str, **params: str) -> list[dict[str, Any]]:
    status, _, body = get(f"{base_url}/api/dashboard/{name}?" + urllib.parse.urlencode(params))
    assert status == 200, body
    rows: list[dict[str, Any]] = json.loads(body)["rows"]
    return rows


def sql(dsn_client: Any, query: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in dsn_client.query(query).result_rows]


@pytest.fixture(scope="module")
def view_client(cost_dsn: str) -> Iterator[Any]:
    client = open_client(cost_dsn)
    yield client
    client.close()


def test_spend_over_time_per_day_equals_the_spend_per_team_day_view(base_url: str, view_client: Any) -> None:
    rows = api(base_url, "spend_over_time", **NOVEMBER)
    expected = sql(
        view_client,
        "SELECT day, team, requests, cost_usd FROM spend_per_team_day "
        "WHERE day >= '2026-11-01' AND day < '2026-12-01' ORDER BY day, team",
    )
    assert [(r["bucket_start"][:10], r["team"], r["requests"], Decimal(r["cost_usd"])) for r in rows] == [
        (day.isoformat(), team, requests, cost) for day, team, requests, cost in expected
    ]
    assert len(rows) == 14 * 4  # the data ends on 2026-11-14; four teams


def test_hourly_buckets_add_up_to_the_days(base_url: str) -> None:
    days = api(base_url, "spend_over_time", **{"from": "2026-11-03", "to": "2026-11-04"})
    hours = api(base_url, "spend_over_time", bucket="hour", **{"from": "2026-11-03", "to": "2026-11-04"})
    per_day: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in hours:
        per_day[(row["bucket_start"][:10], row["team"])] += Decimal(row["cost_usd"])
    assert {(r["bucket_start"][:10], r["team"]): Decimal(r["cost_usd"]) for r in days} == dict(per_day)
    assert len(hours) > len(days)


def test_totals_equal_the_raw_events_to_the_last_digit(base_url: str, view_client: Any) -> None:
    (total,) = api(base_url, "totals", **NOVEMBER)
    (raw,) = sql(
        view_client,
        "SELECT count(), sum(cost_usd), sum(cache_saving_usd), sum(batch_saving_usd), countIf(NOT priced) "
        "FROM usage_events FINAL WHERE occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01'",
    )
    got = (
        total["requests"],
        Decimal(total["cost_usd"]),
        Decimal(total["cache_saving_usd"]),
        Decimal(total["batch_saving_usd"]),
        total["unpriced_requests"],
    )
    assert got == raw
    assert raw[0] > 1000 and raw[4] > 0


def test_top_models_providers_and_savings_equal_their_views(base_url: str, view_client: Any) -> None:
    models = api(base_url, "top_models", **NOVEMBER)
    expected = sql(
        view_client,
        "SELECT provider, model, requests, cost_usd FROM spend_per_model WHERE month = '2026-11-01' "
        "ORDER BY cost_usd DESC, provider, model",
    )
    assert [(r["provider"], r["model"], r["requests"], Decimal(r["cost_usd"])) for r in models] == expected
    providers = api(base_url, "top_providers", **NOVEMBER)
    by_provider: dict[str, Decimal] = defaultdict(Decimal)
    for provider, _, _, cost in expected:
        by_provider[provider] += cost
    assert {r["provider"]: Decimal(r["cost_usd"]) for r in providers} == dict(by_provider)
    savings = api(base_url, "savings", **NOVEMBER)
    expected_savings = sql(
        view_client,
        "SELECT team, cache_hits, cache_saving_usd, batch_requests, batch_saving_usd, total_saving_usd "
        "FROM cache_batch_savings WHERE month = '2026-11-01' ORDER BY team",
    )
    assert [
        (
            r["team"],
            r["cache_hits"],
            Decimal(r["cache_saving_usd"]),
            r["batch_requests"],
            Decimal(r["batch_saving_usd"]),
            Decimal(r["total_saving_usd"]),
        )
        for r in savings
    ] == expected_savings


def test_filters_narrow_every_query_to_one_team_project_and_model(base_url: str, view_client: Any) -> None:
    picked = {"team": "search", "project": "ranker", "model": "gpt-4o", **NOVEMBER}
    (total,) = api(base_url, "totals", **picked)
    (raw,) = sql(
        view_client,
        "SELECT count(), sum(cost_usd) FROM usage_events FINAL WHERE team = 'search' AND project = 'ranker' "
        "AND model = 'gpt-4o' AND occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01'",
    )
    assert (total["requests"], Decimal(total["cost_usd"])) == raw and raw[0] > 0
    assert {r["team"] for r in api(base_url, "spend_over_time", **picked)} == {"search"}
    assert [(r["provider"], r["model"]) for r in api(base_url, "top_models", **picked)] == [("openai", "gpt-4o")]


def test_budgets_carry_the_alerts_forecast_and_the_configured_thresholds(base_url: str, view_client: Any) -> None:
    budgets = api(base_url, "budgets", **NOVEMBER)
    stored = sql(
        view_client, "SELECT team, spend_usd, limit_usd FROM spend_vs_budget WHERE period = '2026-11' ORDER BY team"
    )
    assert [(b["team"], Decimal(b["spend_usd"]), Decimal(b["limit_usd"])) for b in budgets] == stored
    elapsed = (NOW - datetime(2026, 11, 1, tzinfo=UTC)) / (
        datetime(2026, 12, 1, tzinfo=UTC) - datetime(2026, 11, 1, tzinfo=UTC)
    )
    for budget, (_, spend, limit) in zip(budgets, stored, strict=True):
        assert Decimal(budget["forecast_usd"]) == forecast_spend(spend, elapsed)
        assert [Decimal(t) for t in budget["thresholds"]] == list(THRESHOLDS)
        assert [Decimal(t) for t in budget["threshold_usd"]] == [limit * t / 100 for t in THRESHOLDS]
    october = api(base_url, "budgets", **{"from": "2026-10-01", "to": "2026-10-31"})
    assert {b["period"] for b in october} == {"2026-10"} and all(b["forecast_usd"] is None for b in october)


def test_unpriced_dead_letters_and_alerts_come_with_their_reasons(base_url: str) -> None:
    unpriced = api(base_url, "unpriced", **NOVEMBER)
    assert unpriced and {r["unpriced_reason"] for r in unpriced} == {"no price for self-hosted/llama-internal-70b"}
    dlq = api(base_url, "dlq", **NOVEMBER)
    assert sorted((r["error_kind"], r["dead_letters"]) for r in dlq) == [("not_json", 6), ("schema", 6)]
    alerts = api(base_url, "alerts", **NOVEMBER)
    assert [(a["channel"], a["status"]) for a in alerts] == [
        ("console", "sending"),
        ("email", "failed"),
        ("slack", "sent"),
    ]
    assert alerts[1]["reason"] == "SMTP 550 mailbox unavailable"


def test_a_filter_value_is_bound_never_spliced(base_url: str, view_client: Any) -> None:
    hostile = "search' OR 1=1 --"
    assert api(base_url, "totals", team=hostile, **NOVEMBER)[0]["requests"] == 0
    assert api(base_url, "spend_over_time", team=hostile, **NOVEMBER) == []
    assert sql(view_client, "SELECT count() FROM usage_events") != [(0,)]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/dashboard/nope", 404, "use one of"),
        ("/api/dashboard/totals?from=yesterday", 400, "from must be a date"),
        ("/api/dashboard/totals?from=2026-11-02&to=2026-11-01", 400, "before"),
        ("/api/dashboard/totals?from=2020-01-01&to=2026-11-01", 400, "at most 400"),
        ("/api/dashboard/spend_over_time?bucket=hour&from=2026-09-01&to=2026-11-01", 400, "use bucket=day"),
        ("/api/dashboard/totals?bucket=week", 400, "bucket must be one of"),
        ("/api/dashboard/totals?sql=SELECT+1", 400, "unknown parameter"),
        ("/api/dashboard/totals?team=a&team=b", 400, "once"),
        ("/api/dashboard/totals?team=" + "x" * 201, 400, "at most 200"),
        ("/dashboard/..%2F..%2Fsettings.py", 404, ""),
    ],
)
def test_bad_requests_are_refused_with_what_to_do(base_url: str, path: str, status: int, says: str) -> None:
    code, _, body = get(base_url + path)
    assert code == status
    assert says in body.decode()


def test_the_page_and_its_scripts_are_served_from_the_package_with_a_strict_policy(base_url: str) -> None:
    status, headers, body = get(base_url + "/")
    assert status == 200 and b'<script src="/dashboard/dashboard.js"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    status, headers, chart = get(base_url + "/dashboard/chart.umd.min.js")
    assert (
        status == 200
        and chart.startswith(b"/*!\n * Chart.js v4.5.1")
        and headers["Content-Type"].startswith("text/javascript")
    )
    assert b"https://" not in body  # nothing loaded from outside: it works offline


def test_off_loopback_the_data_wants_the_token_and_the_page_does_not(cost_dsn: str) -> None:
    with serve_dashboard(cost_dsn, dashboard_settings(web_token="s3cret-token"), NOW) as url:
        assert get(url + "/api/dashboard/totals")[0] == 401
        assert get(url + "/api/dashboard/totals", {"Authorization": "Bearer wrong"})[0] == 401
        status, _, body = get(url + "/api/dashboard/totals", {"Authorization": "Bearer s3cret-token"})
        assert status == 200 and b"s3cret" not in body
        assert get(url + "/")[0] == 200


def test_the_page_takes_the_token_from_its_address_in_a_real_browser(cost_dsn: str, tmp_path: Any) -> None:
    """Off loopback: without the token the page says how to give it; `#token=` makes it load."""
    from tests.support.browser import chromium_or_skip, parse_dom, rendered_dom

    browser = chromium_or_skip()
    with serve_dashboard(cost_dsn, dashboard_settings(web_token="s3cret-token"), NOW) as url:
        page = url + "/?from=2026-11-01&to=2026-11-30&refresh=0"
        refused = parse_dom(rendered_dom(browser, page, tmp_path / "a"))
        assert "give its token" in refused.by_id["status"].text
        assert "hidden" not in refused.by_id["token-form"].attrs
        loaded = parse_dom(rendered_dom(browser, page + "#token=s3cret-token", tmp_path / "b"))
        body = next(e for e in loaded.all if e.tag == "body")
        assert body.attrs.get("data-loaded") == "1", body.attrs.get("data-error")
        assert "hidden" in loaded.by_id["token-form"].attrs and loaded.by_id["kpi-requests"].text == "1,244"


def test_every_named_query_passes_the_sql_guard(view_client: Any) -> None:
    """They read only the cost database through allowed functions, as /sql's queries must."""
    flt = DashboardFilter.for_month("2026-11")
    for named in NAMED_QUERIES.values():
        assert prepare_query(view_client, _inline(named.sql, flt), QueryLimits()), named.name


def _inline(sql: str, flt: DashboardFilter) -> str:
    """The query with its parameters written as literals (for the guard's parse only)."""
    for name, value in flt.parameters().items():
        literal = f"'{value}'" if not isinstance(value, datetime) else f"toDateTime('{value:%Y-%m-%d %H:%M:%S}', 'UTC')"
        sql = sql.replace(f"{{{name}:String}}", literal).replace(f"{{{name}:DateTime('UTC')}}", literal)
    return sql


def test_the_page_refreshes_itself_in_a_real_browser(base_url: str, tmp_path: Any) -> None:
    """With refresh=15 the page loads its data again within the browser's 20 s of virtual time."""
    from tests.support.browser import chromium_or_skip, parse_dom, rendered_dom

    browser = chromium_or_skip()
    still = parse_dom(rendered_dom(browser, base_url + "/?from=2026-11-01&to=2026-11-30&refresh=0", tmp_path / "a"))
    again = parse_dom(rendered_dom(browser, base_url + "/?from=2026-11-01&to=2026-11-30&refresh=15", tmp_path / "b"))
    assert next(e for e in still.all if e.tag == "body").attrs.get("data-loaded") == "1"
    assert int(next(e for e in again.all if e.tag == "body").attrs.get("data-loaded", "0")) >= 2


def test_the_page_applies_its_filters_in_a_real_browser(base_url: str, view_client: Any, tmp_path: Any) -> None:
    from tests.support.browser import chromium_or_skip, parse_dom, rendered_dom, table_cells

    browser = chromium_or_skip()
    dom = parse_dom(
        rendered_dom(browser, base_url + "/?from=2026-11-01&to=2026-11-30&refresh=0&team=search&model=gpt-4o", tmp_path)
    )
    (raw,) = sql(
        view_client,
        "SELECT sum(cost_usd) FROM usage_events FINAL WHERE team = 'search' AND model = 'gpt-4o' AND " + NOVEMBER_SQL,
    )
    assert Decimal(dom.by_id["kpi-cost_usd"].attrs["data-value"]) == raw[0] and raw[0] > 0
    assert list(table_cells(dom, "table-top_models")) == ["openai/gpt-4o"]
    assert list(table_cells(dom, "table-savings")) == ["search"]
