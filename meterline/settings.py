"""The one settings object: built once at the CLI's edge, then passed down.

Sources, highest precedence first: keyword arguments, `METERLINE_*` environment
variables (nested sections use `__`, e.g. `METERLINE_SINK__BATCH_ROWS`), the TOML
file named by `--config` / `METERLINE_CONFIG` (else `./meterline.toml` if present),
then the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from meterline.errors import ConfigError
from meterline.faults import FaultPlan

_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """Accept `90s`, `15m`, `24h`, `30d`, `2w` (and anything pydantic already takes)."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def default_data_dir() -> Path:
    """Per-user data folder: `$XDG_DATA_HOME/meterline`, else `~/.local/share/meterline`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "meterline"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalKafkaSettings(_Section):
    """The broker `meterline services up` runs without Docker."""

    port: int = Field(9092, ge=1, le=65535)
    """Broker port on 127.0.0.1 (default 9092; `METERLINE_LOCAL_KAFKA__PORT`); a cluster's node
    N listens on port + N - 1."""
    brokers: int = Field(1, ge=1, le=9)
    """Nodes `services up` starts (default 1; `METERLINE_LOCAL_KAFKA__BROKERS`, `--brokers`). 3 is
    a KRaft cluster with replication 3 and min ISR 2 under `<data_dir>/kafka-cluster`: set
    topic_replication_factor = 3 and topic_min_insync_replicas = 2 for the worker's topics."""
    controller_port: int | None = Field(None, ge=1, le=65535)
    """KRaft controller port (default: a free port chosen at start)."""
    heap: str = "512m"
    """JVM heap (default 512m, half of Kafka's own default: the machine is shared)."""
    kafka_version: str = "4.4.0"
    """Apache Kafka version resolved from Maven Central (default 4.4.0)."""
    cache_dir: Path | None = None
    """Where resolved jars are cached (default `<data_dir>/cache/kafka`)."""

    @field_validator("heap")
    @classmethod
    def _heap_is_jvm_size(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[kKmMgG]?", value):
            raise ValueError("must be a JVM heap size such as 512m or 1g")
        return value


class StreamSettings(_Section):
    """The faust worker."""

    dedup_window: Duration = timedelta(days=7)
    """How long an event_id is remembered (default 7d)."""
    grace: Duration = timedelta(hours=48)
    """How late an event may arrive and still move budgets (default 48h)."""
    store: str = "memory://"
    """faust table store: `memory://` (default) or `rocksdb://` (needs rocksdict)."""
    take_max: int = Field(1_000, ge=1)
    """Most messages an agent takes into one batch (one transaction; default 1000). A message
    may hold many events (JSON Lines): with 100 per message, 1,000 ran at ~50,000 events/s and
    10,000 at ~29,000 (a 2 GB worker, its CPU lost to page faults); single-event messages
    ran ~15 % slower than with 10,000."""
    take_within: float = Field(0.2, gt=0)
    """Seconds an agent waits to fill a batch (default 0.2)."""
    batch_events: int = Field(10_000, ge=1)
    """Most events one transaction holds (default 10,000): a batch of packed messages holding
    more commits in several transactions, one after the other, so the sink (which reads
    committed data only) writes the first while the stream prices the next."""
    fetch_max_wait_ms: int = Field(100, ge=1)
    """Longest the broker holds a fetch of the worker's consumers (stream, sink, alerts) when
    no data is there (default 100 ms; faust's own 1,500 ms delayed messages by over a second
    under steady load)."""
    max_event_bytes: int = Field(65_536, ge=256)
    """Messages larger than this go to the DLQ (default 64 KiB)."""
    priced_pack_events: int = Field(1_000, ge=1, le=10_000)
    """Most priced events of one team in one usage.priced record, as JSON Lines (default 1000;
    a record also stays under 256 KiB). 1: one record per event, for readers of the topic that
    take a record as one event (meterline's sink reads both)."""
    processes: int = Field(2, ge=1, le=2)
    """`meterline worker` running all parts: 2 (default) runs the ClickHouse sink and the
    alert dispatcher in a child process, so they use another core than the stream (one
    process was GIL-bound at 10,000 events/s); 1 runs all three in one process."""
    web_host: str = "127.0.0.1"
    """Worker web endpoint host (default loopback only)."""
    web_port: int = Field(6066, ge=1, le=65535)
    """Worker web endpoint port: /healthz, /metrics, /sql (default 6066)."""
    web_token: SecretStr | None = None
    """Bearer token that /sql and /metrics require (`METERLINE_STREAM__WEB_TOKEN`; default none).
    Required when web_host is not loopback: the worker refuses to start without one."""
    forecast_min_elapsed: float = Field(0.1, ge=0, le=1)
    """Fraction of a period that must pass before a forecast alert (default 0.1)."""
    forecast_min_spend_fraction: float = Field(0.05, ge=0, le=1)
    """Fraction of the limit that must be spent before a forecast alert (default 0.05)."""
    batch_attempts: int = Field(5, ge=1)
    """Times a failing batch is tried (aborted and read again each time, with backoff) before
    the worker stops with exit code 1 (default 5). Env: METERLINE_STREAM__BATCH_ATTEMPTS."""
    inject_faults: str = ""
    """For fault tests only: raise at named points of the batch path, e.g. `after_send:2`
    (meterline/faults.py; default empty: none). Env: METERLINE_STREAM__INJECT_FAULTS."""

    @field_validator("inject_faults")
    @classmethod
    def _known_fault_points(cls, value: str) -> str:
        FaultPlan.parse(value)
        return value


class SinkSettings(_Section):
    """The ClickHouse sink."""

    batch_rows: int = Field(10_000, ge=1)
    """Rows written per insert at most (default 10000)."""
    batch_seconds: float = Field(0.25, gt=0)
    """Longest a row waits before its batch is written (default 0.25 s: four inserts a second
    per table; raise it to trade freshness for fewer, larger parts)."""
    idle_flush_ms: int = Field(30, ge=0)
    """Write what is held as soon as nothing new has come for this long (default 30 ms), so a
    burst (one stream transaction) is written once it is all in, without waiting out
    batch_seconds; a steady flow still fills batches up to batch_rows / batch_seconds. 0: wait
    for batch_rows or batch_seconds only."""
    ttl_days: int | None = Field(None, ge=1)
    """Drop raw events older than this many days (default: keep forever)."""
    retry_max_seconds: float = Field(30.0, gt=0)
    """Cap of the backoff between failed writes (default 30 s)."""
    clickhouse_cluster: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    """A ClickHouse cluster (a name of the servers' `remote_servers`): migrations then create
    Replicated engines `ON CLUSTER` it, one shard and a replica per server (see
    meterline.sinks.replicated). Default: none, plain MergeTree engines (embedded chDB or one
    server; `METERLINE_SINK__CLICKHOUSE_CLUSTER`)."""


class SqlSettings(_Section):
    """Bounds of the read-only SQL that `/sql` and `meterline sql` run."""

    max_execution_time: float = Field(30.0, gt=0)
    """Seconds a query may run before the engine cancels it (default 30; `METERLINE_SQL__MAX_EXECUTION_TIME`)."""
    max_memory_usage: int = Field(1 << 30, ge=1 << 20)
    """Bytes of memory a query may use (default 1 GiB; `METERLINE_SQL__MAX_MEMORY_USAGE`)."""
    max_result_rows: int = Field(100_000, ge=1)
    """Rows a result may hold (default 100,000; `METERLINE_SQL__MAX_RESULT_ROWS`)."""
    max_result_bytes: int = Field(64 << 20, ge=1024)
    """Bytes a result may hold (default 64 MiB; `METERLINE_SQL__MAX_RESULT_BYTES`)."""
    max_threads: int = Field(1, ge=1)
    """Engine threads per query (default 1, so /sql leaves the sink a core; `METERLINE_SQL__MAX_THREADS`)."""
    max_query_bytes: int = Field(65_536, ge=256)
    """Longest query text accepted (default 64 KiB; `METERLINE_SQL__MAX_QUERY_BYTES`)."""
    max_concurrent: int = Field(2, ge=1, le=16)
    """Queries /sql runs at once; one more is answered 429 with Retry-After (default 2;
    `METERLINE_SQL__MAX_CONCURRENT`)."""


class PricingSettings(_Section):
    """The price catalog."""

    override_files: list[Path] = Field(default_factory=list)
    """TOML price files that take precedence over genai-prices' bundled data."""


AlertChannelName = Literal["slack", "email", "console", "webhook", "pagerduty"]


class AlertRoute(_Section):
    """Where one budget's alerts go: a channel and, for slack/email, a target (webhook and
    pagerduty have one configured endpoint each and take no target)."""

    channel: AlertChannelName
    target: str | None = None
    """Slack channel (`#team-costs`) or email recipient; default: the channel's default."""


class AlertSettings(_Section):
    """Alert delivery: Slack, email, a signed webhook, PagerDuty, console."""

    default_routes: list[AlertRoute] = Field(default_factory=lambda: [AlertRoute(channel="console")])
    slack_token: SecretStr | None = None
    """Slack bot token (`METERLINE_ALERTS__SLACK_TOKEN`; never put it in meterline.toml)."""
    slack_webhook_url: SecretStr | None = None
    """Slack incoming-webhook URL, used when no bot token is set."""
    slack_base_url: str = "https://slack.com/api/"
    """Slack Web API base URL (tests point it at a local server)."""
    slack_default_channel: str = "#meterline-alerts"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    """SMTP password (`METERLINE_ALERTS__SMTP_PASSWORD`; never put it in meterline.toml)."""
    smtp_sender: str = "meterline@localhost"
    smtp_default_recipients: list[str] = Field(default_factory=list)
    webhook_url: SecretStr | None = None
    """Where the webhook channel POSTs signed JSON (`METERLINE_ALERTS__WEBHOOK_URL`; may carry a token)."""
    webhook_secret: SecretStr | None = None
    """Standard Webhooks signing secret, `whsec_<base64>` (`METERLINE_ALERTS__WEBHOOK_SECRET`)."""
    pagerduty_routing_key: SecretStr | None = None
    """PagerDuty Events API v2 integration key (`METERLINE_ALERTS__PAGERDUTY_ROUTING_KEY`)."""
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    """PagerDuty Events API v2 endpoint (tests point it at a local server)."""
    pagerduty_resolve_interval_seconds: float = Field(60.0, gt=0)
    """How often the dispatcher resolves PagerDuty incidents whose budget period has ended (default 60 s)."""
    dashboard_url: str | None = None
    """Link template, e.g. `https://grafana/d/costs?team={team}`."""
    retry_deadline_seconds: float = Field(300.0, gt=0)
    """Give up retrying a transient failure after this long (default 300 s)."""
    rate_limit_per_minute: int = Field(30, ge=1)
    """Messages per channel per minute at most (default 30)."""
    digest_after: int = Field(5, ge=2)
    """When this many alerts are pending for one channel, send one digest instead."""
    secrets_file: Path | None = None
    """Optional TOML file holding slack_token, slack_webhook_url, smtp_password, webhook_url,
    webhook_secret, pagerduty_routing_key."""
    smtp_ca_file: Path | None = None
    """CA bundle (PEM) that verifies the SMTP server's certificate (default: the system CAs)."""
    send_timeout_seconds: float = Field(10.0, gt=0)
    """Timeout of one Slack, SMTP, webhook or PagerDuty send attempt (default 10 s)."""
    retry_initial_seconds: float = Field(1.0, gt=0)
    """First backoff after a transient failure; doubles each attempt, with jitter (default 1 s)."""
    retry_max_seconds: float = Field(60.0, gt=0)
    """Cap of one backoff between send attempts (default 60 s)."""
    resend_unconfirmed: bool = False
    """After a crash between sending and recording, re-send when delivery cannot be confirmed
    (SMTP, webhook, Slack without history access): at-least-once. Default False: at-most-once,
    recorded as failed with the reason."""


class BudgetConfig(_Section):
    """One `[[budgets]]` entry in meterline.toml."""

    team: str = Field(pattern=r"^[a-z0-9._-]{1,64}$")
    name: str = Field(min_length=1, max_length=64)
    limit_usd: Decimal = Field(gt=0)
    period: Literal["day", "week", "month", "rolling"] = "month"
    timezone: str = "UTC"
    window: Duration | None = None
    """Length of a rolling budget, e.g. `24h` or `30d` (required when period = rolling)."""
    thresholds: list[Decimal] = Field(default_factory=lambda: [Decimal(50), Decimal(80), Decimal(100)])
    """Percent of the limit at which to alert (default 50, 80, 100; above 100 allowed)."""
    hard_limit: bool = False
    project: str | None = None
    model: str | None = None
    routes: list[AlertRoute] | None = None
    """Alert routes for this budget (default: `alerts.default_routes`)."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin") from exc
        return value

    @field_validator("thresholds")
    @classmethod
    def _positive_thresholds(cls, value: list[Decimal]) -> list[Decimal]:
        if not value or any(t <= 0 for t in value):
            raise ValueError("thresholds must be a non-empty list of percentages > 0")
        return sorted(set(value))

    @model_validator(mode="after")
    def _rolling_needs_window(self) -> BudgetConfig:
        if self.period == "rolling" and (self.window is None or self.window < timedelta(minutes=1)):
            raise ValueError('a rolling budget needs `window` of at least 1m, e.g. window = "24h"')
        if self.period != "rolling" and self.window is not None:
            raise ValueError('`window` applies only to period = "rolling"')
        return self

    @property
    def key(self) -> str:
        """Stable identity of this budget: `team/name`."""
        return f"{self.team}/{self.name}"


_config_path: ContextVar[Path | None] = ContextVar("meterline_config_path", default=None)


def is_embedded_dsn(dsn: str) -> bool:
    """True for the embedded engine's DSN (chdb:///path); the one answer to "is it embedded"."""
    return urlsplit(dsn).scheme == "chdb"


class Settings(BaseSettings):
    """Everything meterline reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="METERLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """Where local state lives (default `~/.local/share/meterline`; `METERLINE_DATA_DIR`)."""
    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma separated (`METERLINE_KAFKA_BOOTSTRAP`)."""
    topic_prefix: str = Field("meterline.", pattern=r"^[A-Za-z0-9._-]*$")
    """Prefix of every topic name (default `meterline.`; `METERLINE_TOPIC_PREFIX`)."""
    topic_partitions: int = Field(1, ge=1)
    """Partitions of topics the worker creates (default 1; more to scale out)."""
    topic_replication_factor: int = Field(1, ge=1)
    """Replicas of every topic the worker creates, faust's changelogs included (default 1, for one
    broker; 3 on a three-broker cluster; `METERLINE_TOPIC_REPLICATION_FACTOR`)."""
    topic_min_insync_replicas: int = Field(1, ge=1)
    """`min.insync.replicas` of those topics: replicas that must have an `acks=all` write before
    it counts (default 1; 2 with replication 3, so one broker may be down;
    `METERLINE_TOPIC_MIN_INSYNC_REPLICAS`)."""
    clickhouse_dsn: str | None = None
    """`chdb:///path` (embedded, default `<data_dir>/clickhouse`) or
    `http(s)://user:pass@host:port/db` (`METERLINE_CLICKHOUSE_DSN`)."""
    local_kafka: LocalKafkaSettings = Field(default_factory=LocalKafkaSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    sql: SqlSettings = Field(default_factory=SqlSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    budgets: list[BudgetConfig] = Field(default_factory=list)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port (e.g. 127.0.0.1:9092)")
        return value

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = urlsplit(value).scheme
        if scheme not in {"chdb", "http", "https", "clickhouse", "clickhouses"}:
            raise ValueError(
                f"unsupported scheme {scheme!r}: use chdb:///path for the embedded engine "
                "or http(s)://user:pass@host:8123/db for a ClickHouse server"
            )
        return value

    @model_validator(mode="after")
    def _min_isr_within_replicas(self) -> Settings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"topic_min_insync_replicas ({self.topic_min_insync_replicas}) exceeds "
                f"topic_replication_factor ({self.topic_replication_factor}): no write could ever be acknowledged"
            )
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_server(self) -> Settings:
        if self.sink.clickhouse_cluster is not None and urlsplit(self.effective_clickhouse_dsn).scheme == "chdb":
            raise ValueError(
                f"sink.clickhouse_cluster ({self.sink.clickhouse_cluster!r}) needs a ClickHouse server: "
                "set clickhouse_dsn to http(s)://user:pass@host:8123/db, or unset sink.clickhouse_cluster for the embedded engine"
            )
        return self

    @model_validator(mode="after")
    def _unique_budgets(self) -> Settings:
        seen: set[str] = set()
        for budget in self.budgets:
            if budget.key in seen:
                raise ValueError(f"budget {budget.key} is defined twice")
            seen.add(budget.key)
        return self

    @property
    def effective_clickhouse_dsn(self) -> str:
        """The configured DSN, or the embedded database under the data folder."""
        return self.clickhouse_dsn or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def clickhouse_is_embedded(self) -> bool:
        return is_embedded_dsn(self.effective_clickhouse_dsn)

    def topic(self, name: str) -> str:
        """Full topic name: `topic('usage')` -> `meterline.usage`."""
        return f"{self.topic_prefix}{name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def resolve_config_path(config: Path | str | None) -> Path | None:
    """`--config`, else `METERLINE_CONFIG`, else `./meterline.toml` when it exists."""
    if config is not None:
        path = Path(config)
    elif os.environ.get("METERLINE_CONFIG"):
        path = Path(os.environ["METERLINE_CONFIG"])
    else:
        default = Path("meterline.toml")
        return default if default.is_file() else None
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (named by --config or METERLINE_CONFIG)")
    return path


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming its key in full (`sink.batch_rows: ...`)."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check its spelling and section)"
        lines.append(f"  {key}: {message}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the Settings once; raise ConfigError naming every bad key at once."""
    path = resolve_config_path(config)
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    token = _config_path.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        source = f" (from {path} and METERLINE_* variables)" if path else " (from METERLINE_* variables)"
        raise ConfigError(format_validation_error(exc) + source) from exc
    finally:
        _config_path.reset(token)
