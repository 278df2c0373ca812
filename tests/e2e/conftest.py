"""Fixtures of the end-to-end tests: the Slack double, a real SMTP server, the price catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.slack_server import FakeSlack
from tests.support.smtp import SmtpServer, start_smtp_server


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server, controller = start_smtp_server()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def catalog() -> Any:
    from meterline.pricing import PriceCatalog
    from meterline.settings import PricingSettings

    return PriceCatalog.load(PricingSettings())
