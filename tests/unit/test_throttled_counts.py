"""streams.api.throttled_counts: what can happen by the thousand a second is told to the
log as counts by reason, the first at once, then one report per period at most while it
lasts; and the three that tell so (requests not read, decisions given up on the way to
Kafka or in the fallback outbox)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import pytest

from streams.api.throttled_counts import ThrottledCounts, line_per_reason
from streams.api.unreadable_requests import unreadable_requests

EVERY_S = 5.0


class ManualTimer:
    """A timer whose time moves only when told to (:meth:`advance`)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, int, Callable[[], None]]] = []

    def __call__(self, delay_s: float, callback: Callable[[], None], /) -> object:
        self._due.append((self.now + delay_s, len(self._due), callback))
        return None

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, calling what falls due on the way, in order."""
        until = self.now + seconds
        while due := [d for d in self._due if d[0] <= until]:
            first = min(due)
            self._due.remove(first)
            self.now = first[0]
            first[2]()
        self.now = until


class Told:
    """The reports made: (when, counts, at once)."""

    def __init__(self, timer: ManualTimer) -> None:
        self.timer = timer
        self.reports: list[tuple[float, dict[str, int], bool]] = []

    def __call__(self, counts: Counter[str], at_once: bool) -> None:
        self.reports.append((self.timer.now, dict(counts), at_once))


def counts() -> tuple[ThrottledCounts[str], ManualTimer, Told]:
    timer = ManualTimer()
    told = Told(timer)
    return ThrottledCounts(told, EVERY_S, timer), timer, told


def test_the_first_is_told_at_once_and_alone() -> None:
    given_up, _, told = counts()
    given_up.add("Kafka away", 3)
    assert told.reports == [(0.0, {"Kafka away": 3}, True)]


def test_those_that_follow_within_the_period_are_told_together_at_its_end() -> None:
    given_up, timer, told = counts()
    given_up.add("full")
    timer.advance(1.0)
    for why in ["full", "refused", "full"]:
        given_up.add(why)
    timer.advance(3.9)
    assert len(told.reports) == 1  # nothing more before the period ends
    timer.advance(0.1)
    assert told.reports[1] == (EVERY_S, {"full": 2, "refused": 1}, False)


def test_while_it_lasts_one_report_per_period_at_most() -> None:
    """A report at a period's end starts another period: the next one is not told at
    once (that made two lines a period while a flood lasted)."""
    given_up, timer, told = counts()
    for _ in range(160):  # eight a second for 20 s
        given_up.add("full")
        timer.advance(0.125)
    times = [when for when, _, _ in told.reports]
    assert times == [0.0, 5.0, 10.0, 15.0, 20.0]  # the last: its last seconds
    assert sum(sum(c.values()) for _, c, _ in told.reports) == 160


def test_after_a_quiet_period_the_next_is_told_at_once_again() -> None:
    given_up, timer, told = counts()
    given_up.add("full")
    given_up.add("full")
    timer.advance(EVERY_S)  # the second, told; a period follows, quiet
    timer.advance(EVERY_S)
    given_up.add("refused")
    assert told.reports[-1] == (10.0, {"refused": 1}, True)


def test_a_quiet_first_period_ends_the_wait() -> None:
    given_up, timer, told = counts()
    given_up.add("full")
    timer.advance(EVERY_S + 0.5)
    given_up.add("full")
    assert [at_once for _, _, at_once in told.reports] == [True, True]


def test_flush_tells_what_is_not_told_yet_once() -> None:
    given_up, timer, told = counts()
    given_up.flush()
    assert told.reports == []  # nothing to tell
    given_up.add("full")
    given_up.add("stopping", 7)
    given_up.flush()  # the process's last words
    assert told.reports[1] == (0.0, {"stopping": 7}, False)
    given_up.flush()
    timer.advance(EVERY_S)
    assert len(told.reports) == 2  # not told twice


def test_a_line_per_reason_says_each_count_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.throttled")
    tell = line_per_reason(log, "%d %s not published: %s")
    with caplog.at_level(logging.WARNING, logger="tests.throttled"):
        tell(Counter({("fallbacks", "too many waiting"): 3, ("shown", "stopping"): 1}), False)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "3 fallbacks not published: too many waiting"),
        (logging.WARNING, "1 shown not published: stopping"),
    ]


def test_requests_not_read_are_told_as_the_first_then_a_count_by_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timer = ManualTimer()
    unreadable = unreadable_requests(EVERY_S, timer)
    with caplog.at_level(logging.WARNING, logger="streams.api.unreadable_requests"):
        for kind in ["BadStatusLine"] * 3 + ["LineTooLong"]:
            unreadable.add(kind)
        timer.advance(EVERY_S)
        unreadable.add("LineTooLong")
        timer.advance(EVERY_S)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "a request could not be read as HTTP (BadStatusLine); answered 400"),
        (logging.WARNING, "3 more requests could not be read as HTTP in 5 s "
                          "(BadStatusLine: 2, LineTooLong: 1); answered 400"),
        (logging.WARNING, "1 more request could not be read as HTTP in 5 s (LineTooLong: 1); "
                          "answered 400"),
    ]  # fmt: skip
