"""Which withdrawals of an erased customer ``moments rebuild`` applies again
(:func:`streams.rebuild_withdrawals.withdrawals_again`): plain data, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feature_store import Fact, touchpoint_fact
from feature_store.facts import GRANT_LEAD_MS, ts_ms
from schemas import Consent, Email, WebClick
from schemas.touchpoints import Channel
from streams.rebuild_withdrawals import withdrawals_again

ERASED = datetime(2026, 12, 5, 12, tzinfo=UTC)
FIRST_MS = ts_ms(ERASED)
BEFORE, AFTER = FIRST_MS - 1, FIRST_MS + 1  # appended to Kafka before or after the erasure
UNKNOWN = 0  # stamped by the producer (CreateTime): when appended is not known


def consent(event_id: str, minutes: float, channel: Channel, granted: bool) -> Fact:
    """A consent change dated ``minutes`` after the erasure (before it: negative)."""
    at = ERASED + timedelta(minutes=minutes)
    return touchpoint_fact(Consent(event_id=event_id, customer_id="c", ts=at, channel=channel,
                                   granted=granted))  # fmt: skip


def fields(facts: list[Fact]) -> list[tuple[str, tuple[str, ...]]]:
    return [(f.fact_id, tuple(field for _, field, _ in f.updates)) for f in facts]


def test_a_withdrawal_taken_back_before_the_erasure_is_not_applied_again() -> None:
    withdrew, granted = consent("w", -240, "sms", False), consent("g", -180, "sms", True)
    assert withdrawals_again([(withdrew, BEFORE), (granted, BEFORE)], FIRST_MS) == []
    # in either order: a grant ranks by its date
    assert withdrawals_again([(granted, BEFORE), (withdrew, BEFORE)], FIRST_MS) == []


def test_a_withdrawal_sent_after_the_erasure_is_applied_whatever_the_grants() -> None:
    """The worker read it after the erasure: live kept it (if dated within the lag, as
    apply.lua judges), though a grant dated later was applied before."""
    withdrew, granted = consent("w", -240, "sms", False), consent("g", -180, "sms", True)
    again = withdrawals_again([(granted, BEFORE), (withdrew, AFTER)], FIRST_MS)
    assert fields(again) == [("t:w", ("consent:sms",))]


def test_a_withdrawal_not_known_appended_before_the_erasure_is_applied_again() -> None:
    """A record stamped by its producer (the event's time, as Kafka Connect stamps it, or
    a clock behind) may have been sent after the erasure, and live kept the withdrawal:
    it goes again, and a grant so stamped cannot take one back either."""
    withdrew, granted = consent("w", -60, "sms", False), consent("g", -30, "sms", True)
    for held in (
        [(granted, BEFORE), (withdrew, UNKNOWN)],
        [(granted, UNKNOWN), (withdrew, BEFORE)],
    ):
        assert fields(withdrawals_again(held, FIRST_MS)) == [("t:w", ("consent:sms",))]


def test_a_grant_that_could_not_take_the_withdrawal_back_leaves_it() -> None:
    """A grant dated less than GRANT_LEAD_MS after the withdrawal does not lift it, nor
    does one sent after the erasure (the worker refused it), nor one on another field."""
    withdrew = consent("w", -60, "email", False)
    close = consent("g1", -60 + GRANT_LEAD_MS / 60_000, "email", True)  # a tie: it holds
    late = consent("g2", -10, "email", True)
    other = consent("g3", -10, "sms", True)
    held = [(withdrew, BEFORE), (close, BEFORE), (late, AFTER), (other, BEFORE)]
    assert fields(withdrawals_again(held, FIRST_MS)) == [("t:w", ("consent:email",))]


def test_only_the_withdrawals_of_a_touchpoint_go_again() -> None:
    """A withdrawal on every channel, of which texts were granted again before the
    erasure: the others go again, alone; an unsubscribe does; a click or a grant does not."""
    everywhere = consent("all", -300, "all", False)
    texts = consent("sms", -200, "sms", True)
    at = ERASED - timedelta(minutes=5)
    click = touchpoint_fact(WebClick(event_id="k", customer_id="c", ts=at, page="/"))
    unsubscribed = touchpoint_fact(Email(event_id="u", customer_id="c", ts=at,
                                         action="unsubscribed"))  # fmt: skip
    held = [(everywhere, BEFORE), (texts, BEFORE), (click, BEFORE), (unsubscribed, BEFORE)]
    again = withdrawals_again(held, FIRST_MS)
    assert fields(again) == [("t:all", ("consent:email", "consent:call", "consent:web")),
                             ("t:u", ("subscribed:email",))]  # fmt: skip
    assert all(op == "latest" and value == "0" for f in again for op, _, value in f.updates)
    assert all(f.recent is None for f in again)
