"""feature_store.reference: when a customer's keys expire (as lua/apply.lua sets it)."""

from __future__ import annotations

from feature_store.contact_facts import offers_shown_fact
from feature_store.facts import touchpoint_fact
from feature_store.reference import CustomerState
from tests.unit.factories import DAY_MS, T0_MS, at, click, consent, email

TTL_MS = 400 * DAY_MS


def test_a_live_activity_gives_the_whole_ttl_from_now() -> None:
    state = CustomerState()
    assert state.apply(touchpoint_fact(click(at(hours=-20))), T0_MS) == 1
    assert state.expires_ms["profile"] == state.expires_ms["recent"] == T0_MS + TTL_MS
    ahead = touchpoint_fact(click(at(minutes=10), event_id="ahead"))
    assert state.apply(ahead, T0_MS) == 1
    assert state.expires_ms["profile"] == T0_MS + TTL_MS  # not beyond


def test_a_replayed_activity_counts_from_its_own_time_and_never_shortens() -> None:
    state = CustomerState()
    state.apply(touchpoint_fact(click(at(days=-399))), T0_MS)
    # the TTL from its time, the day a live event may lag counted as now
    assert state.expires_ms["profile"] == T0_MS + 2 * DAY_MS
    state.apply(touchpoint_fact(click(at(days=-100), event_id="newer")), T0_MS)
    assert state.expires_ms["windows"] == T0_MS + 301 * DAY_MS
    state.apply(touchpoint_fact(click(at(days=-200), event_id="older")), T0_MS)
    assert state.expires_ms["windows"] == T0_MS + 301 * DAY_MS


def test_a_fact_dated_the_ttl_ago_makes_no_profile_but_keeps_its_withdrawal() -> None:
    state = CustomerState()
    old = consent("email", False, at(days=-500))
    assert state.apply(touchpoint_fact(click(at(days=-400))), T0_MS) == 4
    assert state.apply(touchpoint_fact(old), T0_MS) == 4
    shown = offers_shown_fact("d1", "c1", "web", ["o1"], at(days=-450))
    assert state.apply(shown, T0_MS) == 4
    assert not state.profile and not state.windows and not state.contacts
    assert state.optouts == {"consent:email": "0", "consent:email@": str(T0_MS - 500 * DAY_MS)}
    assert state.apply(touchpoint_fact(old), T0_MS) == 4  # remembered, and too old still
    state.apply(touchpoint_fact(click(0, event_id="back")), T0_MS)
    assert state.profile["n"] == "1" and state.profile["consent:email"] == "0"


CONTACT_ONLY_MS = 30 * DAY_MS
STRANGER_MS = DAY_MS  # StoreConfig's default


def test_a_visitor_moments_only_contacted_is_kept_the_stranger_ttl_from_the_latest() -> None:
    """A recommendation for an id no touchpoint named made a profile kept 400 days: a
    site asking for anonymous visitors' cookie ids kept every one-time visitor that long;
    then 30 days (the contact-only TTL), so that a key with the recommend scope alone
    could keep a month of made-up ids. Now a day from Moments' latest contact."""
    state = CustomerState()
    assert state.apply(offers_shown_fact("d1", "v1", "web", ["o1"], at(0)), T0_MS) == 1
    assert state.expires_ms["profile"] == state.expires_ms["contacts"] == T0_MS + STRANGER_MS
    assert state.expires_ms["seen"] == T0_MS + STRANGER_MS  # their ids go with them
    later = T0_MS + DAY_MS // 2  # each contact renews it
    assert state.apply(offers_shown_fact("d2", "v1", "web", ["o1"], at(hours=12)), later) == 1
    assert state.expires_ms["profile"] == state.expires_ms["seen"] == later + STRANGER_MS
    # their first activity gives the whole TTL
    assert state.apply(touchpoint_fact(click(at(hours=12), customer="v1")), later) == 1
    assert state.expires_ms["profile"] == state.expires_ms["contacts"] == later + TTL_MS
    # and a contact after it gives a known customer's keys no shorter life
    assert state.apply(offers_shown_fact("d3", "v1", "web", ["o1"], at(hours=12)), later) == 1
    assert state.expires_ms["profile"] == later + TTL_MS


def test_a_visitor_the_business_mailed_keeps_the_contact_only_ttl() -> None:
    """An email the business sent makes the visitor known: the contact-only TTL from it,
    and their ids the dedupe horizon; the offers shown before keep their own life (only
    Moments' contacts renew the contacts' counts)."""
    state = CustomerState()
    assert state.apply(offers_shown_fact("d1", "v1", "web", ["o1"], at(0)), T0_MS) == 1
    assert state.apply(touchpoint_fact(email("sent", at(0))), T0_MS) == 1
    assert state.expires_ms["profile"] == T0_MS + CONTACT_ONLY_MS
    assert state.expires_ms["seen"] == T0_MS + 8 * DAY_MS  # the dedupe horizon
    assert state.expires_ms["contacts"] == T0_MS + STRANGER_MS
    assert state.apply(offers_shown_fact("d2", "v1", "web", ["o1"], at(0)), T0_MS) == 1
    assert state.expires_ms["contacts"] == T0_MS + CONTACT_ONLY_MS


def test_a_contact_replayed_after_its_visitor_would_have_expired_is_kept_the_live_lag() -> None:
    """Deleted at once, it was lost to the facts replayed after it (a rebuild replays in
    topic order): kept the day a live fact may lag, then gone as live."""
    state = CustomerState()
    old = offers_shown_fact("d1", "v1", "web", ["o1"], at(days=-40))
    assert state.apply(old, T0_MS) == 1
    assert state.profile["shown:web"] == "1"
    assert state.expires_ms["profile"] == state.expires_ms["contacts"] == T0_MS + DAY_MS
    state.expire_due(T0_MS + DAY_MS)
    assert not state.profile and not state.contacts and not state.seen
    # a stranger's id went with them: replayed again, they are kept the live lag again
    assert state.apply(old, T0_MS + DAY_MS) == 1
    assert state.expires_ms["profile"] == T0_MS + 2 * DAY_MS
    mailed = touchpoint_fact(email("bounced", at(days=-45)))
    assert state.apply(mailed, T0_MS + DAY_MS) == 1  # known now: the contact-only TTL
    assert state.apply(old, T0_MS + DAY_MS) == 0  # and its ids the dedupe horizon
    replayed = offers_shown_fact("d2", "v1", "web", ["o1"], at(days=-20))
    assert state.apply(replayed, T0_MS + DAY_MS) == 1  # 30 days from it, the live lag
    assert state.expires_ms["profile"] == T0_MS + DAY_MS + 10 * DAY_MS  # counted as now


def test_emails_and_offers_to_a_customer_with_no_activity_give_one_life_in_any_order() -> None:
    """An email first used to give the whole TTL, and the offer shown after it could not
    shorten it: a visitor also mailed was kept 400 days, or 30, by the order of facts."""
    lives = []
    for order in ("email first", "offer first"):
        state = CustomerState()
        mailed = touchpoint_fact(email("delivered", at(0)))
        shown = offers_shown_fact("d1", "c1", "web", ["o1"], at(0))
        for fact in (mailed, shown) if order == "email first" else (shown, mailed):
            assert state.apply(fact, T0_MS) == 1
        lives.append(state.expires_ms["profile"])
    assert lives == [T0_MS + CONTACT_ONLY_MS] * 2


def test_a_rebuild_keeps_the_bounces_before_a_customers_first_activity() -> None:
    """Bounced on days 0 and 1, a click on day 20: live, the click found both bounces
    (kept the contact-only TTL). Replayed on day 45 in that order, the bounces were
    written then deleted, and the rebuilt customer was emailed again."""
    state = CustomerState()
    rebuilt_ms = T0_MS + 45 * DAY_MS
    for fact in (email("bounced", at(days=0)), email("bounced", at(days=1)),
                 click(at(days=20), customer="c1")):  # fmt: skip
        assert state.apply(touchpoint_fact(fact), rebuilt_ms) == 1
    assert state.profile["email:bounced"] == "2" and state.profile["n"] == "1"
    # kept the whole TTL from the click (and the day a live fact may lag), as replayed
    assert state.expires_ms["profile"] == T0_MS + 20 * DAY_MS + TTL_MS + DAY_MS
