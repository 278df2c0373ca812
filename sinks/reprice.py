"""`meterline reprice` against ClickHouse: read stored events in scope, write the re-priced ones.

The steps of an applied run, in order (each one safe to repeat):

1. Read the events in scope from `usage_events FINAL`, a page at a time in key order.
2. Price each again (meterline.pricing.reprice); insert the rows whose price changed as one
   block per page, with a deduplication token. The materialized view turns each re-priced row
   into its delta in usage_hourly within the same insert (migration 0007).
3. Bring `unpriced_events` in line with usage_events for the scope: drop the events that now
   have a price, add those that lost theirs. This is derived from usage_events, so a run that
   stopped between 2 and 3 is completed by the next one.
4. Record the run in `reprice_runs`.

With budgets, step 2 first sends the page's corrections for current budget periods to the
stream (over the usage topic) and waits for Kafka's acknowledgement, then inserts the page.

A run that stops anywhere leaves every stored event either at its old price or at its new one
(each with its rollup delta), never both; running it again finishes the job and changes
nothing that is already right. A dry run does step 1 and the pricing of step 2, and writes
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from meterline.budgets.corrections import correction_for
from meterline.messages import PriceCorrection
from meterline.pricing.reprice import (
    MONEY_FIELDS,
    GroupTally,
    RepriceScope,
    RepriceTally,
    price_stored_row,
    reprice_event,
)
from meterline.sinks.replay_repair import ROLLUP_LOCK
from meterline.sinks.rows import UNPRICED_EVENT_COLUMNS, USAGE_EVENTS, money
from meterline.sinks.writer import INSERT_SETTINGS

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.pricing.catalog import PriceCatalog

REPRICE_RUNS = "reprice_runs"
PAGE_ROWS = 5_000
"""Events read and written per page: one insert block (well under the dedup window of 10,000)."""

ProgressCallback = Callable[[int], None]
"""Called with the number of events just looked at."""

REPRICE_RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "started_at",
    "finished_at",
    "catalog_fingerprint",
    "since",
    "until",
    "team",
    "model",
    "provider",
    "events_scanned",
    "events_changed",
    "events_newly_priced",
    "events_newly_unpriced",
    "old_cost_usd",
    "new_cost_usd",
    "delta_usd",
    "corrections_sent",
)


@dataclass(frozen=True)
class BudgetCorrections:
    """Where a run's budget corrections go: the teams' current-period starts, and a sender that
    returns once Kafka has them (producers.corrections.CorrectionPublisher.send)."""

    horizons: Mapping[str, datetime]
    send: Callable[[list[PriceCorrection]], None]


def scope_condition(scope: RepriceScope) -> tuple[str, dict[str, Any]]:
    """The WHERE condition selecting the scope's events, and its bound parameters (pure)."""
    clauses = ["occurred_at >= {since:DateTime64(6, 'UTC')}"]
    parameters: dict[str, Any] = {"since": scope.since.astimezone(UTC)}
    if scope.until is not None:
        clauses.append("occurred_at < {until:DateTime64(6, 'UTC')}")
        parameters["until"] = scope.until.astimezone(UTC)
    for name in ("team", "model", "provider"):
        value = getattr(scope, name)
        if value is not None:
            clauses.append(f"{name} = {{{name}:String}}")
            parameters[name] = value
    return " AND ".join(clauses), parameters


def page_query(scope: RepriceScope, after: tuple[str, datetime, str] | None, limit: int) -> tuple[str, dict[str, Any]]:
    """The query for the next page of the scope's events after a (team, occurred_at, event_id) key."""
    condition, parameters = scope_condition(scope)
    if after is not None:
        condition += (
            " AND (team, occurred_at, event_id) > "
            "({after_team:String}, {after_at:DateTime64(6, 'UTC')}, {after_id:String})"
        )
        parameters.update(after_team=after[0], after_at=after[1], after_id=after[2])
    sql = (
        f"SELECT * EXCEPT (written_at) FROM {USAGE_EVENTS} FINAL WHERE {condition} "
        f"ORDER BY team, occurred_at, event_id LIMIT {int(limit)}"
    )
    return sql, parameters


def page_token(run_id: str, rows: list[dict[str, Any]]) -> str:
    """The deduplication token of one page's insert: the run and the exact rows it writes."""
    digest = hashlib.sha256(run_id.encode())
    for row in rows:
        digest.update(f"{row['event_id']}\x00{row['price_id']}\x00{row['cost_usd']}\x00".encode())
    return f"reprice:{run_id}:{digest.hexdigest()[:32]}"


@dataclass(frozen=True)
class RepriceRun:
    """What one run did (or, dry, would do)."""

    run_id: str
    scope: RepriceScope
    catalog_fingerprint: str
    tally: RepriceTally
    started_at: datetime
    finished_at: datetime
    applied: bool
    corrections_sent: int = 0
    """Budget corrections sent to the stream (events of current budget periods whose cost changed)."""

    def audit_row(self) -> list[Any]:
        total = self.tally.total()
        return [
            self.run_id,
            self.started_at,
            self.finished_at,
            self.catalog_fingerprint,
            self.scope.since.astimezone(UTC),
            None if self.scope.until is None else self.scope.until.astimezone(UTC),
            self.scope.team,
            self.scope.model,
            self.scope.provider,
            total.events,
            total.changed,
            self.tally.newly_priced,
            self.tally.newly_unpriced,
            money(total.old_cost_usd),
            money(total.new_cost_usd),
            money(total.delta_usd),
            self.corrections_sent,
        ]


def run_json(run: RepriceRun) -> dict[str, Any]:
    """A run as JSON-ready data (money as decimal strings), what the worker's /reprice answers."""
    scope = run.scope
    return {
        "run_id": run.run_id,
        "scope": {
            "since": scope.since.isoformat(),
            "until": None if scope.until is None else scope.until.isoformat(),
            "team": scope.team,
            "model": scope.model,
            "provider": scope.provider,
        },
        "catalog_fingerprint": run.catalog_fingerprint,
        "groups": [
            {
                "team": team,
                "model": model,
                "events": g.events,
                "changed": g.changed,
                "old_cost_usd": f"{g.old_cost_usd:f}",
                "new_cost_usd": f"{g.new_cost_usd:f}",
            }
            for team, model, g in run.tally.lines()
        ],
        "newly_priced": run.tally.newly_priced,
        "newly_unpriced": run.tally.newly_unpriced,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "applied": run.applied,
        "corrections_sent": run.corrections_sent,
    }


def run_from_json(data: dict[str, Any]) -> RepriceRun:
    """The RepriceRun `run_json` described."""
    scope = data["scope"]
    tally = RepriceTally(newly_priced=int(data["newly_priced"]), newly_unpriced=int(data["newly_unpriced"]))
    for group in data["groups"]:
        tally.groups[(group["team"], group["model"])] = GroupTally(
            int(group["events"]), int(group["changed"]), Decimal(group["old_cost_usd"]), Decimal(group["new_cost_usd"])
        )
    return RepriceRun(
        run_id=data["run_id"],
        scope=RepriceScope(
            since=datetime.fromisoformat(scope["since"]),
            until=None if scope["until"] is None else datetime.fromisoformat(scope["until"]),
            team=scope["team"],
            model=scope["model"],
            provider=scope["provider"],
        ),
        catalog_fingerprint=data["catalog_fingerprint"],
        tally=tally,
        started_at=datetime.fromisoformat(data["started_at"]),
        finished_at=datetime.fromisoformat(data["finished_at"]),
        applied=bool(data["applied"]),
        corrections_sent=int(data["corrections_sent"]),
    )


def count_in_scope(client: Client, scope: RepriceScope) -> int:
    condition, parameters = scope_condition(scope)
    result = client.query(f"SELECT count() FROM {USAGE_EVENTS} FINAL WHERE {condition}", parameters=parameters)
    return int(result.result_rows[0][0])


def stored_pages(client: Client, scope: RepriceScope, page_rows: int = PAGE_ROWS) -> Iterator[list[dict[str, Any]]]:
    """The scope's stored events, a page of row dicts at a time, in (team, occurred_at, event_id) order."""
    after: tuple[str, datetime, str] | None = None
    while True:
        sql, parameters = page_query(scope, after, page_rows)
        result = client.query(sql, parameters=parameters)
        rows = [dict(zip(result.column_names, values, strict=True)) for values in result.result_rows]
        if not rows:
            return
        yield rows
        last = rows[-1]
        after = (last["team"], last["occurred_at"], last["event_id"])
        if len(rows) < page_rows:
            return


def run_reprice(
    client: Client,
    catalog: PriceCatalog,
    scope: RepriceScope,
    *,
    run_id: str,
    catalog_fingerprint: str,
    apply: bool,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_progress: ProgressCallback | None = None,
    page_rows: int = PAGE_ROWS,
    budgets: BudgetCorrections | None = None,
) -> RepriceRun:
    """Re-price the scope's stored events; write the changes and the audit row when `apply`.

    With `budgets`, each page's corrections for current budget periods are sent to the stream
    and acknowledged before the page is written (step 2 above): a run that stops between the two
    sends the same corrections again when repeated, and the stream counts each once."""
    started_at = now()
    tally = RepriceTally()
    sent = 0
    for page in stored_pages(client, scope, page_rows):
        changed: list[dict[str, Any]] = []
        corrections: list[PriceCorrection] = []
        for stored in page:
            outcome = reprice_event(stored, price_stored_row(catalog, stored), run_id=run_id, now=started_at)
            tally.add(outcome)
            if outcome.row is not None:
                changed.append(outcome.row)
                if budgets is not None:
                    correction = correction_for(stored, outcome.row, run_id=run_id, horizons=budgets.horizons)
                    if correction is not None:
                        corrections.append(correction)
        if apply and changed:
            if budgets is not None and corrections:
                budgets.send(corrections)
                sent += len(corrections)
            _insert_repriced(client, run_id, changed)
        if on_progress is not None:
            on_progress(len(page))
    run = RepriceRun(run_id, scope, catalog_fingerprint, tally, started_at, now(), apply, sent)
    if apply:
        sync_unpriced_events(client, scope)
        client.insert(
            REPRICE_RUNS, [run.audit_row()], column_names=list(REPRICE_RUN_COLUMNS), settings={"async_insert": 0}
        )
    return run


def _insert_repriced(client: Client, run_id: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    for row in rows:
        for name in MONEY_FIELDS:
            row[name] = money(row[name])
    settings = {**INSERT_SETTINGS, "insert_deduplication_token": page_token(run_id, rows)}
    with ROLLUP_LOCK:  # moves usage_events and usage_hourly: not while a replayed range is compared
        client.insert(
            USAGE_EVENTS, [[row[name] for name in columns] for row in rows], column_names=columns, settings=settings
        )


def sync_unpriced_events(client: Client, scope: RepriceScope) -> None:
    """Make unpriced_events list exactly the scope's events usage_events holds without a price."""
    condition, parameters = scope_condition(scope)
    settings = {"async_insert": 0, "mutations_sync": 2, "lightweight_deletes_sync": 2}
    client.command(
        f"DELETE FROM unpriced_events WHERE event_id IN "
        f"(SELECT event_id FROM {USAGE_EVENTS} FINAL WHERE priced AND {condition})",
        parameters=parameters,
        settings=settings,
    )
    columns = ", ".join(UNPRICED_EVENT_COLUMNS)
    selected = ", ".join(
        "ifNull(unpriced_reason, 'no price found') AS unpriced_reason" if name == "unpriced_reason" else name
        for name in UNPRICED_EVENT_COLUMNS
    )
    client.command(
        f"INSERT INTO unpriced_events ({columns}) SELECT {selected} FROM {USAGE_EVENTS} FINAL "
        f"WHERE NOT priced AND {condition} AND event_id NOT IN (SELECT event_id FROM unpriced_events)",
        parameters=parameters,
        settings=settings,
    )
