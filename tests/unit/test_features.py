"""feature_store.features.build_features, end to end from facts applied to a CustomerState."""

from __future__ import annotations

import pytest

from feature_store.contact_facts import intervention_fact, offers_shown_fact
from feature_store.derived import SegmentThresholds
from feature_store.facts import recent_entry
from feature_store.features import (
    ContactHistory,
    CustomerFeatures,
    RecentTouchpoint,
    build_features,
)
from schemas import Email, TouchpointEvent
from tests.unit.factories import (
    HOUR_MS,
    T0,
    T0_MS,
    apply_all,
    at,
    call_ended,
    call_started,
    click,
    consent,
    email,
    features_of,
    mention,
    purchase,
    survey,
)


def test_no_data_gives_empty_features() -> None:
    features = build_features({}, {}, [], T0_MS)
    assert features.events == 0
    assert features.activity == {"1h": {}, "24h": {}, "7d": {}, "30d": {}}
    assert features.channel_activity == {"1h": {}, "24h": {}, "7d": {}, "30d": {}}
    assert (features.survey, features.sentiment, features.experience) == (None, None, None)
    assert (features.spend, features.value, features.average_order_value) == (0.0, 0.0, None)
    assert (features.first_seen, features.preferred_channel) == (None, None)
    assert features.channel_mix == {} and features.consent == {} and features.recent == []
    assert features.contact == ContactHistory()
    assert features.segment == "new"
    assert features.top_categories() == []


# --------------------------------------------------------------------------------------
# Activity and channels
# --------------------------------------------------------------------------------------

ACTIVITY: list[TouchpointEvent] = [
    click(0),
    click(at(minutes=-10)),
    email("opened", at(hours=-3)),
    click(at(days=-2)),
    purchase(10.0, at(days=-10)),
    click(at(days=-60)),
]


def test_activity_per_window() -> None:
    features = features_of(apply_all(ACTIVITY))
    assert features.activity == {
        "1h": {"web_click": 2},
        "24h": {"web_click": 2, "email": 1},
        "7d": {"web_click": 3, "email": 1},
        "30d": {"web_click": 3, "email": 1, "purchase": 1},
    }
    assert features.channel_activity["30d"] == {"web": 3, "email": 1, "shop": 1}
    assert features.channel_activity["1h"] == {"web": 2}
    assert features.by_type == {"web_click": 4, "email": 1, "purchase": 1}
    assert features.events == 6


def test_windows_are_relative_to_the_readers_now() -> None:
    state = apply_all(ACTIVITY)
    later = features_of(state, now_ms=T0_MS + 2 * HOUR_MS)
    assert later.activity["1h"] == {}
    assert later.activity["24h"] == {"web_click": 2, "email": 1}
    much_later = features_of(state, now_ms=T0_MS + 90 * 24 * HOUR_MS)
    assert much_later.activity == {"1h": {}, "24h": {}, "7d": {}, "30d": {}}
    assert much_later.by_type == features_of(state).by_type  # lifetime is for ever


def test_channel_mix_and_preferred_channel() -> None:
    features = features_of(apply_all(ACTIVITY))
    assert features.channel_mix == {"email": 0.2, "shop": 0.2, "web": 0.6}
    assert features.preferred_channel == "web"
    tie = features_of(apply_all([email("opened", 1), click(2), email("replied", 3), click(4)]))
    assert tie.channel_mix == {"email": 0.5, "web": 0.5}
    assert tie.preferred_channel == "email"  # ties by name


def test_emails_sent_to_the_customer_are_not_their_activity() -> None:
    """A newsletter a customer who left never opens kept them looking active, with email
    as their preferred channel."""
    gone = [click(at(days=-120)), *(email(a, at(days=-d)) for d in (1, 8, 15)
                                     for a in ("sent", "delivered"))]  # fmt: skip
    features = features_of(apply_all([*gone, email("bounced", at(days=-2))]))
    assert features.last_seen == at(days=-120) and features.events == 1
    assert features.activity["30d"] == {} and features.preferred_channel == "web"
    assert features.emails == {"sent": 3, "delivered": 3, "bounced": 1}
    assert [r.type for r in features.recent] == ["web_click"]


def test_channel_mix_falls_back_to_lifetime_without_recent_activity() -> None:
    old = [email("opened", at(days=-90)), click(at(days=-95)), email("clicked", at(days=-100))]
    features = features_of(apply_all(old))
    assert features.channel_activity["30d"] == {}
    assert features.channel_mix == {"email": round(2 / 3, 6), "web": round(1 / 3, 6)}
    assert features.preferred_channel == "email"


# --------------------------------------------------------------------------------------
# Contacts Moments made
# --------------------------------------------------------------------------------------


def test_contact_history() -> None:
    state = apply_all(
        [
            click(0),
            offers_shown_fact("d1", "c1", "web", ["o1", "o2"], at(hours=-1)),
            offers_shown_fact("d2", "c1", "web", ["o1"], at(hours=-10)),  # yesterday 23:00
            offers_shown_fact("d3", "c1", "web", ["o3"], at(days=-3)),
            offers_shown_fact("d4", "c1", "email", ["o1"], at(days=-10)),
            offers_shown_fact("d5", "c1", "email", ["o2"], at(hours=-2)),
            intervention_fact("i1", "c1", "churn", at(days=-2)),
            intervention_fact("i2", "c1", "churn", at(days=-40)),
            intervention_fact("i3", "c1", "complaint", at(days=-20)),
        ]
    )
    contact = features_of(state).contact
    assert contact.shown_today == {"web": 1, "email": 1}
    assert contact.shown_7d == {"web": 3, "email": 1}
    assert contact.last_shown == {"o1": at(hours=-1), "o2": at(hours=-1), "o3": at(days=-3)}
    assert contact.last_contact == {"web": at(hours=-1), "email": at(hours=-2)}
    assert contact.last_intervention == {"churn": at(days=-2), "complaint": at(days=-20)}
    assert contact.interventions_30d == 2
    # contacts are not the customer's own activity
    features = features_of(state)
    assert features.events == 1
    assert features.activity["24h"] == {"web_click": 1}
    tomorrow = features_of(state, now_ms=T0_MS + 24 * HOUR_MS).contact
    assert tomorrow.shown_today == {}
    assert tomorrow.shown_7d == {"web": 3, "email": 1}


# --------------------------------------------------------------------------------------
# Experience, value and segment
# --------------------------------------------------------------------------------------

GOOD = survey(4.8, "csat5", 0)  # 0.9


def test_experience_from_recent_surveys() -> None:
    features = features_of(apply_all([GOOD, purchase(5.0, 1)]))
    assert features.experience == pytest.approx(0.9)
    assert features.survey == pytest.approx(0.9)
    assert features.segment == "growth"


@pytest.mark.parametrize(
    ("complaints", "experience"), [(0, 0.9), (1, 0.85), (2, 0.8), (10, 0.4), (12, 0.4)]
)
def test_complaints_lower_experience(complaints: int, experience: float) -> None:
    calls = [call_started("complaint", 10 + i) for i in range(complaints)]
    features = features_of(apply_all([GOOD, purchase(5.0, 1), *calls]))
    assert features.complaints_30d == complaints
    assert features.call_reasons == ({"complaint": complaints} if complaints else {})
    assert features.experience == pytest.approx(experience)


def test_complaints_without_other_signal_lower_the_assumed_experience() -> None:
    features = features_of(apply_all([click(0), call_started("complaint", 1)]))
    assert features.experience == pytest.approx(0.6 - 0.05)
    wary = features_of(
        apply_all([click(0), call_started("complaint", 1)]),
        thresholds=SegmentThresholds(unknown_experience=0.8),
    )
    assert wary.experience == pytest.approx(0.75)


def test_old_complaints_do_not_count() -> None:
    features = features_of(apply_all([GOOD, call_started("complaint", at(days=-40))]))
    assert features.complaints_30d == 0
    assert features.call_reasons == {"complaint": 1}
    assert features.experience == pytest.approx(0.9)


def test_negative_mentions_lower_experience_and_are_counted() -> None:
    state = apply_all(
        [GOOD, mention(-0.5, 300, 1), mention(-0.2, None, at(days=-45)), mention(0.4, 50, 2)]
    )
    features = features_of(state)
    assert (features.negative_mentions, features.negative_reach) == (2, 300)
    assert (features.negative_mentions_30d, features.negative_reach_30d) == (1, 300)
    # decayed: survey 0.9, mentions -0.5 -> 0.25 and 0.4 -> 0.7; one negative: -0.05
    assert features.experience == pytest.approx((0.9 + 0.25 + 0.7) / 3 - 0.05)
    assert features.sentiment == pytest.approx((-0.5 - 0.2 + 0.4) / 3)


def test_experience_falls_back_to_lifetime_surveys() -> None:
    features = features_of(apply_all([survey(2, "csat5", at(days=-50)), click(0)]))
    assert features.experience == pytest.approx(0.167)
    assert features.segment == "dangling"


def test_half_life_is_used() -> None:
    state = apply_all([survey(5, "csat5", at(days=-14)), survey(1, "csat5", 0)])
    assert features_of(state, half_life_days=14.0).experience == pytest.approx(1 / 3)
    assert features_of(state, half_life_days=7.0).experience == pytest.approx(0.25 / 1.25)


def test_purchases_value_and_segment() -> None:
    state = apply_all(
        [
            survey(4.5, "csat5", 0),
            purchase(100.0, at(days=-10), ["books"]),
            purchase(250.0, at(days=-200), ["travel"]),
            purchase(30.0, at(days=-380)),
        ]
    )
    features = features_of(state)
    assert (features.purchases, features.spend) == (3, 380.0)
    assert (features.purchases_365d, features.spend_365d) == (2, 350.0)
    assert features.average_order_value == pytest.approx(126.67)
    assert features.value == 350.0  # over a year of history: the last year's spend
    assert features.segment == "growth"
    rich = features_of(state, thresholds=SegmentThresholds(high_value=300.0))
    assert rich.segment == "model"
    # complaints turn a model customer into an at-risk one
    calls = [call_started("complaint", i) for i in range(1, 6)]
    upset = features_of(apply_all(calls, state), thresholds=SegmentThresholds(high_value=300.0))
    assert upset.experience == pytest.approx(0.75 - 0.25)
    assert upset.segment == "model"  # 0.5 is still good: the threshold is inclusive
    apply_all([call_started("complaint", 7)], state)
    upset = features_of(state, thresholds=SegmentThresholds(high_value=300.0))
    assert upset.segment == "at_risk"


def test_value_annualises_a_short_history() -> None:
    state = apply_all([purchase(200.0, at(days=-146)), survey(5, "csat5", 0)])
    features = features_of(state)
    assert features.value == 500.0
    assert features.segment == "model"
    first_order = features_of(apply_all([purchase(45.0, at(days=-1)), survey(5, "csat5", 0)]))
    assert (first_order.value, first_order.segment) == (180.0, "growth")


def test_average_order_value() -> None:
    features = features_of(apply_all([purchase(10.0, 0), purchase(20.5, 1)]))
    assert features.average_order_value == 15.25
    assert features_of(apply_all([click(0)])).average_order_value is None


def test_category_affinity_and_top_categories() -> None:
    state = apply_all(
        [
            click(0, "home"),
            click(1, "home"),
            purchase(5.0, 2, ["books"]),
            click(at(days=-28), "sports"),
            click(at(days=-28), "sports"),
            click(at(days=-28), "sports"),
            click(at(days=-28), "sports"),
            click(at(days=-29), "sports"),
            click(at(days=-90), "travel"),
        ]
    )
    features = features_of(state)
    assert features.categories == {"home": 2, "books": 1, "sports": 5, "travel": 1}
    assert features.category_affinity == {
        "home": 2.0,
        "sports": round(4 * 0.25 + 0.5 ** (29 / 14), 6),
        "books": 1.0,
    }
    assert features.top_categories() == ["home", "sports", "books"]


def test_top_categories_fall_back_to_lifetime_counts_ties_by_name() -> None:
    features = CustomerFeatures(categories={"zoo": 2, "art": 2, "bee": 5, "cat": 1})
    assert features.top_categories() == ["bee", "art", "zoo"]
    assert features.top_categories(10) == ["bee", "art", "zoo", "cat"]
    decayed = CustomerFeatures(categories={"zoo": 9}, category_affinity={"art": 0.1})
    assert decayed.top_categories() == ["art"]


# --------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------


def test_build_features_from_a_state() -> None:
    events: list[TouchpointEvent] = [
        click(1, "electronics"),
        click(2, "electronics"),
        click(3, "home"),
        purchase(12.5, 4, ["electronics", "books"]),
        purchase(7.25, 5, ["books"]),
        survey(5, "csat5", 6),
        survey(4, "csat5", 7),
        call_started("billing", 8, direction="outbound"),
        call_ended(0.5, 8.5, reason="billing"),
        email("clicked", 9),
        consent("sms", False, 10),
        consent("web", True, 10),
    ]
    state = apply_all(events)
    features = features_of(state, now_ms=T0_MS + 60_000)
    assert features.events == 12
    assert features.by_type == {
        "web_click": 3,
        "purchase": 2,
        "survey": 2,
        "call": 2,
        "email": 1,
        "consent": 2,
    }
    assert (features.purchases, features.spend) == (2, 19.75)
    assert features.categories == {"electronics": 3, "home": 1, "books": 2}
    assert features.top_categories() == ["electronics", "books", "home"]
    assert features.top_categories(1) == ["electronics"]
    assert features.call_reasons == {"billing": 1}
    assert features.emails == {"clicked": 1}
    assert features.survey == pytest.approx(0.75)
    assert features.sentiment == pytest.approx(0.5)
    assert features.experience == pytest.approx((1.0 + 0.5 + 0.75) / 3)
    assert features.consent == {"sms": False, "web": True}
    assert features.consents_to("sms") is False
    assert features.consents_to("web") is True
    assert features.consents_to("email") is True  # opt-out: assumed until withdrawn
    assert (features.first_seen, features.last_seen) == (at(1), at(10))
    assert features.last_purchase == at(5)
    assert [(r.ts, r.type) for r in features.recent[:3]] == [
        (at(10), "consent"),
        (at(10), "consent"),
        (at(9), "email"),
    ]
    assert len(features.recent) == 12
    assert [r.ts for r in features.recent] == sorted((r.ts for r in features.recent), reverse=True)
    assert features.recent[-1] == RecentTouchpoint(at(1), "web_click", events[0].event_id)
    assert features.segment == "growth"


def test_recent_is_newest_first_whatever_the_stored_order() -> None:
    events = [click(s, event_id=f"e{s}") for s in (5, 1, 3)]
    for stored in ([recent_entry(e) for e in events], [recent_entry(e) for e in events][::-1]):
        features = build_features({"n": "3"}, {}, stored, T0_MS)
        assert [r.event_id for r in features.recent] == ["e5", "e3", "e1"]


def test_recent_entry_with_pipes_in_the_event_id_parses_back() -> None:
    event = Email(event_id="ev|with|pipes", customer_id="c", ts=T0, action="sent")
    features = build_features({}, {}, [recent_entry(event)], T0_MS)
    assert features.recent == [RecentTouchpoint(T0, "email", "ev|with|pipes")]


def test_an_event_dated_a_little_ahead_prunes_nothing_still_in_a_window() -> None:
    """Events up to 15 minutes ahead are accepted (clock skew). One dated 14 minutes
    ahead moved the 5-minute buckets on three, and dropped two of the last hour's."""
    hour = [click(at(minutes=-m)) for m in (52, 45, 30, 5)]
    state = apply_all([*hour, click(at(minutes=14))])
    assert features_of(state).activity["1h"] == {"web_click": 4}
    late = apply_all([click(at(minutes=-50))], state)  # a late event is still in time
    assert features_of(late).activity["1h"] == {"web_click": 5}
    later = T0_MS + 20 * 60_000  # once its time has come, the early event counts too
    assert features_of(late, now_ms=later).activity["1h"] == {"web_click": 3}


def test_a_satisfied_answer_is_a_good_experience_however_the_decay_adds_up() -> None:
    """Decayed sums of 0.5 came to 0.49999999999999994, below the line of a good
    experience, and the segment read it so."""
    answers = [survey(7, "nps", at(days=-2)) for _ in range(3)] + [survey(7, "nps", 0)]
    features = features_of(apply_all([*answers, purchase(10.0, 1)]))
    assert features.experience == 0.5 and features.segment == "growth"
