"""The worker web endpoint's auth rules: loopback, the start-up check, the token compare."""

from __future__ import annotations

import pytest

from meterline.errors import ConfigError
from meterline.settings import StreamSettings
from meterline.stream.web_auth import check_web_binding, is_loopback, is_protected, token_matches


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("worker.example", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_worker_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    check_web_binding(StreamSettings())
    check_web_binding(StreamSettings(web_host="0.0.0.0", web_token="t0ken"))
    with pytest.raises(ConfigError, match="METERLINE_STREAM__WEB_TOKEN"):
        check_web_binding(StreamSettings(web_host="0.0.0.0"))
    with pytest.raises(ConfigError, match="no token"):
        check_web_binding(StreamSettings(web_host="10.0.0.5", web_token=""))


def test_the_token_is_never_shown() -> None:
    assert "t0ken" not in repr(StreamSettings(web_token="t0ken"))


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer t0ken", True),
        ("Bearer t0ke", False),
        ("bearer t0ken", False),
        ("t0ken", False),
        (None, False),
        ("Bearer t0ken ", False),
    ],
)
def test_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "t0ken") is ok


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        ("/sql", True),
        ("/sql/", True),
        ("/metrics", True),
        ("/api/dashboard/totals", True),
        ("/api/", True),
        ("/table/", True),
        ("/router/", True),
        ("/", False),
        ("/dashboard/dashboard.js", False),
        ("/healthz", False),
        ("/apis", False),
    ],
)
def test_data_paths_want_the_token_and_the_page_does_not(path: str, protected: bool) -> None:
    assert is_protected(path) is protected
