"""The pure part of `meterline reprice`: comparing a stored row with today's price, the
replacement row it builds, the per team x model tally, and the catalog fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterline.pricing import PriceCatalog
from meterline.pricing.reprice import (
    MONEY_FIELDS,
    RepriceTally,
    catalog_fingerprint,
    price_differs,
    price_stored_row,
    reprice_event,
)
from meterline.settings import PricingSettings
from tests.support.prices import ACME_PRICES_NOW

AT = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def catalog(tmp_path: Path) -> PriceCatalog:
    path = tmp_path / "prices.toml"
    path.write_text(ACME_PRICES_NOW, encoding="utf-8")
    return PriceCatalog.load(PricingSettings(override_files=[path]))


def stored_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": "e-1",
        "occurred_at": AT,
        "team": "search",
        "provider": "openai",
        "model": "acme-chat",
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "batch": False,
        "cache_hit": False,
        "priced": True,
        "unpriced_reason": None,
        "price_id": "override:openai:acme-chat@2026-01-01",
        "price_source": "override:old.toml",
        "input_cost_usd": Decimal("1.100000000000"),
        "cache_read_cost_usd": Decimal("0E-12"),
        "cache_write_cost_usd": Decimal("0E-12"),
        "output_cost_usd": Decimal("2.300000000000"),
        "cost_usd": Decimal("3.400000000000"),
        "cache_saving_usd": Decimal("0E-12"),
        "batch_saving_usd": Decimal("0E-12"),
        "reprice_run_id": "",
        "repriced_at": None,
        "previous_priced": False,
        **{f"previous_{name}": Decimal(0) for name in MONEY_FIELDS},
    }
    row.update(overrides)
    return row


def test_a_dated_price_change_rebuilds_the_row_with_the_previous_money(tmp_path: Path) -> None:
    stored = stored_row()
    result = price_stored_row(catalog(tmp_path), stored)
    outcome = reprice_event(stored, result, run_id="r1", now=NOW)

    assert outcome.changed and outcome.row is not None
    row = outcome.row
    assert row["price_id"] == "override:openai:acme-chat@2026-11-01"
    assert row["cost_usd"] == Decimal("9.000000000000")
    assert row["reprice_run_id"] == "r1" and row["repriced_at"] == NOW
    assert row["previous_cost_usd"] == Decimal("3.4") and row["previous_output_cost_usd"] == Decimal("2.3")
    assert row["previous_priced"] is True
    assert row["event_id"] == "e-1" and row["team"] == "search", "everything but the price stays as stored"
    assert (outcome.old_cost_usd, outcome.new_cost_usd) == (Decimal("3.4"), Decimal("9"))


def test_an_event_already_at_todays_price_is_left_alone(tmp_path: Path) -> None:
    stored = stored_row(occurred_at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    result = price_stored_row(catalog(tmp_path), stored)
    outcome = reprice_event(stored, result, run_id="r1", now=NOW)

    assert not price_differs(stored, result)
    assert outcome.row is None and outcome.new_cost_usd == outcome.old_cost_usd == Decimal("3.4")


def test_money_is_compared_exactly_whatever_its_exponent(tmp_path: Path) -> None:
    stored = stored_row(
        occurred_at=datetime(2026, 10, 1, tzinfo=UTC), input_cost_usd=Decimal("1.1"), cost_usd=Decimal("3.40")
    )
    assert not price_differs(stored, price_stored_row(catalog(tmp_path), stored))
    nudged = {**stored, "cost_usd": Decimal("3.400000000001")}
    assert price_differs(nudged, price_stored_row(catalog(tmp_path), nudged))


def test_an_unpriced_event_whose_model_now_has_a_price_gets_it(tmp_path: Path) -> None:
    stored = stored_row(
        priced=False,
        unpriced_reason="no price",
        price_id=None,
        price_source=None,
        **{name: Decimal(0) for name in MONEY_FIELDS},
    )
    outcome = reprice_event(stored, price_stored_row(catalog(tmp_path), stored), run_id="r2", now=NOW)

    assert outcome.row is not None and outcome.row["priced"] is True and outcome.row["unpriced_reason"] is None
    assert outcome.row["previous_priced"] is False and outcome.row["previous_cost_usd"] == 0
    tally = RepriceTally()
    tally.add(outcome)
    assert (tally.newly_priced, tally.newly_unpriced) == (1, 0)


def test_a_row_priced_by_an_earlier_run_records_that_runs_money_as_previous(tmp_path: Path) -> None:
    stored = stored_row(reprice_run_id="r0", previous_cost_usd=Decimal("99"), cost_usd=Decimal("4"))
    outcome = reprice_event(stored, price_stored_row(catalog(tmp_path), stored), run_id="r1", now=NOW)

    assert outcome.row is not None and outcome.row["previous_cost_usd"] == Decimal("4")


def test_the_tally_adds_up_per_team_and_model_and_in_total(tmp_path: Path) -> None:
    book = catalog(tmp_path)
    tally = RepriceTally()
    for team, day in (("search", 3), ("search", 4), ("growth", 3)):
        stored = stored_row(team=team, occurred_at=datetime(2026, 11, day, tzinfo=UTC))
        tally.add(reprice_event(stored, price_stored_row(book, stored), run_id="r", now=NOW))
    stored = stored_row(team="growth", occurred_at=datetime(2026, 10, 3, tzinfo=UTC))
    tally.add(reprice_event(stored, price_stored_row(book, stored), run_id="r", now=NOW))

    lines = {
        (team, model): (g.events, g.changed, g.old_cost_usd, g.new_cost_usd, g.delta_usd)
        for team, model, g in tally.lines()
    }
    assert lines == {
        ("growth", "acme-chat"): (2, 1, Decimal("6.8"), Decimal("12.4"), Decimal("5.6")),
        ("search", "acme-chat"): (2, 2, Decimal("6.8"), Decimal("18"), Decimal("11.2")),
    }
    total = tally.total()
    assert (total.events, total.changed, total.delta_usd) == (4, 3, Decimal("16.8"))
    assert [team for team, _, _ in tally.lines()] == ["growth", "search"]


def test_the_fingerprint_changes_with_the_catalog_and_only_with_it() -> None:
    base = catalog_fingerprint("0.2.3", [("a.toml", b"x = 1")])
    assert base == catalog_fingerprint("0.2.3", [("a.toml", b"x = 1")])
    assert (
        len(
            {
                base,
                catalog_fingerprint("0.2.4", [("a.toml", b"x = 1")]),
                catalog_fingerprint("0.2.3", [("a.toml", b"x = 2")]),
                catalog_fingerprint("0.2.3", [("b.toml", b"x = 1")]),
                catalog_fingerprint("0.2.3", []),
            }
        )
        == 5
    )
