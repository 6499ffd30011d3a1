"""feature_store.strangers: who Moments knows only by its own decisions, and how long the
keys of a customer with no activity of their own live."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from feature_store.contact_facts import offers_shown_fact
from feature_store.facts import touchpoint_fact
from feature_store.reference import CustomerState
from feature_store.strangers import KNOWN_BY, is_stranger, no_activity_life
from tests.unit.factories import DAY_MS, T0_MS, at, click, consent, email

CONTACT_ONLY_MS, STRANGER_MS = 30 * DAY_MS, DAY_MS


def _profile_after(*facts: object) -> dict[str, str]:
    state = CustomerState()
    for fact in facts:
        state.apply(fact, T0_MS)  # type: ignore[arg-type]
    return state.profile


def test_only_moments_own_web_offers_leave_a_stranger() -> None:
    shown = offers_shown_fact("d1", "c1", "web", ["o1", "o2"], at(0))
    again = offers_shown_fact("d2", "c1", "web", ["o3"], at(1))
    assert is_stranger({}) and is_stranger(_profile_after(shown, again))


@pytest.mark.parametrize("channel", ["email", "sms", "call"])
def test_an_offer_made_by_email_text_or_call_makes_them_known(channel: str) -> None:
    """The business reaches them there: that channel's weekly caps and cool-downs read a
    week of their contacts, which a stranger's day would forget."""
    web = offers_shown_fact("d1", "c1", "web", ["o1"], at(0))
    outbound = offers_shown_fact("d2", "c1", channel, ["o2"], at(0))
    assert not is_stranger(_profile_after(outbound))
    assert not is_stranger(_profile_after(web, outbound))
    assert not is_stranger(_profile_after(outbound, web))


@pytest.mark.parametrize("channel", ["email", "sms", "call"])
def test_the_first_outbound_offer_keeps_its_contacts_the_contact_only_ttl(channel: str) -> None:
    """Told after the offer's own updates: the first one is kept 30 days already."""
    state = CustomerState()
    state.apply(offers_shown_fact("d1", "c1", channel, ["o1"], at(0)), T0_MS)
    assert state.expires_ms["contacts"] == T0_MS + CONTACT_ONLY_MS
    assert state.expires_ms["profile"] == T0_MS + CONTACT_ONLY_MS
    web = CustomerState()
    web.apply(offers_shown_fact("d1", "c1", "web", ["o1"], at(0)), T0_MS)
    assert web.expires_ms["contacts"] == T0_MS + STRANGER_MS


@pytest.mark.parametrize(
    "touchpoint",
    [click(at(0)), email("sent", at(0)), email("delivered", at(0)), email("bounced", at(0)),
     email("opened", at(0)), consent("sms", False, at(0)), consent("all", True, at(0))],
    ids=lambda t: f"{type(t).__name__}-{getattr(t, 'action', getattr(t, 'channel', ''))}",
)  # fmt: skip
def test_any_touchpoint_makes_them_known(touchpoint: object) -> None:
    """Their own activity, an email the business sent them, a consent given or withdrawn:
    Moments knows them beyond its decisions, whatever the order."""
    shown = offers_shown_fact("d1", "c1", "web", ["o1"], at(0))
    fact = touchpoint_fact(touchpoint)  # type: ignore[arg-type]
    assert not is_stranger(_profile_after(shown, fact))
    assert not is_stranger(_profile_after(fact, shown))


def test_a_withdrawal_kept_after_the_profile_expired_makes_them_known() -> None:
    """A customer who withdrew and whose profile expired comes back with their
    withdrawals: no stranger, though their profile holds no activity."""
    assert not is_stranger({"consent:email": "0", "consent:email@": "1"})
    assert not is_stranger({"subscribed:email": "0"})


def test_a_stranger_lives_the_stranger_ttl_anyone_else_with_no_activity_the_contact_only() -> None:
    assert no_activity_life({}, CONTACT_ONLY_MS, STRANGER_MS) == STRANGER_MS
    assert no_activity_life({"email:sent": "1"}, CONTACT_ONLY_MS, STRANGER_MS) == CONTACT_ONLY_MS
    # never beyond the contact-only TTL
    assert no_activity_life({}, 5 * DAY_MS, 9 * DAY_MS) == 5 * DAY_MS


@pytest.mark.parametrize("script", ["apply", "decision"])
def test_the_scripts_name_the_same_fields(script: str) -> None:
    """lua/apply.lua and lua/decision.lua tell a stranger by the same fields."""
    text = resources.files("feature_store").joinpath(f"lua/{script}.lua").read_text()
    call = re.search(r"HMGET', [^,]+,([^)]*)\)\s+-- strangers.py KNOWN_BY", text)
    assert call is not None
    named = re.findall(r"'([^']+)'", call.group(1))
    assert sorted(named) == sorted(KNOWN_BY)
    assert f"for i = 1, {len(KNOWN_BY)} do" in text


def test_a_strangers_first_click_gives_the_whole_ttl() -> None:
    state = CustomerState()
    state.apply(offers_shown_fact("d1", "c1", "web", ["o1"], at(0)), T0_MS)
    assert state.expires_ms["profile"] == T0_MS + STRANGER_MS
    state.apply(touchpoint_fact(click(at(0))), T0_MS)
    assert state.expires_ms["profile"] == T0_MS + 400 * DAY_MS
