"""The demo's meterline.toml (pure): limits sized from the planned spend, valid settings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meterline.demo.config import DemoConfig, plan_budgets, render_config, round_limit
from meterline.settings import load_settings

SPEND = {
    "team-01": Decimal("39.41"),
    "team-02": Decimal("18.35"),
    "team-03": Decimal("12.77"),
    "team-04": Decimal("8.36"),
    "team-05": Decimal("7.48"),
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("31.528"), Decimal("32")),
        (Decimal("17.4325"), Decimal("17")),
        (Decimal("0.5856"), Decimal("0.59")),
        (Decimal("125"), Decimal("130")),
        (Decimal("0.004"), Decimal("0.01")),
    ],
)
def test_round_limit_keeps_two_significant_digits(value: Decimal, expected: Decimal) -> None:
    assert round_limit(value) == expected


def test_budgets_cross_thresholds_for_several_teams() -> None:
    budgets = plan_budgets(SPEND)
    assert [(b.team, b.name) for b in budgets] == [(t, n) for t in sorted(SPEND) for n in ("daily", "monthly")]
    assert [b for b in budgets if b.hard_limit] == [budgets[0]]
    percent = {(b.team, b.name): SPEND[b.team] * 100 / b.limit_usd for b in budgets}
    assert sum(1 for p in percent.values() if p >= 100) == 2
    assert sum(1 for p in percent.values() if 80 <= p < 100) == 2
    assert sum(1 for p in percent.values() if 50 <= p < 80) == 4
    for team in SPEND:
        assert percent[(team, "monthly")] <= percent[(team, "daily")]


def test_rendered_toml_is_the_settings_the_worker_reads(tmp_path: Path) -> None:
    config = DemoConfig(
        data_dir=tmp_path / "demo",
        kafka_bootstrap="127.0.0.1:19092",
        topic_prefix="demo-1.",
        web_port=16066,
        smtp_port=11025,
        kafka_cache_dir=tmp_path / "cache",
        budgets=plan_budgets(SPEND),
    )
    path = tmp_path / "meterline.toml"
    path.write_text(render_config(config))
    settings = load_settings(path)
    assert (settings.kafka_bootstrap, settings.topic_prefix, settings.data_dir) == (
        "127.0.0.1:19092",
        "demo-1.",
        tmp_path / "demo",
    )
    assert (settings.stream.web_port, settings.alerts.smtp_port, settings.local_kafka.port) == (16066, 11025, 19092)
    assert [(b.team, b.name, b.limit_usd, b.hard_limit) for b in settings.budgets] == [
        (b.team, b.name, b.limit_usd, b.hard_limit) for b in config.budgets
    ]
    first = settings.budgets[0]
    assert first.period == "day" and first.timezone == "UTC"
    assert [(r.channel, r.target) for r in first.routes or []] == [
        ("console", None),
        ("email", "team-01-owners@example.org"),
    ]
