"""The stream's price-correction path: a correction on the usage topic moves the team's current
budget by its delta in the batch's transaction, once per correction id, and a bad one is
dead-lettered like a bad event."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D

from meterline.messages import PRICE_CORRECTION_CONTENT_TYPE, AlertEvent, BudgetState, DeadLetter, PriceCorrection
from meterline.stream.processor import Record, record_headers

from .test_processor import NOW, Recorded, processor, record, usage

HEADERS = (("content-type", PRICE_CORRECTION_CONTENT_TYPE),)


def correction(n: int, delta: str, *, team: str = "ml", unpriced_delta: int = 0) -> PriceCorrection:
    return PriceCorrection(
        correction_id=f"c-{n}",
        run_id="r1",
        event_id=f"id-{n}",
        team=team,
        provider="openai",
        model="gpt-4o",
        occurred_at=NOW - timedelta(minutes=1),
        delta_usd=D(delta),
        unpriced_delta=unpriced_delta,
    )


def correction_record(offset: int, *items: PriceCorrection, key: bytes = b"ml") -> Record:
    value = b"\n".join(item.model_dump_json().encode() for item in items)
    return Record("p.usage", 0, offset, NOW.timestamp(), key, value, HEADERS)


def states(out: Recorded) -> list[BudgetState]:
    return [BudgetState.model_validate_json(v) for v in out.on("budget.state")]


def test_a_correction_moves_the_budget_by_its_delta_and_alerts_once() -> None:
    proc, out = processor(), Recorded()
    asyncio.run(proc.process([record(0, usage(1, input_tokens=100, output_tokens=10))], out))
    spent = states(out)[-1].spend_usd
    assert spent < D("0.005"), "below 50 % of the 0.01 limit"
    alerts_before = len(out.on("alerts"))

    asyncio.run(proc.process([correction_record(1, correction(1, "0.006"))], out))

    assert states(out)[-1].spend_usd == spent + D("0.006")
    fired = [AlertEvent.model_validate_json(v) for v in out.on("alerts")[alerts_before:]]
    assert [a.kind for a in fired] == ["threshold"] and fired[0].threshold_percent == D(50)
    assert out.on("usage.priced") and len(out.on("usage.priced")) == 1, "a correction is not a priced event"

    # The same correction again (a re-sent message, a repeated run): counted once, no alert.
    asyncio.run(proc.process([correction_record(2, correction(1, "0.006"))], out))
    assert states(out)[-1].spend_usd == spent + D("0.006")
    assert len(out.on("alerts")) == alerts_before + 1
    assert proc.metrics.counts["corrections"] == 1 and proc.metrics.counts["duplicates"] == 1
    assert "dedup" in {t for t, *_ in out.tables}, "correction ids are marked seen with the batch"


def test_a_bad_correction_is_dead_lettered_and_the_others_apply() -> None:
    proc, out = processor(), Recorded()
    asyncio.run(proc.process([record(0, usage(1))], out))
    spent = states(out)[-1].spend_usd
    bad = Record("p.usage", 0, 1, NOW.timestamp(), b"ml", b'{"correction_id": "x"}', HEADERS)
    wrong_team = correction_record(2, correction(3, "1", team="search"))

    asyncio.run(proc.process([bad, wrong_team, correction_record(3, correction(4, "0.001"))], out))

    letters = [DeadLetter.model_validate_json(v) for v in out.on("usage.dlq")]
    assert [(letter.offset, letter.error_kind) for letter in letters] == [(1, "schema"), (2, "wrong_key")]
    assert states(out)[-1].spend_usd == spent + D("0.001")


def test_headers_are_read_whatever_shape_the_client_gives() -> None:
    assert record_headers(None) == ()
    assert record_headers([("content-type", b"x")]) == (("content-type", b"x"),)
    assert record_headers({"content-type": b"x"}) == (("content-type", b"x"),)
