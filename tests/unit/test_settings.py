from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.errors import ConfigError
from meterline.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("METERLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_use_embedded_chdb_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic_prefix == "meterline."
    assert settings.effective_clickhouse_dsn == f"chdb://{(tmp_path / 'data' / 'clickhouse').resolve()}"
    assert settings.clickhouse_is_embedded
    assert settings.topic("usage") == "meterline.usage"


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text('kafka_bootstrap = "kafka:9092"\ntopic_prefix = "acme."\n[sink]\nbatch_rows = 500\n')
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("METERLINE_SINK__BATCH_SECONDS", "2.5")
    settings = load_settings(config)
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.topic_prefix == "acme."
    assert settings.sink.batch_rows == 500
    assert settings.sink.batch_seconds == 2.5


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "other.toml"
    config.write_text('clickhouse_dsn = "http://default:secret@ch.internal:8123/meterline"\n')
    monkeypatch.setenv("METERLINE_CONFIG", str(config))
    settings = load_settings()
    assert not settings.clickhouse_is_embedded


def test_every_unknown_key_and_bad_value_is_named_at_once(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text(
        'kafka_bootstrp = "x:1"\n'
        'clickhouse_dsn = "mysql://h/db"\n'
        "[sink]\nbatch_rows = 0\nbatch_size = 3\n"
        '[[budgets]]\nteam = "Bad Team"\nname = "m"\nlimit_usd = 10\ntimezone = "Mars/Olympus"\n'
    )
    with pytest.raises(ConfigError) as excinfo:
        load_settings(config)
    message = str(excinfo.value)
    for key in (
        "kafka_bootstrp: unknown setting",
        "clickhouse_dsn",
        "sink.batch_rows",
        "sink.batch_size: unknown setting",
        "budgets.0.team",
        "budgets.0.timezone",
    ):
        assert key in message, f"{key!r} missing from:\n{message}"


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP", "no-port-here")
    with pytest.raises(ConfigError, match="kafka_bootstrap: .*not host:port"):
        load_settings()


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_toml_says_so(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text("kafka_bootstrap = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_budgets_parse_durations_money_and_routes(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text(
        '[[budgets]]\nteam = "search"\nname = "daily"\nlimit_usd = "12.50"\nperiod = "day"\n'
        'timezone = "Europe/Berlin"\nthresholds = [100, 50, 120]\nhard_limit = true\n'
        'routes = [{channel = "slack", target = "#search-costs"}, {channel = "email", target = "a@b.c"}]\n'
        '[[budgets]]\nteam = "search"\nname = "rolling"\nlimit_usd = 3\nperiod = "rolling"\nwindow = "24h"\n'
    )
    settings = load_settings(config)
    daily, rolling = settings.budgets
    assert daily.limit_usd == Decimal("12.50")
    assert daily.thresholds == [Decimal(50), Decimal(100), Decimal(120)]
    assert daily.routes is not None and daily.routes[0].target == "#search-costs"
    assert rolling.window == timedelta(hours=24)
    assert daily.key == "search/daily"


def test_rolling_budget_without_window_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "meterline.toml"
    config.write_text('[[budgets]]\nteam = "a"\nname = "r"\nlimit_usd = 1\nperiod = "rolling"\n')
    with pytest.raises(ConfigError, match="budgets.0: .*rolling budget needs `window`"):
        load_settings(config)


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_ALERTS__SLACK_TOKEN", "xoxb-very-secret")
    settings = load_settings()
    assert settings.alerts.slack_token is not None
    assert settings.alerts.slack_token.get_secret_value() == "xoxb-very-secret"
    assert "xoxb-very-secret" not in repr(settings)
