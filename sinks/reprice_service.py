"""One reprice run from the settings: catalog fingerprint, budget corrections, the run itself.

Both ways in use it: `meterline reprice` on a database it opens itself, and the worker's
/reprice endpoint (sinks/reprice_web.py) on the database the worker holds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from meterline.budgets.corrections import budget_horizons
from meterline.pricing.reprice import catalog_fingerprint
from meterline.sinks.budget_corrections import CorrectionPublisher
from meterline.sinks.migrations import apply_migrations
from meterline.sinks.reprice import BudgetCorrections, ProgressCallback, RepriceRun, run_reprice

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from meterline.pricing.catalog import PriceCatalog
    from meterline.pricing.reprice import RepriceScope
    from meterline.settings import Settings


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time: `r20261201T135800Z-1a2b3c4d`."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"r{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def fingerprint_of(settings: Settings) -> str:
    """The catalog fingerprint: genai-prices' installed version and the override files' bytes."""
    files = [(str(path), Path(path).read_bytes()) for path in settings.pricing.override_files]
    return catalog_fingerprint(metadata.version("genai-prices"), files)


def execute_reprice(
    settings: Settings,
    client: Client,
    catalog: PriceCatalog,
    scope: RepriceScope,
    *,
    apply: bool,
    budgets: bool,
    on_progress: ProgressCallback | None = None,
) -> RepriceRun:
    """Run a reprice; when applied with budgets configured, send their corrections to the stream."""
    publisher = None
    corrections = None
    horizons = budget_horizons(settings.budgets, datetime.now(UTC))
    if apply:
        apply_migrations(client, ttl_days=settings.sink.ttl_days)
        if budgets and horizons:
            publisher = CorrectionPublisher(settings).start()
            corrections = BudgetCorrections(horizons, publisher.send)
    try:
        return run_reprice(
            client,
            catalog,
            scope,
            run_id=new_run_id(),
            catalog_fingerprint=fingerprint_of(settings),
            apply=apply,
            on_progress=on_progress,
            budgets=corrections,
        )
    finally:
        if publisher is not None:
            publisher.close()
