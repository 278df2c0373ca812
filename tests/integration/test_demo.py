"""`meterline demo` for real, short: its report agrees with ClickHouse and with an independent
pricing of the events it sent; console and email alerts were delivered and captured."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterline.pricing import PriceCatalog
from meterline.producers.traffic import generate_events
from meterline.settings import PricingSettings, load_settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

DEMO_TIMEOUT_S = 150


def _run_demo(data_dir: Path, bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERLINE_KAFKA_BOOTSTRAP": bootstrap, "COLUMNS": "160"}
    args = [
        sys.executable,
        "-m",
        "meterline.cli",
        "demo",
        "--duration",
        "15",
        "--rate",
        "200",
        "--seed",
        "7",
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its worker and mail capture on SIGTERM
        out, _ = proc.communicate(timeout=90)
        pytest.fail(f"the demo did not finish within {DEMO_TIMEOUT_S} s:\n{out[-4000:]}")
    finally:
        if (data_dir / "demo-state.json").exists():
            subprocess.run(
                [sys.executable, "-m", "meterline.cli", "demo", "stop", "--data-dir", str(data_dir)],
                env=env,
                timeout=120,
                check=False,
            )
    return subprocess.CompletedProcess(args, proc.returncode, out, "")


def _clickhouse_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    from meterline.sinks.client import open_client

    client = open_client(f"chdb://{data_dir / 'clickhouse'}")
    try:
        return [tuple(row) for row in client.query(sql).result_rows]
    finally:
        client.close()


def test_demo_report_matches_clickhouse_and_pricing(tmp_path: Path, kafka_bootstrap: str) -> None:
    data_dir = tmp_path / "demo"
    result = _run_demo(data_dir, kafka_bootstrap)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "cost report (read from ClickHouse by SQL)" in result.stdout
    assert not (data_dir / "demo-state.json").exists(), "the demo left processes recorded as running"
    report = json.loads((data_dir / "report.json").read_text())

    # The events the demo sent, regenerated from the seed and priced independently.
    traffic = report["traffic"]
    sent = generate_events(
        seed=traffic["seed"],
        teams=traffic["teams"],
        start=datetime.fromisoformat(traffic["start"]),
        count=traffic["count"],
        rate=traffic["rate"],
    )
    assert len(sent) == report["sent"] == 3000
    distinct = {event.event_id: event for event in sent}
    assert report["distinct_sent"] == len(distinct)
    catalog = PriceCatalog.load(PricingSettings())
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for event in distinct.values():
        spend[event.team] += catalog.price_event(event).cost_usd

    # ClickHouse (opened here after the worker stopped) holds every distinct event once.
    stored = _clickhouse_rows(data_dir, "SELECT event_id, team, cost_usd FROM usage_events FINAL")
    assert sorted(row[0] for row in stored) == sorted(distinct)
    stored_spend: dict[str, Decimal] = defaultdict(Decimal)
    for _, team, cost in stored:
        stored_spend[team] += cost
    assert stored_spend == spend

    # The report's figures are ClickHouse's, and they equal the independent pricing exactly.
    assert report["stored_distinct"] == report["stored_rows"] == len(distinct)
    assert {row["team"]: Decimal(row["cost_usd"]) for row in report["per_team"]} == spend
    assert {row["team"]: int(row["requests"]) for row in report["per_team"]} == {
        team: sum(1 for e in distinct.values() if e.team == team) for team in spend
    }
    assert Decimal(report["total_cost_usd"]) == sum(spend.values())
    assert sum(Decimal(row["cost_usd"]) for row in report["per_model"]) == sum(spend.values())

    # Budgets: each threshold crossed by the spend was alerted once to console and once to email.
    settings = load_settings(data_dir / "meterline.toml")
    periods: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for event in distinct.values():
        cost = catalog.price_event(event).cost_usd
        periods[(event.team, "daily", event.occurred_at.strftime("%Y-%m-%d"))] += cost
        periods[(event.team, "monthly", event.occurred_at.strftime("%Y-%m"))] += cost
    limits = {(b.team, b.name): b.limit_usd for b in settings.budgets}
    expected = {
        (team, budget, threshold)
        for (team, budget, _), amount in periods.items()
        for threshold in (50, 80, 100)
        if amount * 100 >= limits[(team, budget)] * threshold
    }
    assert len(expected) >= 5, "the demo's limits should make several budgets cross thresholds"
    deliveries = _clickhouse_rows(
        data_dir,
        "SELECT alert_id, kind, team, budget, channel, target, status, external_id FROM alert_deliveries FINAL",
    )
    assert all(row[6] == "sent" for row in deliveries), deliveries
    for channel in ("console", "email"):
        got = [
            (row[2], row[3], int(row[0].rsplit("/", 1)[1]))
            for row in deliveries
            if row[4] == channel and row[1] == "threshold"
        ]
        assert sorted(got) == sorted(expected), channel
    for row in report["budgets"]:
        key = (row["team"], row["budget"], row["period"])
        assert Decimal(row["spend_usd"]) == periods[key]

    # The console channel printed alerts (seen by the demo), and the capture holds the emails.
    console_sent = sum(1 for row in deliveries if row[4] == "console")
    assert report["console_alert_lines"] >= 1
    assert {row["channel"]: int(row["sent"]) for row in report["deliveries"]} == {
        "console": console_sent,
        "email": sum(1 for row in deliveries if row[4] == "email"),
    }
    emails = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((data_dir / "mail").glob("*.eml"))
    ]
    assert len(emails) == len(report["emails"]) >= 1
    email_rows = [row for row in deliveries if row[4] == "email"]
    assert {str(m["Message-ID"]) for m in emails} == {row[7] for row in email_rows}
    recipients = {row[7]: row[5] for row in email_rows}
    for message in emails:
        assert str(message["To"]).lower() == recipients[str(message["Message-ID"])]
        assert str(message["Subject"]).startswith("[meterline]")
