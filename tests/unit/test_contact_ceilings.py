"""The ceilings a decision's contact carries say what the contact policy said: on any
contact history, a contact breaks them exactly when the policy, reading that history,
would have suppressed its offer (pure; the store's check on real Redis is compared with
the reference in ``tests/integration/test_feature_store_properties.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.contact_ceilings import ceilings_of
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from feature_store import offers_shown_fact, touchpoint_fact
from feature_store.features import build_features
from feature_store.reference import CustomerState
from schemas import Consent, ContactRules, NextBestOffer, Offer, OfferCatalogue, OfferScore
from schemas.contact_rules import DAILY_CAPS

NOW = datetime(2026, 12, 2, 14, 30, 5, 123000, tzinfo=UTC)  # a Wednesday afternoon
NOW_MS = int(NOW.timestamp() * 1000)
CHANNELS = tuple(DAILY_CAPS)
POLICY = ContactPolicy(ControlGroup("ceilings", 0.0))

caps = st.none() | st.integers(0, 4)
rules = st.builds(
    lambda day, week, out_day, out_week: ContactRules(
        daily_caps={c: min(d, w) for c, d, w in zip(CHANNELS, day, week, strict=True)},
        weekly_caps=dict(zip(CHANNELS, week, strict=True)),
        outbound_daily_cap=None if out_day is None else min(out_day, out_week or out_day),
        outbound_weekly_cap=out_week,
    ),
    st.lists(st.integers(0, 3), min_size=4, max_size=4),
    st.lists(st.integers(0, 6), min_size=4, max_size=4),
    caps,
    caps,
)
offers = st.builds(
    lambda cooldown, per_week: Offer(offer_id="guide", title="Guide", channels=list(CHANNELS),
                                     cooldown_s=cooldown, max_per_week=per_week),
    st.sampled_from([0, 60, 3600, 86400, 3 * 86400]),
    st.none() | st.integers(1, 3),
)  # fmt: skip
# contacts Moments made lately: a channel, the offers shown, how long ago (up to 9 days,
# many within the week but not today, some right at a cool-down's edge)
DAY_MS = 86_400_000
ages = st.one_of(
    st.integers(0, 9 * DAY_MS),
    st.integers(DAY_MS, 8 * DAY_MS),
    st.sampled_from([60_000, 3_600_000, DAY_MS]),
)
contacts = st.lists(
    st.tuples(st.sampled_from(CHANNELS), st.sampled_from([("guide",), ("other",)]), ages),
    max_size=12,
)


OPEN = ContactRules(daily_caps=dict.fromkeys(CHANNELS, 9), weekly_caps=dict.fromkeys(CHANNELS, 9))
ONCE_A_WEEK = Offer(offer_id="guide", title="Guide", channels=list(CHANNELS), max_per_week=1)


@settings(max_examples=400, deadline=None)
# the week's edges: shown six days ago (the oldest day of the seven), and seven
@example(OPEN, ONCE_A_WEEK, [("web", ("guide",), 6 * DAY_MS)], "web", False)
@example(OPEN, ONCE_A_WEEK, [("web", ("guide",), 7 * DAY_MS)], "web", False)
@given(
    rules=rules,
    offer=offers,
    history=contacts,
    channel=st.sampled_from(CHANNELS),
    inbound=st.booleans(),
)
def test_a_contact_breaks_its_ceilings_exactly_when_the_policy_suppresses_it(
    rules: ContactRules,
    offer: Offer,
    history: list[tuple[str, tuple[str, ...], int]],
    channel: str,
    inbound: bool,
) -> None:
    state = CustomerState()
    granted = Consent(event_id="consent", customer_id="c1", ts=NOW - timedelta(days=20),
                      channel="all", granted=True)  # fmt: skip
    state.apply(touchpoint_fact(granted), NOW_MS)
    for i, (shown_on, shown, age_ms) in enumerate(history):
        at = NOW - timedelta(milliseconds=age_ms)
        state.apply(offers_shown_fact(f"d{i}", "c1", shown_on, shown, at), NOW_MS)
    features = build_features(
        state.profile, state.windows, list(state.recent), NOW_MS, state.contacts
    )
    verdict = POLICY.screen("c1", channel, features, [offer], NOW, rules=rules, inbound=inbound)
    decision = NextBestOffer(decision_id="d", customer_id="c1", ts=NOW, channel=channel,
                             trigger_event_id=None, control=False, model_version="m",
                             reasons=[], offers=[OfferScore(offer_id="guide", score=1.0,
                                                            propensity=1.0)])  # fmt: skip
    catalogue = OfferCatalogue(version="v", offers=[offer], contact_policy=rules)
    ceilings = ceilings_of(decision, catalogue, inbound)
    assert (offer in verdict.allowed) == (not state.over(ceilings, NOW_MS)), verdict.reasons
