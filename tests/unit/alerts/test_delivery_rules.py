"""Pure delivery rules: routing, retry policy, classification, rate limit and digests, offsets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from meterline.alerts.classify import parse_retry_after, slack_failure, smtp_failure
from meterline.alerts.delivery_offsets import DeliveryOffsets
from meterline.alerts.destinations import Destination, check_routes, destinations_for
from meterline.alerts.errors import AlertConfigError, PermanentDeliveryError, TransientDeliveryError
from meterline.alerts.ratelimit import TokenBucket, plan_send
from meterline.alerts.retry import RetryPolicy
from meterline.alerts.secrets import with_secrets
from meterline.settings import AlertRoute, AlertSettings, BudgetConfig, Settings
from tests.unit.alerts.samples import threshold_alert


def make_settings(**alerts: object) -> Settings:
    budgets = [
        BudgetConfig(
            team="platform",
            name="monthly",
            limit_usd=1000,
            routes=[
                AlertRoute(channel="slack", target="#platform-costs"),
                AlertRoute(channel="email", target="Lead@Example.org, ops@example.org"),
                AlertRoute(channel="email", target="ops@example.org,lead@example.org"),
            ],
        ),
        BudgetConfig(team="search", name="daily", limit_usd=10, period="day"),
    ]
    section = AlertSettings(
        slack_token=SecretStr("xoxb-test"),
        smtp_default_recipients=["costs@example.org"],
        default_routes=[AlertRoute(channel="console"), AlertRoute(channel="email")],
        **alerts,
    )
    return Settings(alerts=section, budgets=budgets)


def test_budget_routes_win_and_duplicates_collapse() -> None:
    found = destinations_for(threshold_alert(), make_settings())
    assert found == [
        Destination("email", "lead@example.org,ops@example.org"),
        Destination("slack", "#platform-costs"),
    ]


def test_budgets_without_routes_and_unknown_budgets_use_the_defaults() -> None:
    expected = [Destination("console", "stdout"), Destination("email", "costs@example.org")]
    assert destinations_for(threshold_alert(team="search", budget="daily"), make_settings()) == expected
    assert destinations_for(threshold_alert(team="gone", budget="old"), make_settings()) == expected


def test_check_routes_names_every_problem_with_its_place() -> None:
    settings = Settings(
        alerts=AlertSettings(default_routes=[AlertRoute(channel="slack"), AlertRoute(channel="email")]),
        budgets=[BudgetConfig(team="a", name="b", limit_usd=1, routes=[AlertRoute(channel="email", target="nobody")])],
    )
    problems = check_routes(settings)
    assert len(problems) == 3
    assert problems[0].startswith("alerts.default_routes[0]: a slack route needs a bot token")
    assert problems[1].startswith("alerts.default_routes[1]: an email route has no recipients")
    assert problems[2].startswith("budgets[a/b].routes[0]: email recipients ['nobody']")
    assert check_routes(make_settings()) == []


def test_backoff_doubles_up_to_the_cap_with_injected_jitter() -> None:
    low = RetryPolicy(initial_seconds=1, max_seconds=8, deadline_seconds=100, rng=lambda: 0.0)
    high = RetryPolicy(initial_seconds=1, max_seconds=8, deadline_seconds=100, rng=lambda: 0.999999)
    assert [low.backoff(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert [round(high.backoff(n), 3) for n in range(1, 6)] == [1, 2, 4, 8, 8]


def test_retry_after_wins_and_the_deadline_stops_retries() -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=8, deadline_seconds=10, rng=lambda: 0.0)
    limited = TransientDeliveryError("slack", "429", retry_after=7)
    assert policy.next_delay(limited, attempt=1, elapsed=0) == 7
    assert policy.next_delay(limited, attempt=2, elapsed=3.5) is None
    assert policy.next_delay(TransientDeliveryError("email", "421"), attempt=3, elapsed=7) == 2
    assert policy.next_delay(TransientDeliveryError("email", "421"), attempt=3, elapsed=8.5) is None
    assert policy.next_delay(PermanentDeliveryError("slack", "channel_not_found"), attempt=1, elapsed=0) is None


@pytest.mark.parametrize(
    ("status", "error", "retry_after", "retryable", "wait"),
    [
        (429, "ratelimited", "3", True, 3.0),
        (200, "ratelimited", None, True, None),
        (500, None, None, True, None),
        (503, "service_unavailable", "bogus", True, None),
        (200, "internal_error", None, True, None),
        (200, "invalid_auth", None, False, None),
        (200, "channel_not_found", None, False, None),
        (404, "channel_not_found", None, False, None),
        (403, "invalid_token", None, False, None),
        (400, None, None, False, None),
    ],
)
def test_slack_failures_are_classified(
    status: int, error: str | None, retry_after: str | None, retryable: bool, wait: float | None
) -> None:
    failure = slack_failure(status, error, retry_after)
    assert failure.retryable is retryable
    if retryable:
        assert isinstance(failure, TransientDeliveryError) and failure.retry_after == wait


def test_slack_permanent_failures_say_what_to_fix() -> None:
    assert "METERLINE_ALERTS__SLACK_TOKEN" in slack_failure(200, "invalid_auth", None).reason
    assert "fix the route's target" in slack_failure(200, "channel_not_found", None).reason


@pytest.mark.parametrize(
    ("code", "retryable"), [(421, True), (450, True), (451, True), (550, False), (535, False), (554, False)]
)
def test_smtp_codes_are_classified(code: int, retryable: bool) -> None:
    assert smtp_failure(code, "x").retryable is retryable


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None


def test_token_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(per_minute=2, now=0.0)
    for _ in range(2):
        assert bucket.wait_time(0.0) == 0
        bucket.take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(30.0)
    assert bucket.wait_time(20.0) == pytest.approx(10.0)
    assert bucket.wait_time(30.0) == 0


def test_many_pending_alerts_become_one_digest() -> None:
    assert plan_send(["a", "b", "c"], digest_after=5).items == ("a",)
    plan = plan_send(list("abcde"), digest_after=5)
    assert plan.is_digest and plan.items == tuple("abcde")
    with pytest.raises(ValueError):
        plan_send([], digest_after=5)


def test_offsets_commit_only_past_finished_messages() -> None:
    tracker: DeliveryOffsets[str] = DeliveryOffsets()
    tracker.track("p0", 10, 2)
    tracker.track("p0", 11, 0)
    tracker.track("p0", 12, 1)
    assert tracker.ready() == {"p0": 10}
    tracker.committed({"p0": 10})
    tracker.finish("p0", 12)
    assert tracker.ready() == {}
    tracker.finish("p0", 10)
    assert tracker.ready() == {}
    tracker.finish("p0", 10)
    assert tracker.ready() == {"p0": 13} and tracker.waiting() == 0
    tracker.forget("p0")
    tracker.finish("p0", 10)
    assert tracker.ready() == {}


def test_secrets_file_fills_missing_secrets_and_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('slack_token = "xoxb-from-file"\nsmtp_password = "pw-from-file"\n')
    path.chmod(0o600)
    filled = with_secrets(AlertSettings(secrets_file=path, smtp_password=SecretStr("pw-from-env")))
    assert filled.slack_token is not None and filled.slack_token.get_secret_value() == "xoxb-from-file"
    assert filled.smtp_password is not None and filled.smtp_password.get_secret_value() == "pw-from-env"
    assert "xoxb-from-file" not in repr(filled) and "xoxb-from-file" not in str(filled.model_dump())


def test_secrets_file_problems_never_show_values(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text('slack_tokn = "xoxb-secret-value"\n')
    with pytest.raises(AlertConfigError, match=r"unknown keys \['slack_tokn'\]") as caught:
        with_secrets(AlertSettings(secrets_file=path))
    assert "xoxb-secret-value" not in str(caught.value)
    path.write_text('slack_token = "xoxb-secret-value\n')
    with pytest.raises(AlertConfigError, match="not valid TOML") as caught:
        with_secrets(AlertSettings(secrets_file=path))
    assert "xoxb-secret-value" not in str(caught.value)
    with pytest.raises(AlertConfigError, match="does not exist"):
        with_secrets(AlertSettings(secrets_file=tmp_path / "missing.toml"))
