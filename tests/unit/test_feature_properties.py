"""Properties of the features read back for a customer, over generated histories.

Each history is a sequence of facts (touchpoints of every kind, late and a little early,
offers shown, interventions, risk bookkeeping) applied to the pure reference store, and
read as the store reads it, minutes or days later, once what expired is gone. Offer
decisions, contact caps and the profile page all read these features: ``build_features``
must not raise on any state the store can hold, and its figures must mean what they say.
"""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings

from feature_store.derived import SegmentThresholds
from feature_store.facts import BUSINESS_EMAIL_ACTIONS, ts_ms
from feature_store.features import CONTACT_CHANNELS, CustomerFeatures, build_features
from schemas import Call, Email, SocialMention
from tests.unit.event_strategies import History, customer_histories
from tests.unit.factories import DAY_MS, HOUR_MS, MINUTE_MS

SEGMENTS = ("model", "growth", "at_risk", "dangling", "new")
# the activity windows as documented: the current bucket and those before it
# (window -> bucket size, number of buckets)
ACTIVITY_WINDOWS = {
    "1h": (5 * MINUTE_MS, 12),
    "24h": (HOUR_MS, 24),
    "7d": (DAY_MS, 7),
    "30d": (DAY_MS, 30),
}


def store_read(history: History) -> CustomerFeatures | None:
    """The features the store gives for the state (``FeatureViews.features``): none for
    a customer it holds nothing of; the opt-outs under the profile."""
    state = history.state
    if not (state.profile or state.optouts):
        return None
    return build_features(
        state.optouts | state.profile,
        dict(state.windows),
        list(state.recent),
        history.read_ms,
        dict(state.contacts),
        SegmentThresholds(),
        14.0,
    )


@settings(max_examples=50, deadline=None)
@given(customer_histories())
def test_features_of_any_history_are_built_and_in_their_ranges(history: History) -> None:
    """``build_features`` never raises on what a valid sequence of facts leaves, and every
    figure stays in its documented range: experience and survey in 0..1, sentiment in
    -1..1, value finite and not negative, a known segment, a channel mix that sums to 1
    (each share to 6 decimals) with a reachable preferred channel, first seen no later
    than last seen, recent touchpoints newest first, and lifetime figures at least their
    365-day ones."""
    features = store_read(history)
    if features is None:
        return
    assert features.segment in SEGMENTS
    assert math.isfinite(features.value) and features.value >= 0
    for share in (features.experience, features.survey):
        assert share is None or 0 <= share <= 1
    assert features.sentiment is None or -1 <= features.sentiment <= 1
    if features.channel_mix:
        slack = 5e-7 * len(features.channel_mix) + 1e-12
        assert abs(sum(features.channel_mix.values()) - 1.0) <= slack
    assert features.preferred_channel in (None, *CONTACT_CHANNELS)
    if features.first_seen is not None and features.last_seen is not None:
        assert features.first_seen <= features.last_seen
    times = [r.ts for r in features.recent]
    assert times == sorted(times, reverse=True)
    assert features.average_order_value is None or features.average_order_value >= 0
    if history.state.profile:
        assert features.purchases_365d <= features.purchases
        assert features.spend_365d <= features.spend


@settings(max_examples=50, deadline=None)
@given(customer_histories())
def test_shorter_windows_never_count_more_than_longer_ones(history: History) -> None:
    """Activity per type and per channel nests: 1h <= 24h <= 7d <= 30d (a cap or a rule
    reading a short window never sees more than a long one), and so do offers shown:
    today's <= the last 7 days'."""
    features = store_read(history)
    if features is None:
        return
    for table in (features.activity, features.channel_activity):
        assert list(table) == list(ACTIVITY_WINDOWS)
        for name in set().union(*table.values()):
            counts = [table[window].get(name, 0) for window in ACTIVITY_WINDOWS]
            assert counts == sorted(counts), (name, counts)
    contact = features.contact
    for channel, shown in contact.shown_today.items():
        assert shown <= contact.shown_7d.get(channel, 0), channel


def _in_window(ts: int, now: int, size: int, count: int) -> bool:
    return now // size - count < ts // size <= now // size


@settings(max_examples=50, deadline=None)
@given(customer_histories())
def test_counts_are_exactly_the_customers_own_touchpoints(history: History) -> None:
    """The events per type, in each window and over the customer's life, are exactly the
    touchpoints applied (whose time falls in the window's buckets), whatever order and
    lateness they came in, without the emails the business sent (sent, delivered,
    bounced: not the customer's doing); sentiment is the mean of every call's and
    mention's (kept to thousandths)."""
    features = store_read(history)
    if features is None:
        return
    own = [
        e
        for e in history.applied
        if not (isinstance(e, Email) and e.action in BUSINESS_EMAIL_ACTIONS)
    ]
    for window, (size, count) in ACTIVITY_WINDOWS.items():
        expected = Counter(
            e.kind for e in own if _in_window(ts_ms(e.ts), history.read_ms, size, count)
        )
        assert features.activity[window] == expected, window
    assert features.events == len(own) and features.by_type == Counter(e.kind for e in own)
    felt = [
        e.sentiment
        for e in history.applied
        if isinstance(e, SocialMention | Call)
        and e.sentiment is not None
        and not (isinstance(e, Call) and e.status == "started")
    ]
    if felt:
        assert features.sentiment is not None
        assert math.isclose(features.sentiment, sum(felt) / len(felt), abs_tol=5e-4)
    else:
        assert features.sentiment is None
