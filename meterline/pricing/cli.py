"""Commands of meterline.pricing: `price`, `prices list`, `prices show`, `estimate`.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from meterline.pricing.catalog import PriceCatalog
    from meterline.pricing.entry import PriceEntry
    from meterline.pricing.result import PriceResult

prices_app = typer.Typer(
    help="Browse the price catalog: your override files first, then genai-prices' bundled data.",
    no_args_is_help=True,
)

ProviderOption = Annotated[
    str,
    typer.Option("--provider", "-p", help="Provider as you write it: openai, anthropic, google, azure, bedrock, ..."),
]
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model name as your SDK reports it.")]
InputOption = Annotated[int, typer.Option("--input", min=0, help="Input tokens, cached ones included.")]
OutputOption = Annotated[int, typer.Option("--output", min=0, help="Output tokens, reasoning included.")]
CacheReadOption = Annotated[int, typer.Option("--cache-read", min=0, help="Of the input, tokens read from cache.")]
CacheWriteOption = Annotated[int, typer.Option("--cache-write", min=0, help="Of the input, tokens written to cache.")]
ReasoningOption = Annotated[int, typer.Option("--reasoning", min=0, help="Of the output, reasoning tokens.")]
BatchOption = Annotated[bool, typer.Option("--batch", help="Priced as a batch API call.")]
AtOption = Annotated[
    Optional[str],
    typer.Option("--at", help="When the call happened: YYYY-MM-DD or an ISO time (UTC unless it says); default now."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (money as decimal strings).")]


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
    app.command("price")(price)
    app.command("estimate")(estimate)
    app.add_typer(prices_app, name="prices")


def price(
    ctx: typer.Context,
    provider: ProviderOption,
    model: ModelOption,
    input_tokens: InputOption,
    output_tokens: OutputOption,
    cache_read: CacheReadOption = 0,
    cache_write: CacheWriteOption = 0,
    reasoning: ReasoningOption = 0,
    batch: BatchOption = False,
    cache_hit: Annotated[bool, typer.Option("--cache-hit", help="Answered from your own cache.")] = False,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Price one model call exactly, and name the price used.

    Example: meterline price -p openai -m gpt-4o --input 1000 --output 500
    """
    from meterline.cli_support import fail
    from meterline.pricing.errors import InvalidUsageError

    catalog = catalog_from(ctx)
    moment = _parse_at(at)
    try:
        result = catalog.price(
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            batch=batch,
            cache_hit=cache_hit,
            at=moment,
        )
    except InvalidUsageError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        _print_json({"provider": provider, "model": model, "at": moment.isoformat(), **result_json(result)})
    elif result.priced:
        _print_result(result, f"{provider}/{model} at {moment:%Y-%m-%d %H:%M} UTC")
    if not result.priced:
        raise fail(result.unpriced_reason or "no price")


def estimate(
    ctx: typer.Context,
    model: ModelOption,
    requests_per_day: Annotated[int, typer.Option("--requests-per-day", "-r", min=0, help="Requests per day.")],
    input_tokens: Annotated[int, typer.Option("--input", min=0, help="Input tokens per request, cached included.")],
    output_tokens: Annotated[int, typer.Option("--output", min=0, help="Output tokens per request.")],
    provider: Annotated[
        Optional[str],
        typer.Option("--provider", "-p", help="Provider (default: inferred from the model name)."),
    ] = None,
    cache_read: CacheReadOption = 0,
    cache_write: CacheWriteOption = 0,
    batch: BatchOption = False,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate what a steady workload costs per day, week (7 d), month (30 d) and year (365 d).

    Example: meterline estimate -m gpt-4o-mini -r 10000 --input 500 --output 200
    """
    from meterline.cli_support import fail
    from meterline.pricing.errors import InvalidUsageError
    from meterline.pricing.estimate import estimate as estimate_cost

    catalog = catalog_from(ctx)
    chosen = provider or catalog.infer_provider(model)
    if chosen is None:
        raise fail(f"cannot tell which provider serves {model!r}: pass --provider")
    try:
        found = estimate_cost(
            catalog,
            provider=chosen,
            model=model,
            requests_per_day=requests_per_day,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            batch=batch,
            at=_parse_at(at),
        )
    except InvalidUsageError as exc:
        raise fail(str(exc)) from exc
    if not found.per_request.priced:
        raise fail(found.per_request.unpriced_reason or "no price")
    if as_json:
        _print_json(
            {
                "provider": chosen,
                "model": model,
                "requests_per_day": requests_per_day,
                "per_request": result_json(found.per_request),
                **{name: decimal_text(amount) for name, amount in found.periods.items()},
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{chosen}/{model}: {requests_per_day:,} requests a day", title_justify="left")
    table.add_column("period")
    table.add_column("USD", justify="right")
    table.add_row("per request", money_text(found.per_request.cost_usd))
    for name, amount in found.periods.items():
        table.add_row(name, money_text(amount))
    console = Console()
    console.print(table)
    console.print(f"price: {found.per_request.price_id} ({found.per_request.price_source})", highlight=False)


@prices_app.command("list")
def prices_list(
    ctx: typer.Context,
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="Only this provider.")] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the per-million-token prices in force (today, or --at) for every model."""
    from meterline.cli_support import fail

    catalog = catalog_from(ctx)
    moment = _parse_at(at)
    if provider is not None and catalog.provider_id(provider) is None:
        raise fail(f"unknown provider {provider!r}; known: {', '.join(catalog.provider_ids())}")
    entries = catalog.current_entries(moment.date(), provider)
    if as_json:
        _print_json([entry_json(entry) for entry in entries])
        return
    _print_entries(entries, f"prices on {moment:%Y-%m-%d} (USD per million tokens)")


@prices_app.command("show")
def prices_show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name, e.g. gpt-4o, openai/gpt-4o, claude-sonnet-4-5.")],
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="Only this provider.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show every dated price of a model: tiers, cache rates, batch rule, source and price id."""
    from meterline.cli_support import fail

    catalog = catalog_from(ctx)
    history = catalog.history(model, provider)
    entries = [item for item in history if not isinstance(item, str)]
    if not history:
        where = f"provider {provider!r}" if provider else "any provider"
        raise fail(f"no price for {model!r} at {where}: add it to a price override file (pricing.override_files)")
    if as_json:
        _print_json([entry_json(entry) for entry in entries])
        return
    _print_entry_details(entries)
    for reason in (item for item in history if isinstance(item, str)):
        typer.echo(reason)


# -- helpers -------------------------------------------------------------------------------


def catalog_from(ctx: typer.Context) -> PriceCatalog:
    from meterline.cli_support import fail, settings_from
    from meterline.pricing.catalog import PriceCatalog
    from meterline.pricing.errors import PricingError

    try:
        return PriceCatalog.load(settings_from(ctx).pricing)
    except PricingError as exc:
        raise fail(str(exc)) from exc


def _parse_at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    return parse_moment(text, "--at")


def parse_moment(text: str, option: str) -> datetime:
    """A command-line date or ISO time (UTC unless it says); exit 2 naming `option` when it is not one."""
    from meterline.cli_support import fail

    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(f"{option} {text!r} is not a date: use YYYY-MM-DD or 2024-04-09T12:00:00+00:00", code=2) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def decimal_text(amount: Decimal) -> str:
    """A decimal string without exponent: `0.000000000000`, never `0E-12`."""
    return f"{amount:f}"


def money_text(amount: Decimal) -> str:
    """USD for people: cents when exact in cents, else every significant decimal."""
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:,.2f}"
    return f"${amount.normalize():,f}"


def _rate_text(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{rate.normalize():f}"


def result_json(result: PriceResult) -> dict[str, Any]:
    """A PriceResult as JSON-ready data: money as decimal strings plus a `breakdown`."""
    fields = {
        name: decimal_text(value) if isinstance(value, Decimal) else value for name, value in result.as_fields().items()
    }
    fields["breakdown"] = {
        "input_usd": decimal_text(result.input_cost_usd),
        "cache_read_usd": decimal_text(result.cache_read_cost_usd),
        "cache_write_usd": decimal_text(result.cache_write_cost_usd),
        "output_usd": decimal_text(result.output_cost_usd),
    }
    return fields


def entry_json(entry: PriceEntry) -> dict[str, Any]:
    """A PriceEntry as JSON-ready data (rates per million tokens as decimal strings)."""

    def bands(items: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [
            {
                "above_input_tokens": band.above_input_tokens,
                "input": _rate_text(band.input),
                "cache_read": _rate_text(band.cache_read),
                "cache_write": _rate_text(band.cache_write),
                "output": _rate_text(band.output),
                "reasoning": None if band.reasoning is None else _rate_text(band.reasoning),
            }
            for band in items
        ]

    return {
        "price_id": entry.price_id,
        "source": entry.source,
        "provider": entry.provider,
        "model": entry.model,
        "effective_from": None if entry.effective_from is None else entry.effective_from.isoformat(),
        "time_window": entry.time_window,
        "bands": bands(entry.bands),
        "batch_rule": entry.batch_rule,
        "batch_from": None if entry.batch_from is None else entry.batch_from.isoformat(),
        "batch_bands": bands(entry.batch_bands),
    }


def _print_json(data: Any) -> None:
    import orjson

    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _print_result(result: PriceResult, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("USD", justify="right")
    for label, amount in (
        ("uncached input", result.input_cost_usd),
        ("cache read", result.cache_read_cost_usd),
        ("cache write", result.cache_write_cost_usd),
        ("output", result.output_cost_usd),
        ("total", result.cost_usd),
        ("cache saving", result.cache_saving_usd),
        ("batch saving", result.batch_saving_usd),
    ):
        table.add_row(label, money_text(amount))
    console = Console()
    console.print(table)
    console.print(f"price: {result.price_id} ({result.price_source})", highlight=False)


def _print_entries(entries: list[PriceEntry], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("provider")
    table.add_column("model", overflow="fold")
    table.add_column("from")
    for column in ("input", "cache read", "cache write", "output"):
        table.add_column(column, justify="right")
    table.add_column("tiers / batch")
    for entry in entries:
        base = entry.base
        effective = entry.effective_from.isoformat() if entry.effective_from else "-"
        if entry.time_window:
            effective = f"{effective} {entry.time_window}"
        notes = [f">{band.above_input_tokens:,} in" for band in entry.bands[1:]] + [entry.batch_rule]
        table.add_row(
            entry.provider,
            entry.model,
            effective,
            _rate_text(base.input),
            _rate_text(base.cache_read),
            _rate_text(base.cache_write),
            _rate_text(base.output),
            ", ".join(notes),
        )
    Console().print(table)


def _print_entry_details(entries: list[PriceEntry]) -> None:
    for entry in entries:
        effective = entry.effective_from.isoformat() if entry.effective_from else "its first price"
        typer.echo(f"{entry.price_id}  (source {entry.source})")
        typer.echo(
            f"  {entry.provider}/{entry.model}, effective from {effective}"
            + (f", {entry.time_window}" if entry.time_window else "")
        )
        batch_label = (
            entry.batch_rule if entry.batch_from is None else f"{entry.batch_rule} from {entry.batch_from.isoformat()}"
        )
        for label, bands in (("standard", entry.bands), (f"batch ({batch_label})", entry.batch_bands)):
            for band in bands:
                scope = "" if band.above_input_tokens < 0 else f" above {band.above_input_tokens:,} input tokens"
                reasoning = "" if band.reasoning is None else f", reasoning {_rate_text(band.reasoning)}"
                typer.echo(
                    f"  {label}{scope}: input {_rate_text(band.input)}, cache read {_rate_text(band.cache_read)}, "
                    f"cache write {_rate_text(band.cache_write)}, output {_rate_text(band.output)}{reasoning} "
                    "USD per million tokens"
                )
