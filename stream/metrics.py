"""Counters of the stream and their Prometheus text rendering."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

COUNTERS: dict[str, str] = {
    "events_in": "Usage events read from the usage topic (one per line of a message).",
    "priced": "Events priced and published to usage.priced.",
    "unpriced": "Events published without a price (no catalog entry).",
    "duplicates": "Events skipped because their event_id was already seen.",
    "dlq": "Dead letters sent to the dead-letter topic (one per bad line of a message).",
    "late": "Events older than the grace period: stored, budgets unmoved.",
    "alerts": "Alert events published.",
    "budget_states": "Budget state messages published.",
    "batches": "Batches processed.",
    "redelivered": "Messages delivered again after a seek or rebalance, skipped as processed already.",
    "offset_holes": "Holes in the usage topic's offsets, read back and found empty (transaction markers).",
    "holes_sought": "Holes in the usage topic's offsets holding records the consumer skipped: the partition was "
    "sought back to them and nothing past them was processed.",
    "corrections": "Price corrections (meterline reprice) applied to budgets, counted once per correction id.",
    "batches_failed": "Batches that raised, were aborted (nothing of them committed) and were read again.",
    "holes_committed": "Holes in the usage topic's offsets holding records the partition's previous owner had "
    "processed and committed (its last transaction ended after this worker's assignment).",
}


@dataclass
class StreamMetrics:
    """What the stream counted since start, plus per-team unpriced totals and consumer lag."""

    counts: Counter[str] = field(default_factory=Counter)
    dlq_by_kind: Counter[str] = field(default_factory=Counter)
    unpriced_by_team: Counter[str] = field(default_factory=Counter)
    lag: dict[int, int] = field(default_factory=dict)
    dedup_ids: int = 0

    def render(self, extra: dict[str, float] | None = None) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for name, doc in COUNTERS.items():
            metric = f"meterline_stream_{name}_total"
            lines += [f"# HELP {metric} {doc}", f"# TYPE {metric} counter", f"{metric} {self.counts[name]}"]
        lines += [
            "# HELP meterline_stream_dlq_by_kind_total DLQ messages by error kind.",
            "# TYPE meterline_stream_dlq_by_kind_total counter",
        ]
        lines += [f'meterline_stream_dlq_by_kind_total{{kind="{k}"}} {v}' for k, v in sorted(self.dlq_by_kind.items())]
        lines += [
            "# HELP meterline_stream_unpriced_by_team_total Unpriced events per team.",
            "# TYPE meterline_stream_unpriced_by_team_total counter",
        ]
        lines += [
            f'meterline_stream_unpriced_by_team_total{{team="{t}"}} {v}'
            for t, v in sorted(self.unpriced_by_team.items())
        ]
        lines += [
            "# HELP meterline_stream_lag Messages in the usage topic not processed yet, per partition.",
            "# TYPE meterline_stream_lag gauge",
        ]
        lines += [f'meterline_stream_lag{{partition="{p}"}} {v}' for p, v in sorted(self.lag.items())]
        lines += [
            "# HELP meterline_stream_dedup_ids Event ids held for de-duplication.",
            "# TYPE meterline_stream_dedup_ids gauge",
            f"meterline_stream_dedup_ids {self.dedup_ids}",
        ]
        for name, value in (extra or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"
