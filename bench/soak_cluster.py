"""Soak the scaled-out pipeline on a local three-broker cluster with random faults (outside CI).

    .venv/bin/python bench/soak_cluster.py --minutes 5
    .venv/bin/python bench/soak_cluster.py --minutes 30 --seed 7 --output bench/results/soak.json

Rounds until --minutes have passed (a round started in time is finished). Each round is one run
of the cluster fault tests' scenario (tests/integration/cluster/scaleout.py, the same harness):
a fresh topic prefix, worker `a` (stream, sink, alerts on embedded chDB) and worker `b`
(`--only stream`) in one consumer group, three partitions (replication 3, min ISR 2), two bulk
phases under steady load with one random fault each, of the kinds of the fault tests:
kill -9 a partition leader broker and restart it, kill -9 a worker and restart it, a worker
joining or leaving, a rolling restart of the three brokers. After every round the same
accounting as the tests, counted instead of asserted: events lost, events doubled (raw rows or
the hourly rollup), money off by more than 1e-12, alerts missing or doubled, and the
producer's spool (failed, left, not replayed).

Prints a line per round and the totals; writes them as JSON to --output. Exit code 1 when any
round lost, doubled or failed anything.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness is the soak's

from meterline.pricing import PriceCatalog
from meterline.services.kafka_cluster import LocalKafkaCluster
from meterline.services.kafka_local import find_free_port_block
from meterline.settings import PricingSettings
from meterline.sinks.client import open_client
from tests.conftest import _jar_cache_dir
from tests.e2e.scenario import build_scenario
from tests.integration.cluster.accounting import figures
from tests.integration.cluster.scaleout import TEAMS, ScaleOut, random_fault
from tests.support.slack_server import FakeSlack
from tests.support.smtp import start_smtp_server

FAULT_KINDS = {
    "leader of usage": "kill-broker",
    "kill -9 worker": "kill-worker",
    "joins": "join-worker",
    "leaves": "leave-worker",
    "rolling restart": "rolling-restart",
}
"""A fault's description (ScaleOut.faults) -> its kind."""
BAD_FIGURES = ("lost", "doubled", "unexpected", "alerts_missing", "alerts_doubled")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to start new rounds (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the faults and the events (default 1)")
    parser.add_argument("--bulk", type=int, default=900, help="events per bulk phase (default 900; two per round)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the cluster and the workers keep their data (default: a new temporary folder)",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("bench/results/soak_cluster.json"), help="JSON results file"
    )
    return parser.parse_args()


def fault_kind(description: str) -> str:
    return next((kind for needle, kind in FAULT_KINDS.items() if needle in description), "other")


def play_round(cluster: LocalKafkaCluster, catalog: Any, folder: Path, seed: int, bulk: int) -> dict[str, Any]:
    """One round: its scenario with a random fault in each bulk phase; its figures."""
    rng = random.Random(seed)
    scenario = build_scenario(catalog, seed=seed, now=datetime.now(UTC), names=TEAMS, bulk_size=bulk, bulk_phases=2)
    slack = FakeSlack().start()
    smtp, smtp_controller = start_smtp_server()
    run = ScaleOut(cluster, f"soak{uuid.uuid4().hex[:10]}.", folder, scenario, slack, smtp)
    error = ""
    spool: dict[str, int] = {}
    try:
        run.start_worker("a")
        run.start_worker("b")
        # Picked when the fault is due: which workers run then decides what can be done.
        spool = run.play({k: lambda: random_fault(run, rng)() for k in range(2)})
    except Exception as exc:  # noqa: BLE001 - a round that fails is counted, the soak goes on
        error = f"{type(exc).__name__}: {exc}"[:4000]
    finally:
        bad = run.stop()
    error = "\n".join(filter(None, [error, *bad]))
    client = open_client(run.chdb_dsn())
    try:
        counted = figures(client, scenario, slack, smtp)
    finally:
        client.close()
        slack.stop()
        smtp_controller.stop()
        cluster.heal()  # the next round starts on a whole cluster
    return {
        **counted,
        "faults": list(run.faults),
        "restarts_by_supervisor": run.restarts(),
        "producer": spool,
        "error": error,
        "timeline": run.timeline,
    }


def totals(rounds: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    kinds = Counter(fault_kind(f) for r in rounds for f in r["faults"])
    return {
        "rounds": len(rounds),
        "events": sum(r["events"] for r in rounds),
        "faults": sum(len(r["faults"]) for r in rounds),
        "faults_by_kind": dict(sorted(kinds.items())),
        "lost": sum(r["lost"] for r in rounds),
        "doubled": sum(r["doubled"] for r in rounds),
        "unexpected": sum(r["unexpected"] for r in rounds),
        "rounds_money_off": sum(1 for r in rounds if r["money_off_usd"] != "0"),
        "alerts_missing": sum(r["alerts_missing"] for r in rounds),
        "alerts_doubled": sum(r["alerts_doubled"] for r in rounds),
        "producer_spooled": sum(r["producer"].get("spooled", 0) for r in rounds),
        "rounds_failed": sum(1 for r in rounds if r["error"]),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    args = parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="meterline-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    catalog = PriceCatalog.load(PricingSettings())
    cluster = LocalKafkaCluster(
        data_dir=data_dir / "kafka", cache_dir=_jar_cache_dir(), ports=find_free_port_block(3), heap="256m"
    )
    print(f"starting a three-broker cluster in {data_dir / 'kafka'} ...", flush=True)
    started = time.monotonic()
    cluster.start()
    deadline = started + args.minutes * 60
    rounds: list[dict[str, Any]] = []
    try:
        while time.monotonic() < deadline:
            number = len(rounds) + 1
            left = max(0.0, deadline - time.monotonic())
            print(f"round {number} ({left / 60:.1f} min left to start rounds) ...", flush=True)
            result = play_round(cluster, catalog, data_dir / f"round-{number}", args.seed * 1000 + number, args.bulk)
            rounds.append(result)
            flags = (
                ", ".join(f"{name} {result[name]}" for name in BAD_FIGURES if result[name]) or "nothing lost or doubled"
            )
            print(
                f"round {number}: {result['events']} events, faults: {'; '.join(result['faults'])}; {flags}"
                + (f"; money off {result['money_off_usd']}" if result["money_off_usd"] != "0" else "")
                + (f"; FAILED: {result['error'].splitlines()[0]}" if result["error"] else ""),
                flush=True,
            )
    finally:
        cluster.stop()
    summary = totals(rounds, time.monotonic() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    command = "bench/soak_cluster.py " + " ".join(sys.argv[1:])
    args.output.write_text(
        json.dumps({"command": command, **summary, "per_round": rounds}, indent=2, default=str) + "\n"
    )
    print(json.dumps(summary, indent=2))
    print(f"written to {args.output}")
    bad = summary["lost"] or summary["doubled"] or summary["unexpected"] or summary["rounds_money_off"]
    bad = bad or summary["alerts_missing"] or summary["alerts_doubled"] or summary["rounds_failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
