"""The per-key token bucket of the HTTP API: a key idle for long still gets no more than
its burst at once."""

from __future__ import annotations

import pytest

from streams.api.ratelimit import RateLimiter


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
