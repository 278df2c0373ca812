"""A dispatcher SIGKILLed after Slack took the message but before `sent` was recorded does not
post it again after a restart: it finds its own message by metadata in the channel history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meterline.alerts.dispatcher import AlertDispatcher
from meterline.sinks.client import open_client
from meterline.sinks.migrations import apply_migrations
from tests.conftest import REPO_ROOT
from tests.integration.alerts.support import deliveries, dispatcher_settings, produce, wait_for
from tests.support.slack_server import FakeSlack
from tests.unit.alerts.samples import forecast_alert

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigkill_between_send_and_record_does_not_post_twice(
    chdb_dsn: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    client = open_client(chdb_dsn)
    apply_migrations(client)
    client.close()  # chDB: one process at a time may open the path, and the child needs it
    settings = dispatcher_settings(
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        slack_url=fake_slack.base_url,
        smtp_port=1,
        data_dir=tmp_path,
        default_routes=[{"channel": "slack", "target": "#costs"}],
    )
    alert = forecast_alert()
    produce(settings, [alert])
    fake_slack.known_channels.add("costs")
    fake_slack.hold.set()  # keep the message, never answer: the child cannot record `sent`
    stderr = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.alerts.dispatcher_process",
            kafka_bootstrap,
            topic_prefix,
            fake_slack.base_url,
            str(tmp_path),
            chdb_dsn,
        ],
        cwd=REPO_ROOT,
        stderr=stderr,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        wait_for(fake_slack.holding.is_set, "the child to post to Slack", timeout=120)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        stderr.close()
    fake_slack.hold.clear()
    assert len(fake_slack.messages[FakeSlack.channel_id("costs")]) == 1

    client = open_client(chdb_dsn)
    try:
        (state,) = deliveries(client).values()
    finally:
        client.close()
    assert state[0] == "sending", "the crash came between send and record"

    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(chdb_dsn))
    dispatcher.start()
    try:
        wait_for(lambda: dispatcher.stats["sent"] == 1, "the restarted dispatcher to resolve the delivery")
        assert dispatcher.stats["confirmed_after_restart"] == 1
    finally:
        dispatcher.stop(30)
    assert dispatcher.error is None
    client = open_client(chdb_dsn)
    try:
        (state,) = deliveries(client).values()
    finally:
        client.close()
    (message,) = fake_slack.messages[FakeSlack.channel_id("costs")]
    assert state == ("sent", 1, "confirmed after restart", f"{FakeSlack.channel_id('costs')}/{message['ts']}")
    assert len(fake_slack.calls("chat.postMessage")) == 1
