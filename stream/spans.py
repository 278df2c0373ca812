"""Where a batch of messages is cut into transactions (pure).

faust hands the agent up to `stream.take_max` messages at once; packed messages hold many
events each, so a whole take of a backlog could be 100,000 events in one transaction, and
readers of the outputs (read_committed: the sink) see none of them until it commits. The
take is committed in consecutive spans of at most `stream.batch_events` events instead: the
sink writes the first span while the stream prices the next.
"""

from __future__ import annotations

from collections.abc import Sequence


def message_events(value: bytes | None) -> int:
    """The events a message holds, counted cheaply: one per line (blank lines count too; the
    figure bounds a transaction's size, the processor counts exactly)."""
    return 1 if not value else value.count(b"\n") + 1


def transaction_spans(events_per_message: Sequence[int], most_events: int) -> list[range]:
    """Consecutive index ranges covering every message, in order, each holding at least one
    message and, from its second message on, no more than `most_events` events in all."""
    spans: list[range] = []
    start, held = 0, 0
    for index, count in enumerate(events_per_message):
        if index > start and held + count > most_events:
            spans.append(range(start, index))
            start, held = index, 0
        held += count
    if start < len(events_per_message):
        spans.append(range(start, len(events_per_message)))
    return spans
