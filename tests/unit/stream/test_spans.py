"""Where a taken batch is cut into transactions (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterline.stream.spans import message_events, transaction_spans


def test_a_message_counts_one_event_per_line() -> None:
    assert message_events(b'{"a":1}') == 1
    assert message_events(b'{"a":1}\n{"a":2}\n{"a":3}') == 3
    assert message_events(None) == 1  # a tombstone is one (bad) event: its dead letter
    assert message_events(b"") == 1


def test_packed_messages_are_cut_before_the_span_would_pass_the_bound() -> None:
    assert transaction_spans([100] * 7, 250) == [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]


def test_a_take_under_the_bound_is_one_span() -> None:
    assert transaction_spans([1] * 1000, 10_000) == [range(0, 1000)]
    assert transaction_spans([], 10) == []


def test_a_message_above_the_bound_is_a_span_of_its_own() -> None:
    assert transaction_spans([3, 50, 3, 3], 10) == [range(0, 1), range(1, 2), range(2, 4)]


@given(st.lists(st.integers(min_value=1, max_value=500), max_size=300), st.integers(min_value=1, max_value=2_000))
def test_spans_cover_every_message_once_in_order_within_the_bound(sizes: list[int], most: int) -> None:
    spans = transaction_spans(sizes, most)
    assert [index for span in spans for index in span] == list(range(len(sizes)))
    for span in spans:
        assert len(span) >= 1
        held = sum(sizes[index] for index in span)
        assert held <= most or len(span) == 1
    # Greedy: each span but the last would pass the bound with the next message added.
    for span, after in zip(spans, spans[1:], strict=False):
        assert sum(sizes[index] for index in span) + sizes[after.start] > most
