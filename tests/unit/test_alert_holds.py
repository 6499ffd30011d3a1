"""TransactionHolds: how long a partition's alerts have waited behind a transaction left
open, told once when it passes the warning and once when it ends."""

from __future__ import annotations

import logging

import pytest

from streams.api.alert_holds import TransactionHolds
from tests.unit.logged import said_by


def holds_at(now: list[float]) -> TransactionHolds:
    return TransactionHolds("interventions", warn_after_s=10.0, clock=lambda: now[0])


def test_a_holding_is_logged_once_past_the_warning_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streams.api.alert_holds")
    now = [100.0]
    holds = holds_at(now)
    holds.saw(1, read_to=7, stable=7, end=9)
    now[0] = 109.0
    holds.saw(1, read_to=7, stable=7, end=9)
    assert said_by(caplog, "streams.api.alert_holds") == [] and holds.held_s() == 9.0
    for at in (110.0, 130.0):
        now[0] = at
        holds.saw(1, read_to=7, stable=7, end=12)
    warned = [
        r.getMessage()
        for r in said_by(caplog, "streams.api.alert_holds")
        if r.levelno == logging.WARNING
    ]
    assert warned == ["interventions[1]: alerts from offset 7 on wait for a transaction a "
                      "producer left open (10 s so far); the broker aborts it after that "
                      "producer's transaction.timeout.ms"]  # fmt: skip
    holds.saw(1, read_to=7, stable=12, end=12)
    assert holds.held_s() == 0.0
    assert said_by(caplog, "streams.api.alert_holds")[-1].getMessage() == (
        "interventions[1]: the alerts held back by an open transaction are read again (held 30 s)"
    )


def test_another_transaction_holding_the_partition_is_timed_from_its_start() -> None:
    now = [0.0]
    holds = holds_at(now)
    holds.saw(0, read_to=5, stable=5, end=6)
    now[0] = 8.0
    holds.saw(0, read_to=9, stable=9, end=10)  # the first ended, a second began at 9
    now[0] = 11.0
    assert holds.held_s() == 3.0


@pytest.mark.parametrize(
    ("read_to", "stable", "end"),
    [(3, 5, 6), (5, 5, 5), (5, None, 6), (5, 5, None)],
    ids=["still-reading-committed", "nothing-open", "stable-unknown", "end-unknown"],
)
def test_a_partition_not_standing_at_an_open_transaction_is_not_held(
    read_to: int, stable: int | None, end: int | None
) -> None:
    now = [0.0]
    holds = holds_at(now)
    holds.saw(0, read_to=read_to, stable=stable, end=end)
    now[0] = 60.0
    assert holds.held_s() == 0.0


def test_the_longest_of_several_holdings_is_told_and_a_reconnection_forgets_them() -> None:
    now = [0.0]
    holds = holds_at(now)
    holds.saw(0, read_to=1, stable=1, end=2)
    now[0] = 4.0
    holds.saw(1, read_to=1, stable=1, end=2)
    now[0] = 6.0
    assert holds.held_s() == 6.0
    holds.clear()
    assert holds.held_s() == 0.0
