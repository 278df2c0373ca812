"""Run an AlertDispatcher until killed (the crash test SIGKILLs this process).

Usage: python -m tests.integration.alerts.dispatcher_process BOOTSTRAP PREFIX SLACK_URL DATA_DIR DSN
"""

from __future__ import annotations

import logging
import sys
import time

from meterline.alerts.dispatcher import AlertDispatcher
from meterline.sinks.client import open_client
from tests.integration.alerts.support import dispatcher_settings


def main() -> None:
    bootstrap, prefix, slack_url, data_dir, dsn = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = dispatcher_settings(
        bootstrap=bootstrap,
        prefix=prefix,
        slack_url=slack_url,
        smtp_port=1,
        data_dir=data_dir,
        default_routes=[{"channel": "slack", "target": "#costs"}],
    )
    dispatcher = AlertDispatcher(settings, client_factory=lambda: open_client(dsn))
    dispatcher.start()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
