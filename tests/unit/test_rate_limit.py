"""The per-key token bucket of the HTTP API: a key idle for long still gets no more than
its burst at once."""

from __future__ import annotations

import pytest

from streams.api.ratelimit import RateLimiter, RateLimits


@pytest.mark.parametrize(("rate", "burst"), [(1.0, 2), (5.0, 10), (0.5, 1)])
def test_a_long_idle_key_gets_its_burst_and_no_more(rate: float, burst: int) -> None:
    limiter = RateLimiter(rate=rate, burst=burst)
    assert limiter.allow("shop", now=0.0) == 0.0  # the key's first request
    idle_until = 3600.0  # an hour without requests would earn far more than the burst
    assert idle_until * rate > burst + 1
    served = [limiter.allow("shop", now=idle_until) for _ in range(burst)]
    assert served == [0.0] * burst
    # one more at the same moment is refused: told to wait for one token to come in
    assert limiter.allow("shop", now=idle_until) == pytest.approx(1 / rate)


def test_an_idle_key_saves_up_no_more_than_its_burst_over_several_spells() -> None:
    rate, burst = 2.0, 3
    limiter = RateLimiter(rate=rate, burst=burst)
    now = 0.0
    for _ in range(3):  # spend it all, then stay away for longer than it takes to refill
        while limiter.allow("screen", now=now) == 0.0:
            pass
        now += 10 * burst / rate
        refill = [limiter.allow("screen", now=now) for _ in range(burst + 1)]
        assert refill[:burst] == [0.0] * burst and refill[burst] > 0.0
    # another key's bucket was never touched: full
    assert [limiter.allow("other", now=now) for _ in range(burst)] == [0.0] * burst


def test_visitors_buckets_are_bounded_and_those_refilled_dropped() -> None:
    """A bucket is held until it has refilled (then it is the same as none), and no more
    than ``most`` at once: a stream of new visitors, each taking one token, leaves few
    buckets, and past the bound new visitors take from the key's bucket, counted."""
    overflowed: list[None] = []
    visitors = RateLimiter(rate=1.0, burst=2, most=50)
    limits = RateLimits(RateLimiter(rate=100.0, burst=3), visitors, lambda: overflowed.append(None))
    for n in range(10_000):  # 20 new visitors a second, each full again in 1 s
        assert limits.allow("page", f"v{n}", now=n / 20) == 0.0
        assert len(visitors) <= 50
    assert not overflowed
    # all at once: the bound holds, and the rest share the key's own bucket
    answers = [limits.allow("page", f"w{n}", now=1000.0) for n in range(60)]
    assert len(visitors) == 50 and len(overflowed) == 10
    assert answers.count(0.0) == 50 + 3  # the key's burst, for the ten past the bound
    # a key not bound to origins never takes a visitor's bucket
    limits.allow("backend", None, now=1000.0)
    assert ("backend", "") not in set(visitors.held()) and len(overflowed) == 10


def test_a_visitor_in_debt_is_held_until_paid_and_others_unaffected() -> None:
    visitors = RateLimiter(rate=1.0, burst=2, debt=100, most=10)
    limits = RateLimits(RateLimiter(rate=1.0, burst=2), visitors)
    limits.charge("page", 50, "debtor", now=0.0)
    for n in range(300):
        limits.allow("page", f"v{n}", now=n / 10)  # sweeping past the debtor
    assert ("page", "debtor") in set(visitors.held())  # not refilled: not dropped
    assert limits.in_debt("page", "debtor", now=30.0) == pytest.approx(18.0)
    assert limits.allow("page", "another", now=30.0) == 0.0
    for n in range(300):  # once paid back and full, dropped
        limits.allow("page", f"u{n}", now=60 + n / 10)
    assert ("page", "debtor") not in set(visitors.held())
