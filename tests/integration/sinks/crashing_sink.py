"""A sink process that stops dead after writing its first batch, before committing it.

Run by test_sink_faults: `python crashing_sink.py BOOTSTRAP PREFIX DSN BATCH_ROWS`. It prints
`WRITTEN first-last` after flush step 2 and then waits to be SIGKILLed by the test.
"""

from __future__ import annotations

import sys
import threading

from support import sink_settings  # type: ignore[import-not-found]  # run as a script from this folder, which is on its sys.path

from meterline.sinks.runner import SinkRunner


def main() -> None:
    bootstrap, prefix, dsn, batch_rows = sys.argv[1:5]
    settings = sink_settings(bootstrap, prefix, dsn, batch_rows=int(batch_rows), batch_seconds=30)
    parked = threading.Event()

    def after_step(step: str, batches: list) -> None:
        if step == "written":
            ranges = ",".join(f"{b.range.partition}:{b.range.first}-{b.range.last}" for b in batches)
            print(f"WRITTEN {ranges}", flush=True)
            parked.wait()  # never set: the process dies here, between write and commit

    # A short session lets the group drop this member soon after the SIGKILL.
    SinkRunner(
        settings, on_flush_step=after_step, consumer_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
    ).start()
    parked.wait()


if __name__ == "__main__":
    main()
