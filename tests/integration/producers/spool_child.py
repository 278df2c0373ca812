"""A producing process for the SIGKILL test: spool 1,000 events while Kafka is away, then wait.

Usage: python spool_child.py BOOTSTRAP TOPIC SPOOL_DIR SEED COUNT
Prints `SPOOLED <n>` once every event is in the spool, then sleeps until killed.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from meterline.producers import ProducerTuning, UsageProducer
from meterline.producers.traffic import generate_events


def main() -> None:
    bootstrap, topic, spool_dir, seed, count = sys.argv[1:6]
    events = generate_events(
        seed=int(seed), teams=4, start=datetime(2025, 5, 1, tzinfo=UTC), count=int(count), duplicate_share=0.0
    )
    tuning = ProducerTuning(bootstrap_timeout_s=1.0, delivery_timeout_s=3.0, stall_timeout_s=1.0)
    producer = UsageProducer(bootstrap, topic, Path(spool_dir), tuning=tuning).start()
    for event in events:
        producer.emit(event)
    producer.flush(60)
    print(f"SPOOLED {producer.counters().spooled}", flush=True)
    time.sleep(600)  # killed with SIGKILL by the test; never closes the producer


if __name__ == "__main__":
    main()
