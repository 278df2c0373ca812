"""The one backoff: doubling, capped, jitter drawn from the injected source."""

from __future__ import annotations

from collections.abc import Callable

from meterline.backoff import Backoff


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def test_delays_double_up_to_the_cap() -> None:
    assert [Backoff(0.2, 1.0).delay(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_long_outage_stays_at_the_cap_without_overflow() -> None:
    assert Backoff(0.25, 5.0).delay(10_000) == 5.0
    assert Backoff(0.25, 5.0).delay(0) == 0.25, "attempt numbers start at 1; 0 is treated as the first"


def test_jitter_draws_its_share_of_each_delay_from_the_random_source() -> None:
    low = Backoff(1, 8, jitter=0.5, rng=lambda: 0.0)
    high = Backoff(1, 8, jitter=0.5, rng=lambda: 0.999999)
    assert [low.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert [round(high.delay(n), 3) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    spread = {Backoff(1, 8, jitter=1.0, rng=fixed(r)).delay(3) for r in (0.0, 0.25, 0.5)}
    assert spread == {0.0, 1.0, 2.0}
