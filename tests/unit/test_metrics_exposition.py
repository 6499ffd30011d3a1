"""The API's /metrics text is written anew at most 10 times a second, after a burst of
50, so that a client asking without end cannot take the CPU recommendations need (each
text cost about 5 ms; 20 clients looping on it took the median recommendation from 5 to
218 ms), while scrapes and readers a few times a second always get it as of then."""

from __future__ import annotations

from streams.metrics import FRESH_BURST, FRESH_PER_S, Metrics


def test_a_flood_shares_texts_and_readers_at_a_calm_pace_always_get_a_fresh_one() -> None:
    metrics, now, total = Metrics(), 1000.0, 0

    def read(at: float) -> str:
        nonlocal total
        metrics.dead_lettered(1)  # a count that changes before every read
        total += 1
        return metrics.shared_exposition(now=at).decode()

    for _ in range(int(FRESH_BURST)):  # a burst: every one fresh
        assert f"moments_dead_letters_total {total + 1}.0" in read(now)
    texts = {read(now + i / 1000) for i in range(1000)}  # a second of asking without end
    assert len(texts) <= FRESH_PER_S + 1  # about 10 texts written, not 1,000
    now += 6.0  # the bucket fills again, 10 a second
    for n in range(30):  # a reader 4 times a second: always fresh
        assert f"moments_dead_letters_total {total + 1}.0" in read(now + n / 4)
