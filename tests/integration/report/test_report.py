"""`meterline report` on a real embedded ClickHouse: its totals equal SQL to 1e-12 USD."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.support.cost_data import write_cost_data

pytestmark = pytest.mark.integration

QUANTUM = Decimal("1e-12")


@pytest.fixture(scope="module")
def cost_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "clickhouse"
    path.mkdir()
    client = open_client(f"chdb://{path}")
    apply_migrations(client)
    write_cost_data(client)
    client.close()
    return f"chdb://{path}"


def report(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERLINE_CLICKHOUSE_DSN": dsn}
    return subprocess.run(
        [sys.executable, "-m", "meterline.cli", "report", *args], env=env, capture_output=True, text=True, timeout=120
    )


def raw_sums(dsn: str, start: str, end: str) -> tuple[int, Decimal, Decimal, Decimal, int, int, int, int, int]:
    client = open_client(dsn)
    try:
        (row,) = client.query(
            "SELECT count(), sum(cost_usd), sum(cache_saving_usd), sum(batch_saving_usd), sum(input_tokens), sum(output_tokens), "
            "sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens) FROM usage_events FINAL "
            "WHERE occurred_at >= {start:String} AND occurred_at < {end:String}",
            parameters={"start": start, "end": end},
        ).result_rows
    finally:
        client.close()
    return tuple(row)


def test_csv_totals_equal_the_raw_events_to_1e_12(cost_dsn: str) -> None:
    done = report(cost_dsn, "--period", "2026-11", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    total, lines = rows[-1], rows[:-1]
    assert total["team"] == "TOTAL"
    requests, cost, cache, batch, *tokens = raw_sums(cost_dsn, "2026-11-01", "2026-12-01")
    assert int(total["requests"]) == requests == sum(int(r["requests"]) for r in lines)
    for column, expected in (("cost_usd", cost), ("cache_saving_usd", cache), ("batch_saving_usd", batch)):
        assert abs(Decimal(total[column]) - expected) < QUANTUM, column
        assert abs(sum(Decimal(r[column]) for r in lines) - expected) < QUANTUM, column
    kinds = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    assert [int(total[k]) for k in kinds] == tokens
    _, previous, *_ = raw_sums(cost_dsn, "2026-10-01", "2026-11-01")
    assert abs(Decimal(total["previous_cost_usd"]) - previous) < QUANTUM and previous > 0
    assert len({(r["team"], r["project"], r["provider"], r["model"]) for r in lines}) == len(lines)


def test_markdown_shows_each_team_against_its_budget(cost_dsn: str) -> None:
    done = report(cost_dsn, "--period", "2026-11", "--format", "md")
    assert done.returncode == 0, done.stderr
    assert "# LLM chargeback report 2026-11" in done.stdout
    assert "| support | 315 |" in done.stdout and "of 25.0000" in done.stdout


def test_html_is_one_file_with_the_charting_library_inlined(cost_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "november.html"
    done = report(cost_dsn, "--period", "2026-11", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "Chart.js v4.5.1" in page and '<canvas id="chart-teams">' in page
    assert "src=" not in page and "href=" not in page  # nothing to fetch: it opens offline


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--period", "2026-13"], "YYYY-MM"),
        (["--period", "2026-11", "--format", "pdf"], "use one of html, csv, md"),
        (["--period", "2026-11", "--out", "/proc/nope/x.html"], "pick a writable --out path"),
    ],
)
def test_bad_arguments_say_what_to_do_and_exit_non_zero(cost_dsn: str, args: list[str], says: str) -> None:
    done = report(cost_dsn, *args)
    assert done.returncode != 0 and says in " ".join(done.stderr.split())


def test_the_html_draws_its_chart_offline_in_a_real_browser(cost_dsn: str, tmp_path: Path) -> None:
    from tests.support.browser import chromium_or_skip, parse_dom, rendered_dom

    browser = chromium_or_skip()
    out = tmp_path / "november.html"
    assert report(cost_dsn, "--period", "2026-11", "--out", str(out)).returncode == 0
    dom = parse_dom(rendered_dom(browser, out.as_uri(), tmp_path / "profile"))
    canvas = dom.by_id["chart-teams"]
    # Chart.js sizes the canvas it draws on; an unloaded library leaves it bare.
    assert "box-sizing: border-box" in canvas.attrs.get("style", "") and int(canvas.attrs["width"]) > 300
    assert "1,244 requests, 10.8765 USD spent" in dom.by_id["summary"].text
