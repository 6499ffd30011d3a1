"""A withdrawal under an event id applied before is still applied (its withdrawal fields
alone), by the reference as by ``lua/apply.lua``; nothing else of it is counted again,
and a grant under a used id is not applied."""

from __future__ import annotations

import copy

from feature_store.facts import touchpoint_fact, ts_ms
from feature_store.reference import CustomerState
from schemas import Consent, TouchpointEvent, WebClick
from tests.unit.factories import DAY_MS, T0_MS, at


def consent(event_id: str, minutes_ago: float, granted: bool, channel: str = "email") -> Consent:
    return Consent(event_id=event_id, customer_id="c1", ts=at(minutes=-minutes_ago),
                   channel=channel, granted=granted)  # fmt: skip


def apply(state: CustomerState, *events: TouchpointEvent, now_ms: int = T0_MS) -> list[int]:
    return [state.apply(touchpoint_fact(e), now_ms) for e in events]


def test_a_withdrawal_under_a_grants_id_is_applied_and_counted_once() -> None:
    state = CustomerState()
    grant, withdrawal = consent("shared-1", 30, True), consent("shared-1", 1, False)
    assert apply(state, grant, withdrawal) == [1, 0]  # a duplicate all the same
    assert state.profile["consent:email"] == "0"
    assert state.profile["consent:email@"] == str(ts_ms(withdrawal.ts))
    assert state.optouts["consent:email"] == "0"  # kept beyond the profile's life
    assert state.profile["n"] == "1" and state.profile["n:consent"] == "1"  # counted once
    before = copy.deepcopy(state)
    assert apply(state, withdrawal, grant) == [0, 0]  # replayed: nothing changes
    assert state == before


def test_a_grant_under_a_withdrawals_id_is_not_applied() -> None:
    state = CustomerState()
    assert apply(state, consent("shared-2", 30, False), consent("shared-2", 1, True)) == [1, 0]
    assert state.profile["consent:email"] == "0"


def test_an_older_withdrawal_under_a_used_id_loses_to_a_newer_grant_as_any_does() -> None:
    state = CustomerState()
    apply(state, consent("g", 10, True), WebClick(event_id="w", customer_id="c1",
                                                   ts=at(minutes=-5), page="/"))  # fmt: skip
    assert apply(state, consent("w", 60, False, channel="all")) == [0]
    assert state.profile["consent:email"] == "1"  # the grant is newer by more than 15 min
    assert state.profile["consent:sms"] == "0"  # no grant there: withdrawn
    assert "n:web_click" in state.profile and state.profile["n"] == "2"


def test_with_the_profile_gone_the_withdrawal_is_kept_apart() -> None:
    state = CustomerState()
    assert apply(state, consent("old", 0, True)) == [1]
    state.profile, state.windows = {}, {}  # expired; its seen ids not yet
    late = Consent(event_id="old", customer_id="c1", channel="sms", granted=False,
                   ts=at(days=2))  # fmt: skip
    assert apply(state, late, now_ms=T0_MS + 2 * DAY_MS) == [0]
    assert state.profile == {} and state.optouts["consent:sms"] == "0"
