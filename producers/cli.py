"""Commands of meterline.producers: emit, validate, loadgen, schema.

Commands import what they use inside their bodies (say so here, once): `meterline --help` imports
every command module and stays fast without loading faust, aiohttp, pyarrow or clickhouse-connect.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from meterline.cli_support import console, err_console

if TYPE_CHECKING:
    from meterline.producers.producer import UsageProducer

SpoolDirOption = Annotated[
    Optional[Path],
    typer.Option("--spool-dir", help="Offline spool folder (default: <data_dir>/spool).", show_default=False),
]


def _producer(ctx: typer.Context, spool_dir: Path | None) -> UsageProducer:
    import logging

    from meterline.cli_support import settings_from
    from meterline.producers.producer import UsageProducer

    # kafka-python logs every refused connection as an error; the producer's own warning
    # ("not reachable; spooling events") says what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    return UsageProducer.from_settings(settings_from(ctx), spool_dir=spool_dir)


def _report(producer: UsageProducer) -> None:
    c = producer.counters()
    line = f"sent {c.sent}, spooled {c.spooled}, replayed {c.replayed}, failed {c.failed}"
    console.print(line, highlight=False)
    if c.spool_pending_bytes:
        console.print(
            f"the spool at {producer.spool.directory} still holds events; the next producer "
            "(any `meterline emit`) sends them when Kafka answers",
            highlight=False,
        )


def _parse_tags(tags: list[str]) -> dict[str, str]:
    from meterline.cli_support import fail

    parsed = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--tag {item!r} is not key=value, e.g. --tag feature=search")
        parsed[key] = value
    return parsed


def emit(
    ctx: typer.Context,
    file: Annotated[
        Optional[Path],
        typer.Option("--file", "-f", help="JSON Lines of events to send (one event per line).", show_default=False),
    ] = None,
    team: Annotated[Optional[str], typer.Option(help="Team (a-z 0-9 . _ -).", show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option(help="openai, anthropic, google, ...", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option(help="Model as the provider reports it.", show_default=False)] = None,
    input_tokens: Annotated[int, typer.Option(help="Prompt tokens, cached ones included.")] = 0,
    output_tokens: Annotated[int, typer.Option(help="Completion tokens, reasoning included.")] = 0,
    cache_read_tokens: Annotated[int, typer.Option(help="Prompt tokens read from cache.")] = 0,
    cache_write_tokens: Annotated[int, typer.Option(help="Prompt tokens written to cache.")] = 0,
    reasoning_tokens: Annotated[int, typer.Option(help="Reasoning tokens.")] = 0,
    project: Annotated[Optional[str], typer.Option(show_default=False)] = None,
    app: Annotated[Optional[str], typer.Option(show_default=False)] = None,
    user: Annotated[Optional[str], typer.Option(show_default=False)] = None,
    environment: Annotated[Optional[str], typer.Option(show_default=False)] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Sent through a provider's batch API.")] = False,
    cache_hit: Annotated[bool, typer.Option("--cache-hit", help="Served from the app's own cache.")] = False,
    latency_ms: Annotated[Optional[int], typer.Option(show_default=False)] = None,
    status: Annotated[str, typer.Option(help="ok or error.")] = "ok",
    request_id: Annotated[Optional[str], typer.Option(show_default=False)] = None,
    tag: Annotated[list[str], typer.Option("--tag", help="key=value (repeatable).")] = [],  # noqa: B006 - typer reads this default and never mutates it
    occurred_at: Annotated[
        Optional[str], typer.Option(help="RFC 3339 time with offset (default: now).", show_default=False)
    ] = None,
    event_id: Annotated[Optional[str], typer.Option(help="Default: a new UUIDv7.", show_default=False)] = None,
    spool_dir: SpoolDirOption = None,
) -> None:
    """Send one usage event (flags) or many (--file events.jsonl) to Kafka.

    Invalid lines of --file are reported with their line numbers and not sent; the exit code
    is 1 if any line was invalid. When Kafka is away, events go to the offline spool.
    """
    from pydantic import ValidationError

    from meterline.cli_support import fail
    from meterline.events import UsageEvent
    from meterline.producers.jsonl import describe_validation_error

    if file is not None:
        _emit_file(ctx, file, spool_dir)
        return
    if not (team and provider and model):
        raise fail("give --team, --provider and --model for one event, or --file events.jsonl for many")
    fields: dict[str, Any] = {
        "team": team,
        "provider": provider,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "project": project,
        "app": app,
        "user": user,
        "environment": environment,
        "batch": batch,
        "cache_hit": cache_hit,
        "latency_ms": latency_ms,
        "status": status,
        "request_id": request_id,
        "tags": _parse_tags(tag),
        "occurred_at": occurred_at or datetime.now(UTC),
        "event_id": event_id,
    }
    try:
        event = UsageEvent.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise fail(f"invalid event: {describe_validation_error(exc)}") from exc
    with _producer(ctx, spool_dir) as producer:
        producer.emit(event)
        producer.flush(60)
    console.print(f"event {event.event_id} for team {event.team}:", highlight=False, end=" ")
    _report(producer)


def _emit_file(ctx: typer.Context, file: Path, spool_dir: Path | None) -> None:
    from rich.progress import Progress

    from meterline.cli_support import fail, settings_from
    from meterline.producers.jsonl import count_lines, read_jsonl

    if not file.is_file():
        raise fail(f"{file} does not exist; give a JSON Lines file of usage events")
    max_bytes = settings_from(ctx).stream.max_event_bytes
    invalid = 0
    with _producer(ctx, spool_dir) as producer, Progress(console=err_console, transient=False) as progress:
        task = progress.add_task(f"sending {file.name}", total=count_lines(file))
        for line in read_jsonl(file, max_bytes):
            if line.event is None:
                invalid += 1
                progress.console.print(
                    f"line {line.number}: {line.error}", highlight=False, markup=False, soft_wrap=True
                )
            else:
                producer.emit(line.event)
            progress.update(task, completed=line.number)
        progress.update(task, description="waiting for Kafka's acknowledgements")
        producer.flush(120)
    _report(producer)
    if invalid:
        raise fail(f"{invalid} invalid line(s) in {file} were not sent; fix them and send those lines again")


def validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines file of usage events.", show_default=False)],
) -> None:
    """Check a JSON Lines file without sending anything: `line N: <reason>` per invalid line.

    The checks are the stream's own (schema, occurred_at range, repeated keys, size against
    stream.max_event_bytes), so a line that passes here is never dead-lettered for its content.
    """
    from meterline.cli_support import fail, settings_from
    from meterline.producers.jsonl import read_jsonl

    if not file.is_file():
        raise fail(f"{file} does not exist; give a JSON Lines file of usage events")
    max_bytes = settings_from(ctx).stream.max_event_bytes
    valid = invalid = 0
    for line in read_jsonl(file, max_bytes):
        if line.event is None:
            invalid += 1
            console.print(f"line {line.number}: {line.error}", highlight=False, markup=False, soft_wrap=True)
        else:
            valid += 1
    console.print(f"{valid} valid, {invalid} invalid", highlight=False)
    if invalid:
        raise typer.Exit(1)


def loadgen(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(help="Events per second.", min=0.001)] = 100.0,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=0.0)] = 10.0,
    teams: Annotated[int, typer.Option(help="Number of teams (team-01 ...).", min=1)] = 5,
    seed: Annotated[int, typer.Option(help="Same seed (and --start) = same events.")] = 1,
    start: Annotated[
        Optional[str], typer.Option(help="occurred_at of the first event, RFC 3339 (default: now).", show_default=False)
    ] = None,
    spool_dir: SpoolDirOption = None,
) -> None:
    """Emit realistic seeded traffic to Kafka at --rate for --duration seconds.

    A mix of providers and models genai-prices knows, long-tailed token sizes, cache hits,
    batch calls and a few duplicates; the same --seed and --start give the same events.
    """
    from itertools import islice

    from rich.progress import Progress

    from meterline.cli_support import fail
    from meterline.producers.traffic import iter_events

    try:
        first = datetime.fromisoformat(start) if start else datetime.now(UTC)
    except ValueError as exc:
        raise fail(f"--start {start!r} is not RFC 3339, e.g. 2025-05-01T00:00:00+00:00") from exc
    if first.tzinfo is None:
        raise fail("--start needs an offset, e.g. 2025-05-01T00:00:00+00:00")
    total = int(rate * duration)
    events = islice(iter_events(seed=seed, teams=teams, start=first, rate=rate), total)
    console.print(f"loadgen seed={seed} teams={teams} start={first.isoformat()} events={total}", highlight=False)
    began = time.monotonic()
    with _producer(ctx, spool_dir) as producer, Progress(console=err_console) as progress:
        task = progress.add_task("emitting", total=total)
        for index, event in enumerate(events, start=1):
            producer.emit(event)
            ahead = index / rate - (time.monotonic() - began)
            if ahead > 0.002:
                time.sleep(ahead)
            if index % 256 == 0 or index == total:
                progress.update(task, completed=index)
        progress.update(task, description="waiting for Kafka's acknowledgements")
        producer.flush(120)
    elapsed = time.monotonic() - began
    console.print(f"{total} events in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f}/s):", end=" ", highlight=False)
    _report(producer)


def schema(
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.", show_default=False)
    ] = None,
) -> None:
    """Print the JSON Schema of usage events (for producers in other languages)."""
    from meterline.events import usage_event_json_schema

    text = schema_text(usage_event_json_schema())
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", highlight=False)


def schema_text(schema_obj: dict[str, Any]) -> str:
    """The exported file's exact text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema_obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def register(app: typer.Typer) -> None:
    """Add this component's commands to the main app."""
    app.command("emit")(emit)
    app.command("validate")(validate)
    app.command("loadgen")(loadgen)
    app.command("schema")(schema)
